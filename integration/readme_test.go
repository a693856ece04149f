package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestREADMETour runs README's tour block in a sandbox host, as a reader
// would paste it, and checks each "#=>" line appears in the output, in
// order: the README stays true.
func TestREADMETour(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(raw), "<!-- readme-test -->\n```sh\n")
	if !ok {
		t.Fatal("README has no <!-- readme-test --> block")
	}
	block, _, _ = strings.Cut(block, "```")
	var want []string
	for _, line := range strings.Split(block, "\n") {
		if exp, ok := strings.CutPrefix(line, "#=> "); ok {
			want = append(want, exp)
		}
	}
	tp := newTopology(t)
	// The block names its namespaces as a reader would (web): make sure a
	// failed run does not leave them.
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", "web").Run() })
	script := "set -euo pipefail\n" + block
	cmd := exec.Command("ip", "netns", "exec", tp.Host, "bash", "-c", script)
	cmd.Env = append(os.Environ(),
		"PATH="+filepath.Dir(ebpfnetBin)+":"+os.Getenv("PATH"),
		"EBPFNET_STATE_DIR="+tp.StateDir, "EBPFNET_PIN_ROOT="+tp.PinRoot)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README tour failed: %v\n%s", err, out)
	}
	rest := string(out)
	for _, w := range want {
		i := strings.Index(rest, w+"\n")
		if i < 0 {
			t.Fatalf("README tour: output lacks %q (in order)\n%s", w, out)
		}
		rest = rest[i+len(w):]
	}
}
