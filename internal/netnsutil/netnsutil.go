// Package netnsutil finds, creates and enters network namespaces the way
// `ip netns` does, so namespaces ebpfnet makes are listed by `ip netns`.
package netnsutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ebpfnet/ebpfnet/internal/mountns"
)

// RunDir is where `ip netns` keeps named namespaces.
const RunDir = "/run/netns"

// Namespace is a resolved network namespace.
type Namespace struct {
	Ref  string // how to name it later: /run/netns/NAME, /proc/PID/ns/net or the path given
	Path string // a path that opens it from this process (maybe through /proc/PID/root)
	Ino  uint64 // identity: equal inodes are the same namespace
}

// Resolve turns a TARGET (a name as `ip netns` lists it, a netns file path, or
// a PID) into a namespace.
func Resolve(target string) (Namespace, error) {
	var ref string
	switch {
	case target == "":
		return Namespace{}, errors.New("no target given")
	case isPID(target):
		ref = "/proc/" + target + "/ns/net"
		if _, err := os.Stat(ref); err != nil {
			return Namespace{}, notExist(fmt.Sprintf("target %s: no such process", target))
		}
	case strings.ContainsRune(target, '/'):
		ref = target
	default:
		if err := ValidName(target); err != nil {
			return Namespace{}, err
		}
		ref = filepath.Join(RunDir, target)
	}
	// A name bound in the lasting mount namespace after this one was made
	// (under `ip netns exec`) is only reachable through it.
	path := mountns.Visible(ref)
	if path == "" {
		if !strings.ContainsRune(target, '/') && !isPID(target) {
			return Namespace{}, notExist(fmt.Sprintf("target %s: no such network namespace (see ip netns list)", target))
		}
		path = ref
	}
	ino, err := Inode(path)
	if err != nil {
		return Namespace{}, fmt.Errorf("target %s: %w", target, err)
	}
	return Namespace{Ref: ref, Path: path, Ino: ino}, nil
}

// notExist is a message for a target that names nothing: errors.Is(err,
// os.ErrNotExist) holds for it, as for a path that is not there.
type notExist string

func (e notExist) Error() string      { return string(e) }
func (notExist) Is(target error) bool { return target == os.ErrNotExist }

func isPID(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n > 0
}

// ValidName accepts names that are safe as a file name and a netns name.
func ValidName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("invalid name %q: must be 1-64 characters", name)
	}
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || (i > 0 && (r == '-' || r == '_' || r == '.'))
		if !ok {
			return fmt.Errorf("invalid name %q: use letters, digits, '-', '_' and '.', starting with a letter or digit", name)
		}
	}
	return nil
}

// Inode returns the namespace identity of a netns file, checking it is one.
func Inode(path string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, err
	}
	if st.Type != unix.NSFS_MAGIC {
		return 0, fmt.Errorf("%s is not a network namespace file", path)
	}
	var s unix.Stat_t
	if err := unix.Stat(path, &s); err != nil {
		return 0, err
	}
	return s.Ino, nil
}

// Current returns the namespace this process runs in.
func Current() (Namespace, error) {
	path := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
	ino, err := Inode(path)
	return Namespace{Ref: "/proc/self/ns/net", Path: "/proc/self/ns/net", Ino: ino}, err
}

// Open returns a handle for the namespace; the caller closes it.
func (n Namespace) Open() (netns.NsHandle, error) {
	h, err := netns.GetFromPath(n.Path)
	if err != nil {
		return 0, fmt.Errorf("open netns %s: %w", n.Path, err)
	}
	return h, nil
}

// CreateNamed creates a new network namespace registered as /run/netns/NAME,
// as `ip netns add` does. It is created in the lasting mount namespace (see
// package mountns) so it outlives an `ip netns exec` mount namespace.
func CreateNamed(name string) (Namespace, error) {
	if err := ValidName(name); err != nil {
		return Namespace{}, err
	}
	path := filepath.Join(RunDir, name)
	if mountns.Visible(path) != "" {
		return Namespace{}, fmt.Errorf("network namespace %s already exists", name)
	}
	err := mountns.Do(func() error {
		if err := prepareRunDir(); err != nil {
			return err
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
		if err != nil {
			return fmt.Errorf("create %s: %w", path, err)
		}
		f.Close()
		// This thread is discarded after fn, so leaving it in the new
		// namespace is harmless.
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			os.Remove(path)
			return fmt.Errorf("new network namespace: %w", err)
		}
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
			os.Remove(path)
			return fmt.Errorf("bind %s: %w", path, err)
		}
		return nil
	})
	if err != nil {
		return Namespace{}, err
	}
	return Resolve(name)
}

// prepareRunDir makes /run/netns a shared mount like iproute2 does, so netns
// bind mounts propagate to every mount namespace.
func prepareRunDir() error {
	if err := os.MkdirAll(RunDir, 0o755); err != nil {
		return err
	}
	err := unix.Mount("", RunDir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("make %s shared: %w", RunDir, err)
	}
	// Not a mount point yet: bind it onto itself first.
	if err := unix.Mount(RunDir, RunDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", RunDir, err)
	}
	return unix.Mount("", RunDir, "none", unix.MS_SHARED|unix.MS_REC, "")
}

// DeleteNamed removes /run/netns/NAME, as `ip netns delete` does. The
// namespace itself lives on while a process is still in it.
func DeleteNamed(name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	path := filepath.Join(RunDir, name)
	return mountns.Do(func() error {
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unmount %s: %w", path, err)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	})
}

// Do runs fn on an OS thread switched into ns, then switches back.
func Do(ns Namespace, fn func() error) error {
	h, err := ns.Open()
	if err != nil {
		return err
	}
	defer h.Close()
	return DoIn(h, ns.Path, fn)
}

// DoIn runs fn on an OS thread switched into the namespace h holds open
// (path names it in errors), then switches back.
func DoIn(h netns.NsHandle, path string, fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	if err := netns.Set(h); err != nil {
		return fmt.Errorf("enter netns %s: %w", path, err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			// A thread stuck in the wrong namespace must not run other
			// goroutines: keep it locked so it dies with this one.
			runtime.LockOSThread()
		}
	}()
	return fn()
}

// Start starts cmd inside ns: the child inherits the namespace of the
// thread that forks it.
func Start(ns Namespace, cmd *exec.Cmd) error {
	return Do(ns, cmd.Start)
}
