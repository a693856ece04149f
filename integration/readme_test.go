package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/internal/testing/doccheck"
	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

// runREADMEBlock runs the ```sh block after the marker line, which is in
// README.md or one of docs/*.md (once), in the topology's host namespace, as
// a reader would paste it, and checks each "#=>" line appears in its
// output, in order: the docs stay true. internal/testing/doccheck's
// TestEveryShBlockIsRun checks every marker there is run by a test here.
func runREADMEBlock(t *testing.T, tp *testutil.Topology, marker string) {
	t.Helper()
	root, err := doccheck.Root()
	if err != nil {
		t.Fatal(err)
	}
	b, err := doccheck.FindShBlock(root, marker)
	if err != nil {
		t.Fatal(err)
	}
	block := b.Text
	marker = b.File + " " + marker // for the messages below
	var want []string
	for _, line := range strings.Split(block, "\n") {
		if exp, ok := strings.CutPrefix(line, "#=> "); ok {
			want = append(want, exp)
		}
	}
	cmd := exec.Command("ip", "netns", "exec", tp.Host, "timeout", "120", "bash", "-c", "set -euo pipefail\n"+block)
	cmd.Env = append(os.Environ(),
		"PATH="+filepath.Dir(ebpfnetBin)+":"+os.Getenv("PATH"),
		"EBPFNET_STATE_DIR="+tp.StateDir, "EBPFNET_PIN_ROOT="+tp.PinRoot)
	// Its own process group, ended whole afterwards: a block that fails
	// half way leaves what it started in the background (`ebpfnet daemon
	// &`) running, holding the output open. WaitDelay bounds the wait for
	// that output once the shell itself is done.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err != nil {
		t.Fatalf("%s failed: %v\n%s", marker, err, out)
	}
	rest := string(out)
	for _, w := range want {
		i := strings.Index(rest, w+"\n")
		if i < 0 {
			t.Fatalf("%s: output lacks %q (in order)\n%s", marker, w, out)
		}
		rest = rest[i+len(w):]
	}
}

// TestREADMETour runs the tour.
func TestREADMETour(t *testing.T) {
	tp := newTopology(t)
	// The block names its namespaces as a reader would (web): make sure a
	// failed run does not leave them.
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", "web").Run() })
	runREADMEBlock(t, tp, "<!-- readme-test -->")
}
