// Package mountns finds the mount namespace that outlives this command.
//
// `ip netns exec` runs each command in a private mount namespace with a
// fresh /sys, which hides the host's bpffs; mounts and netns names made there
// vanish when the command exits, and with them every pinned map and link.
// So when this process runs in a mount namespace other than its parent's,
// ebpfnet does such work in the nearest ancestor's mount namespace (the
// "anchor") and reaches its files through /proc/PID/root.
package mountns

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// anchor is the PID of the nearest ancestor in another mount namespace, or 0
// when this process's own mount namespace is the lasting one.
var anchor = sync.OnceValue(func() int {
	self, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return 0
	}
	for pid := os.Getppid(); pid > 1; pid = parentOf(pid) {
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
		if err != nil {
			return 0
		}
		if ns != self {
			return pid
		}
	}
	return 0
})

func parentOf(pid int) int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "PPid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// Private reports whether this process runs in a mount namespace of its own
// (as under `ip netns exec`) whose mounts will not outlive it.
func Private() bool { return anchor() != 0 }

// Root is a path prefix that resolves in the anchor's mount namespace, or ""
// when this process's own namespace is the lasting one.
func Root() string {
	if pid := anchor(); pid != 0 {
		return fmt.Sprintf("/proc/%d/root", pid)
	}
	return ""
}

// Do runs fn on a dedicated OS thread in the lasting mount namespace. fn may
// change the thread further (e.g. unshare its network namespace): the thread
// is never handed back to the Go scheduler and exits with its goroutine.
//
// That thread is never the main thread. The Go runtime cannot end the main
// thread when a goroutine exits locked to it: it parks it for good, still in
// the namespaces fn left it in, and /proc/self (which names the main thread)
// would then describe the host's mount namespace while every other thread
// lives in this process's own: paths read from /proc/self/mountinfo would not
// open. Callers that read mount tables use /proc/thread-self.
func Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// The main thread stays locked to this goroutine while another
			// one does the work, so the work cannot land on it; then it goes
			// back to the scheduler unchanged.
			errc <- Do(fn)
			runtime.UnlockOSThread()
			return
		}
		// From here on the thread is never unlocked: it dies with this
		// goroutine, whatever fn did to it.
		errc <- doLocked(fn)
	}()
	return <-errc
}

func doLocked(fn func() error) error {
	pid := anchor()
	if pid == 0 {
		return fn()
	}
	// setns(CLONE_NEWNS) needs a thread that does not share its fs_struct.
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return fmt.Errorf("unshare fs: %w", err)
	}
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/mnt", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open mount namespace of pid %d: %w", pid, err)
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("join mount namespace of pid %d: %w", pid, err)
	}
	return fn()
}

// Visible returns path if it exists here, else the same path seen through
// the lasting mount namespace if it exists there, else "".
func Visible(path string) string {
	if _, err := os.Stat(path); err == nil {
		return path
	}
	if root := Root(); root != "" {
		if _, err := os.Stat(root + path); err == nil {
			return root + path
		}
	}
	return ""
}
