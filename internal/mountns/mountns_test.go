package mountns_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/ebpfnet/ebpfnet/internal/mountns"
	"github.com/ebpfnet/ebpfnet/loader"
)

const helperEnv = "EBPFNET_MOUNTNS_TEST_PIN_ROOT"

// TestMain runs the helper of TestSockHooksWhenBPFFSMustBeMounted on the
// main goroutine, as a command runs: that is where mountns.Do used to leave
// the main thread in another mount namespace.
func TestMain(m *testing.M) {
	if dir := os.Getenv(orphanEnv); dir != "" {
		orphan(dir)
		os.Exit(0)
	}
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

const orphanEnv = "EBPFNET_MOUNTNS_TEST_ORPHAN_DIR"

// orphan is the helper of TestAnchorOutlivesItsParent, started as `ip netns
// exec NS helper &` by a shell: it says it runs (dir/started), waits for
// that shell to exit, then does what a daemon does every GC interval (work
// in the lasting mount namespace, paths through Root) and writes what it
// found to dir/result.
func orphan(dir string) {
	parent := os.Getppid()
	result := func(format string, a ...any) {
		os.WriteFile(filepath.Join(dir, "result"), fmt.Appendf(nil, format, a...), 0o600)
	}
	if !mountns.Private() {
		result("ERROR not in a private mount namespace")
		return
	}
	os.WriteFile(filepath.Join(dir, "started"), nil, 0o600)
	for os.Getppid() == parent {
		time.Sleep(10 * time.Millisecond)
	}
	var inside string
	var sys unix.Stat_t
	err := mountns.Do(func() error {
		inside, _ = os.Readlink("/proc/thread-self/ns/mnt")
		return unix.Stat("/sys", &sys)
	})
	if err != nil {
		result("ERROR %v", err)
		return
	}
	var throughRoot unix.Stat_t
	if err := unix.Stat(mountns.Root()+"/sys", &throughRoot); err != nil {
		result("ERROR through Root: %v", err)
		return
	}
	if throughRoot.Dev != sys.Dev {
		result("ERROR Root()/sys is device %d, /sys in the lasting namespace %d", throughRoot.Dev, sys.Dev)
		return
	}
	result("ok %s", inside)
}

// Issue 21 item 6: `ip netns exec H ebpfnet daemon &` from a shell that
// then exits. The daemon looked the shell's PID up again for every piece of
// work in the lasting mount namespace and failed (open mount namespace of
// pid N: no such file or directory) once the shell was gone. The helper
// must still reach the shell's mount namespace (the test's own) after it.
func TestAnchorOutlivesItsParent(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip")
	}
	ns := fmt.Sprintf("ebpfnet-mntorphan-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	dir := t.TempDir()
	// The shell starts the helper in the background, waits until it runs
	// (it has found its anchor: this shell), and exits.
	script := `ip netns exec "$1" "$0" -test.run=^$ & echo $! > "$2/pid"
for i in $(seq 500); do [ -e "$2/started" ] && exit 0; sleep 0.01; done
exit 1`
	cmd := exec.Command("sh", "-c", script, os.Args[0], ns, dir)
	cmd.Env = append(os.Environ(), orphanEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	t.Cleanup(func() { killByPIDFile(filepath.Join(dir, "pid")) })
	if err != nil {
		t.Fatalf("the helper did not start: %v %s", err, out)
	}
	var result []byte
	for range 500 {
		if result, err = os.ReadFile(filepath.Join(dir, "result")); err == nil && len(result) > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	self, _ := os.Readlink("/proc/self/ns/mnt")
	if want := "ok " + self; string(result) != want {
		t.Fatalf("helper after its parent exited: %q, want %q", result, want)
	}
}

// killByPIDFile kills the process a PID file names if it is still the
// helper (its command line is this test binary's).
func killByPIDFile(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if strings.HasPrefix(string(cmdline), os.Args[0]+"\x00") {
		unix.Kill(pid, unix.SIGKILL)
	}
}
