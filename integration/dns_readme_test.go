package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestREADMEDNS runs README's name-resolution block (it starts a daemon) in
// a sandbox host whose resolv.conf names the test's own DNS server, and
// checks each "#=>" line appears in the output, in order.
func TestREADMEDNS(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(raw), "<!-- readme-test dns -->\n```sh\n")
	if !ok {
		t.Fatal("README has no <!-- readme-test dns --> block")
	}
	block, _, _ = strings.Cut(block, "```")
	var want []string
	for _, line := range strings.Split(block, "\n") {
		if exp, ok := strings.CutPrefix(line, "#=> "); ok {
			want = append(want, exp)
		}
	}
	tp := newTopology(t)
	dnsSandbox(t, tp)
	// The block names a namespace as a reader would (tools).
	t.Cleanup(func() {
		exec.Command("ip", "netns", "delete", "tools").Run()
		os.RemoveAll("/etc/netns/tools")
	})
	cmd := exec.Command("ip", "netns", "exec", tp.Host, "timeout", "120", "bash", "-c", "set -euo pipefail\n"+block)
	cmd.Env = append(os.Environ(),
		"PATH="+filepath.Dir(ebpfnetBin)+":"+os.Getenv("PATH"),
		"EBPFNET_STATE_DIR="+tp.StateDir, "EBPFNET_PIN_ROOT="+tp.PinRoot)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README DNS example failed: %v\n%s", err, out)
	}
	rest := string(out)
	for _, w := range want {
		i := strings.Index(rest, w+"\n")
		if i < 0 {
			t.Fatalf("README DNS example: output lacks %q (in order)\n%s", w, out)
		}
		rest = rest[i+len(w):]
	}
}
