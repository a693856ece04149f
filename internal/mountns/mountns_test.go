package mountns_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf/link"

	"github.com/ebpfnet/ebpfnet/internal/mountns"
	"github.com/ebpfnet/ebpfnet/loader"
)

const helperEnv = "EBPFNET_MOUNTNS_TEST_PIN_ROOT"

// TestMain runs the helper of TestSockHooksWhenBPFFSMustBeMounted on the
// main goroutine, as a command runs: that is where mountns.Do used to leave
// the main thread in another mount namespace.
func TestMain(m *testing.M) {
	if root := os.Getenv(helperEnv); root != "" {
		if err := helper(root); err != nil {
			fmt.Println("ERROR", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// helper does what the first command on a fresh machine does: mount bpffs
// in the lasting mount namespace, load a pinned datapath and attach the
// socket hooks to the cgroup v2 root.
func helper(pinRoot string) error {
	if !mountns.Private() {
		return fmt.Errorf("helper not in a private mount namespace")
	}
	pins, err := loader.PreparePinRoot(pinRoot)
	if err != nil {
		return err
	}
	defer os.RemoveAll(pins)
	self, _ := os.Readlink("/proc/self/ns/mnt")
	thread, _ := os.Readlink("/proc/thread-self/ns/mnt")
	if self != thread {
		fmt.Printf("main thread left in mount namespace %s, this thread in %s\n", self, thread)
	}
	dp, err := loader.Load(loader.Options{PinRoot: pins, CTMapSize: 1024})
	if err != nil {
		return err
	}
	defer dp.Close()
	if err := dp.AttachSockHooks(); err != nil {
		fmt.Println("WARN host-local access to published ports is off:", err)
		return err
	}
	defer dp.DetachSockHooks()
	n := 0
	for _, name := range loader.SockPrograms {
		l, err := link.LoadPinnedLink(filepath.Join(pins, "links", "cgroup:"+name), nil)
		if err != nil {
			return fmt.Errorf("cgroup link %s: %w", name, err)
		}
		info, err := l.Info()
		l.Close()
		if err != nil {
			return err
		}
		if info.Cgroup() == nil {
			return fmt.Errorf("link %s is a %v link, not a cgroup one", name, info.Type)
		}
		n++
	}
	fmt.Printf("cgroup hooks attached: %d\n", n)
	return nil
}

// Issue 9 item 11: when bpffs must be mounted first, the command used to
// lose host-local access (open /sys/fs/cgroup/unified: no such file or
// directory). The helper runs as under `ip netns exec` (a private mount
// namespace with a fresh /sys) whose parent's mount namespace, a private
// copy of the host's, has no bpffs at /sys/fs/bpf.
func TestSockHooksWhenBPFFSMustBeMounted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, tool := range []string{"unshare", "ip", "mountpoint"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	ns := fmt.Sprintf("ebpfnet-mnttest-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })

	// Everything below happens in mount namespaces of the test's own: the
	// host's bpffs stays mounted.
	script := `set -e
while mountpoint -q /sys/fs/bpf; do umount -l /sys/fs/bpf; done
exec ip netns exec "$1" "$0" -test.run=^$`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--fork", "sh", "-c", script, os.Args[0], ns)
	cmd.Env = append(os.Environ(), helperEnv+"=/sys/fs/bpf/ebpfnet-mnttest")
	out, err := cmd.CombinedOutput()
	t.Logf("helper:\n%s", out)
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	for _, bad := range []string{"WARN", "no such file", "main thread left"} {
		if strings.Contains(string(out), bad) {
			t.Errorf("helper output has %q", bad)
		}
	}
	if want := fmt.Sprintf("cgroup hooks attached: %d", len(loader.SockPrograms)); !strings.Contains(string(out), want) {
		t.Errorf("helper output lacks %q", want)
	}
}
