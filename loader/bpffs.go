package loader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ebpfnet/ebpfnet/internal/mountns"
)

// DefaultBPFFS is where bpffs lives on a systemd host.
const DefaultBPFFS = "/sys/fs/bpf"

// pinRootsDir holds the default pin roots, one per instance.
const pinRootsDir = "ebpfnet"

// DefaultPinRoot is the pin root of the instance called name.
func DefaultPinRoot(name string) string { return filepath.Join(DefaultBPFFS, pinRootsDir, name) }

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
	// Another instance's RemovePins may take away the shared, then empty,
	// parent between MkdirAll's steps: try again.
	for try := 0; ; try++ {
		err := os.MkdirAll(resolved, 0o700)
		if err == nil {
			return resolved, nil
		}
		if !errors.Is(err, os.ErrNotExist) || try == 2 {
			return "", fmt.Errorf("create pin root: %w", err)
		}
	}
}

func resolvePinRoot(root string) (string, error) {
	if onBPFFS(root) {
		return root, nil
	}
	lasting := mountns.Root() + root
	if mountns.Private() && onBPFFS(lasting) {
		return lasting, nil
	}
	if root != DefaultBPFFS && !strings.HasPrefix(root, DefaultBPFFS+"/") {
		return "", fmt.Errorf("pin root %s is not on a bpffs: mount one there (mount -t bpf bpf DIR) or use a path under %s", root, DefaultBPFFS)
	}
	// A mount made in a private mount namespace would take every pin with it
	// when this command exits: mount where it lasts.
	if err := mountns.Do(func() error { return mountBPFFS(DefaultBPFFS) }); err != nil {
		return "", err
	}
	return lasting, nil
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
