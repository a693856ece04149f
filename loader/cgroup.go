package loader

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/ebpfnet/ebpfnet/internal/mountns"
)

// NetnsCookie identifies the network namespace the calling thread runs in,
// as bpf_get_netns_cookie does in the kernel.
func NetnsCookie() (uint64, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	cookie, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	if err != nil {
		return 0, fmt.Errorf("netns cookie: %w", err)
	}
	return cookie, nil
}

// Cgroup2Root finds the cgroup v2 hierarchy's mount point (/sys/fs/cgroup,
// or /sys/fs/cgroup/unified on a hybrid host) as the calling thread sees it.
// Under `ip netns exec` the process's own mount namespace has a fresh /sys
// without it: call it inside mountns.Do, whose thread sits in the lasting
// one. The path is only good on this thread.
func Cgroup2Root() (string, error) {
	// /proc/self is the main thread, which may sit in another mount
	// namespace than the caller: read the thread's own table.
	if p, err := cgroup2Mount("/proc/thread-self/mountinfo"); err == nil {
		return p, nil
	}
	return "", errors.New("no cgroup v2 hierarchy mounted: host-local access to published ports needs one")
}

func cgroup2Mount(mountinfo string) (string, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		// ID parent major:minor root mountpoint options ... - fstype source options
		pre, post, ok := strings.Cut(s.Text(), " - ")
		fields := strings.Fields(pre)
		if ok && strings.HasPrefix(post, "cgroup2 ") && len(fields) >= 5 && fields[3] == "/" {
			return fields[4], nil
		}
	}
	return "", os.ErrNotExist
}

// AttachSockHooks attaches the socket-layer programs to the root cgroup so
// host processes reach published ports locally. The programs act only on
// sockets of this instance's network namespace. Attaching again is a no-op.
// The cgroup is found and opened on one thread in the lasting mount
// namespace, where the hierarchy is mounted even under `ip netns exec`.
func (d *Datapath) AttachSockHooks() error {
	var todo []string
	for _, name := range SockPrograms {
		if _, err := os.Stat(d.linkPath("cgroup", name)); err == nil && d.pinRoot != "" {
			continue
		}
		todo = append(todo, name)
	}
	if len(todo) == 0 {
		return nil
	}
	var links []link.Link
	err := mountns.Do(func() error {
		root, err := Cgroup2Root()
		if err != nil {
			return err
		}
		for _, name := range todo {
			typ, err := d.attachType(name)
			if err != nil {
				return err
			}
			l, err := link.AttachCgroup(link.CgroupOptions{Path: root, Attach: typ, Program: d.programs[name]})
			if err != nil {
				return fmt.Errorf("attach %s to cgroup %s: %w", name, root, err)
			}
			links = append(links, l)
		}
		return nil
	})
	// Pin here, not in the lasting mount namespace: the pin root was
	// resolved from this one. Closing a link that is not pinned detaches it.
	for i, l := range links {
		if err == nil && d.pinRoot != "" {
			if perr := l.Pin(d.linkPath("cgroup", todo[i])); perr != nil {
				err = fmt.Errorf("pin %s: %w", todo[i], perr)
			}
		}
		l.Close()
	}
	if err != nil {
		for _, name := range todo {
			d.DetachSockHook(name)
		}
		return err
	}
	return nil
}

// DetachSockHook removes one pinned cgroup link.
func (d *Datapath) DetachSockHook(name string) error {
	return d.DetachTCX(name, "cgroup")
}

// DetachSockHooks removes all socket-layer links of this instance.
func (d *Datapath) DetachSockHooks() error {
	var errs []error
	for _, name := range SockPrograms {
		errs = append(errs, d.DetachSockHook(name))
	}
	return errors.Join(errs...)
}

// SockHooksAttached reports whether the socket-layer links are pinned.
func (d *Datapath) SockHooksAttached() bool {
	_, err := os.Stat(filepath.Join(d.pinRoot, "links", "cgroup:"+SockPrograms[0]))
	return err == nil
}
