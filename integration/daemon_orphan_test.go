package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

// TestDaemonOutlivesTheShellThatStartedIt (issue 21 item 6): a daemon
// started as `ip netns exec H ebpfnet daemon &` by a shell that then exits
// keeps working: conntrack GC runs, reconcile frees a vanished container's
// endpoint, and it logs no error. It used to lose the mount namespace it
// pins in with the shell (open mount namespace of pid N: no such file or
// directory, every GC interval).
func TestDaemonOutlivesTheShellThatStartedIt(t *testing.T) {
	tp := newTopology(t)
	_, c2 := twoContainers(tp)
	dir := t.TempDir()
	logPath, pidPath := filepath.Join(dir, "daemon.log"), filepath.Join(dir, "daemon.pid")
	// The shell waits for the daemon's API socket, then exits.
	script := `ip netns exec "$1" "$2" --state-dir "$3" --pin-root "$4" daemon --metrics-addr 127.0.0.1:9469 --gc-interval 300ms >"$5" 2>&1 &
echo $! >"$6"
for i in $(seq 100); do [ -S "$3/api.sock" ] && exit 0; sleep 0.1; done
exit 1`
	out, err := exec.Command("sh", "-c", script, "sh", tp.Host, ebpfnetBin, tp.StateDir, tp.PinRoot, logPath, pidPath).CombinedOutput()
	pid := readPID(t, pidPath)
	t.Cleanup(func() { stopOrphan(t, pid) })
	daemonLog := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	if err != nil {
		t.Fatalf("daemon did not start: %v %s\n%s", err, out, daemonLog())
	}

	// The shell is gone: what the daemon does from here on, it does as an
	// orphan.
	client := httpIn(tp.Namespace(tp.Host))
	gcRuns := func() float64 {
		return sample(get(t, client, "http://127.0.0.1:9469/metrics"), "ebpfnet_conntrack_gc_runs_total")
	}
	before := gcRuns()
	testutil.Run(t, "ip", "netns", "delete", c2) // a container dies without a detach
	freed := eventually(10*time.Second, func() bool { return !strings.Contains(tp.MustEbpfnet("ls"), c2) })
	collected := eventually(10*time.Second, func() bool { return gcRuns() >= before+3 })
	l := daemonLog()
	if !freed || !collected || strings.Contains(l, "mount namespace") || strings.Contains(l, "level=ERROR") || strings.Contains(l, "level=WARN") {
		t.Errorf("after its shell exited: reconcile freed %s: %v, conntrack GC ran 3 more times: %v; daemon log (last lines):\n%s", c2, freed, collected, lastLines(l, 20))
	}
}

// eventually reports whether cond became true within timeout.
func eventually(timeout time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("daemon PID: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		t.Fatalf("daemon PID file holds %q", b)
	}
	return pid
}

// stopOrphan stops a daemon this test started but is not the parent of
// (its shell exited): SIGTERM by PID, SIGKILL if it is still there after
// 10 s. It checks the PID is still an ebpfnet daemon before each signal.
func stopOrphan(t *testing.T, pid int) {
	isDaemon := func() bool {
		cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		return err == nil && strings.HasPrefix(string(cmdline), ebpfnetBin+"\x00") && strings.Contains(string(cmdline), "\x00daemon\x00")
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		if !isDaemon() {
			return
		}
		syscall.Kill(pid, sig)
		for range 100 {
			if !isDaemon() {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	t.Errorf("daemon %d did not stop", pid)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
