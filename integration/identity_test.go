package integration

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
	"github.com/ebpfnet/ebpfnet/loader"
)

// The kernel gives a deleted namespace's inode to a later one, and the
// default state dir and pin root are named after the inode: a new simulated
// host must not inherit a dead one's networks, endpoints and conntrack.
func TestNewNamespaceDoesNotInheritADeadOnesState(t *testing.T) {
	suffix := make([]byte, 3)
	rand.Read(suffix)
	name := "ebid" + hex.EncodeToString(suffix)
	ebpfnet := func(args ...string) (string, string, error) {
		cmd := exec.Command("ip", append([]string{"netns", "exec", name, ebpfnetBin}, args...)...)
		var out, errOut strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		return out.String(), errOut.String(), err
	}
	add := func() uint64 {
		testutil.Run(t, "ip", "netns", "add", name)
		testutil.Run(t, "ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
		ns, err := netnsutil.Resolve(name)
		if err != nil {
			t.Fatal(err)
		}
		return ns.Ino
	}
	ino := add()
	// The derived (default) paths of this namespace: global, so clean them.
	state := fmt.Sprintf("/var/lib/ebpfnet/netns-%d", ino)
	pins := loader.DefaultPinRoot(fmt.Sprintf("netns-%d", ino))
	t.Cleanup(func() {
		exec.Command("ip", "netns", "delete", name).Run()
		os.RemoveAll(state)
		loader.RemovePins(pins)
	})
	if _, err := os.Stat(state); err == nil {
		t.Skipf("%s exists already (another run's?): not touching it", state)
	}
	if out, errOut, err := ebpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24"); err != nil {
		t.Fatalf("network create: %v\n%s%s", err, out, errOut)
	}
	if out, errOut, err := ebpfnet("firewall", "add", "--source", "10.0.0.0/8", "--action", "deny"); err != nil {
		t.Fatalf("firewall add: %v\n%s%s", err, out, errOut)
	}
	testutil.Run(t, "ip", "netns", "delete", name)
	// A namespace's inode is freed once the kernel has cleaned it up.
	reused := false
	for try := 0; try < 40 && !reused; try++ {
		time.Sleep(250 * time.Millisecond)
		if reused = add() == ino; !reused {
			testutil.Run(t, "ip", "netns", "delete", name)
		}
	}
	if !reused {
		t.Skipf("the kernel did not reuse inode %d in 10s: nothing to test", ino)
	}
	out, errOut, err := ebpfnet("network", "ls")
	if err != nil || strings.Contains(out, "n1") {
		t.Fatalf("network ls in the new namespace: %v\n%s%s\nwant no n1", err, out, errOut)
	}
	if !strings.Contains(errOut, "belonged to a network namespace that no longer exists") {
		t.Errorf("no one-line explanation of the cleanup:\n%s", errOut)
	}
	// Nor its firewall policy.
	if out, errOut, err := ebpfnet("firewall", "ls", "-o", "json"); err != nil || strings.TrimSpace(out) != "[]" {
		t.Errorf("firewall ls in the new namespace: %v %q %s; want no rules", err, out, errOut)
	}
	if out, errOut, err := ebpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24"); err != nil {
		t.Fatalf("network create in the new namespace: %v\n%s%s", err, out, errOut)
	}
	if out, errOut, err := ebpfnet("network", "rm", "n1"); err != nil {
		t.Fatalf("network rm: %v\n%s%s", err, out, errOut)
	}
}

// Explicit state of one live namespace used from another is refused, and
// changes nothing.
func TestStateOfAnotherNamespaceIsRefused(t *testing.T) {
	tp := newTopology(t)
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	before := tp.MustEbpfnet("network", "ls")
	cmd := exec.Command("ip", "netns", "exec", tp.Ext, ebpfnetBin, "--state-dir", tp.StateDir, "--pin-root", tp.PinRoot, "network", "rm", "n1")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "belongs to another network namespace") || strings.Count(strings.TrimSpace(string(out)), "\n") > 0 {
		t.Fatalf("network rm from another namespace: %v\n%s", err, out)
	}
	if after := tp.MustEbpfnet("network", "ls"); after != before {
		t.Fatalf("state changed:\n%s\nthen\n%s", before, after)
	}
	if _, err := os.Stat(filepath.Join(tp.PinRoot, "maps")); err != nil {
		t.Fatalf("pins gone: %v", err)
	}
}
