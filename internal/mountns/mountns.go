// Package mountns finds the mount namespace that outlives this command.
//
// `ip netns exec` runs each command in a private mount namespace with a
// fresh /sys, which hides the host's bpffs; mounts and netns names made there
// vanish when the command exits, and with them every pinned map and link.
// So when this process runs in a mount namespace other than its parent's,
// ebpfnet does such work in the nearest ancestor's mount namespace (the
// "anchor").
//
// The anchor is found once, when the process starts, and its mount
// namespace and root directory are held open as file descriptors from then
// on. A long-running process (`ip netns exec H ebpfnet daemon &`) outlives
// the shell that started it: a PID looked up again later names nothing, or
// worse, another process's mount namespace once the PID is reused. A file
// descriptor keeps the namespace it was opened on, and cannot be reused.
package mountns

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// lasting is the anchor's mount namespace and root directory, held open
// for the life of the process.
type lasting struct {
	pid  int // the anchor's PID when it was found, for messages only
	ns   int // its mount namespace (/proc/PID/ns/mnt)
	root int // its root directory (/proc/PID/root), O_PATH
}

// anchor is the lasting mount namespace, or nil when this process's own
// mount namespace is the lasting one.
var anchor = sync.OnceValue(findAnchor)

// The anchor is looked for before main runs, while the process that
// started this one is most likely still there (a shell that starts a
// daemon in the background may exit at once).
func init() { anchor() }

// findAnchor opens the mount namespace of the nearest ancestor in another
// mount namespace. An ancestor that exits while it is looked at is passed
// over: the walk starts again from this process's new parent.
func findAnchor() *lasting {
	self, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return nil
	}
	selfStart, err := startTime("/proc/self/stat")
	if err != nil {
		return nil
	}
	for range 5 {
		pid := ancestorOutside(self)
		if pid == 0 {
			return nil
		}
		if l, err := openAnchor(pid, selfStart); err == nil {
			return l
		}
	}
	return nil
}

// ancestorOutside returns the nearest ancestor whose mount namespace is not
// self, or 0. Init counts: a process whose parent has already exited was
// handed to it (or to a subreaper), whose namespace is the lasting one
// then.
func ancestorOutside(self string) int {
	for pid := os.Getppid(); pid >= 1; pid = parentOf(pid) {
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
		if err != nil {
			return 0
		}
		if ns != self {
			return pid
		}
	}
	return 0
}

// openAnchor opens pid's mount namespace and root directory through one
// descriptor of its /proc directory, which stays bound to that process:
// if it exits, opening through it fails, and a process that took its PID
// since started after this one (notAfter), so it cannot be an ancestor.
func openAnchor(pid int, notAfter uint64) (*lasting, error) {
	dir, err := unix.Open(fmt.Sprintf("/proc/%d", pid), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dir)
	if err := startedBy(dir, notAfter); err != nil {
		return nil, err
	}
	ns, err := unix.Openat(dir, "ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	root, err := unix.Openat(dir, "root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(ns)
		return nil, err
	}
	// Still the same process after the opens (it did not exit meanwhile).
	if err := startedBy(dir, notAfter); err != nil {
		unix.Close(ns)
		unix.Close(root)
		return nil, err
	}
	return &lasting{pid: pid, ns: ns, root: root}, nil
}

// startedBy checks that the process of the /proc directory dir is alive
// and started no later than notAfter.
func startedBy(dir int, notAfter uint64) error {
	t, err := startTime(fmt.Sprintf("/proc/self/fd/%d/stat", dir))
	if err != nil {
		return err
	}
	if t > notAfter {
		return errors.New("PID reused by a process younger than this one")
	}
	return nil
}

// startTime reads a process's start time (clock ticks after boot, field 22
// of /proc/PID/stat).
func startTime(statPath string) (uint64, error) {
	b, err := os.ReadFile(statPath)
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields after it start past its last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: no command name", statPath)
	}
	fields := strings.Fields(string(b[i+1:]))
	const startTimeField = 22 - 3 // fields 3.. follow the name
	if len(fields) <= startTimeField {
		return 0, fmt.Errorf("%s: too few fields", statPath)
	}
	return strconv.ParseUint(fields[startTimeField], 10, 64)
}

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
func Private() bool { return anchor() != nil }

// Root is a path prefix that resolves in the anchor's mount namespace, or ""
// when this process's own namespace is the lasting one. It names the held
// root directory (/proc/self/fd/N), so it is good only in this process.
func Root() string {
	if a := anchor(); a != nil {
		return fmt.Sprintf("/proc/self/fd/%d", a.root)
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
	a := anchor()
	if a == nil {
		return fn()
	}
	// setns(CLONE_NEWNS) needs a thread that does not share its fs_struct.
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return fmt.Errorf("unshare fs: %w", err)
	}
	if err := unix.Setns(a.ns, unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("join the mount namespace of pid %d (held since start): %w", a.pid, err)
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
