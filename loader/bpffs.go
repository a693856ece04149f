package loader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultBPFFS is where bpffs lives on a systemd host.
const DefaultBPFFS = "/sys/fs/bpf"

// initRoot reaches the mount namespace of this PID namespace's init. Paths
// under it outlive an `ip netns exec` mount namespace, which remounts /sys
// and so hides the host's bpffs.
const initRoot = "/proc/1/root"

// PreparePinRoot makes sure root is on a bpffs that persists after this
// process exits and returns the path to use for pinning, creating the
// directory. It mounts bpffs at /sys/fs/bpf when no bpffs is there.
func PreparePinRoot(root string) (string, error) {
	if !filepath.IsAbs(root) {
		return "", fmt.Errorf("pin root %q: must be an absolute path", root)
	}
	root = filepath.Clean(root)
	resolved, err := resolvePinRoot(root)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(resolved, 0o700); err != nil {
		return "", fmt.Errorf("create pin root: %w", err)
	}
	return resolved, nil
}

func resolvePinRoot(root string) (string, error) {
	if onBPFFS(root) {
		return root, nil
	}
	shared := !sameMountNS()
	if shared && onBPFFS(initRoot+root) {
		return initRoot + root, nil
	}
	if root != DefaultBPFFS && !strings.HasPrefix(root, DefaultBPFFS+"/") {
		return "", fmt.Errorf("pin root %s is not on a bpffs: mount one there (mount -t bpf bpf DIR) or use a path under %s", root, DefaultBPFFS)
	}
	if !shared {
		if err := mountBPFFS(DefaultBPFFS); err != nil {
			return "", err
		}
		return root, nil
	}
	if err := inInitMountNS(func() error { return mountBPFFS(DefaultBPFFS) }); err != nil {
		return "", err
	}
	return initRoot + root, nil
}

// onBPFFS reports whether the deepest existing directory of path is on bpffs.
func onBPFFS(path string) bool {
	for p := path; ; p = filepath.Dir(p) {
		var st unix.Statfs_t
		err := unix.Statfs(p, &st)
		if err == nil {
			return st.Type == unix.BPF_FS_MAGIC
		}
		if !errors.Is(err, unix.ENOENT) || p == "/" {
			return false
		}
	}
}

func sameMountNS() bool {
	self, err1 := os.Readlink("/proc/self/ns/mnt")
	init, err2 := os.Readlink("/proc/1/ns/mnt")
	return err1 == nil && err2 == nil && self == init
}

func mountBPFFS(dir string) error {
	if onBPFFS(dir) {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mount bpffs at %s: %w", dir, err)
	}
	return nil
}

// inInitMountNS runs fn on a dedicated OS thread that has joined PID 1's
// mount namespace. The thread is never returned to the Go scheduler: it exits
// with the goroutine, taking its changed filesystem state with it.
func inInitMountNS(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// setns(CLONE_NEWNS) needs a thread that does not share its fs_struct.
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare fs: %w", err)
			return
		}
		fd, err := unix.Open("/proc/1/ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open init mount namespace: %w", err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNS); err != nil {
			errc <- fmt.Errorf("join init mount namespace: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}
