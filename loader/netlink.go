package loader

import (
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// HostNetlink is a netlink handle for requests in the calling thread's
// network namespace. netlink's package functions open a socket per
// request (socket, bind, poller registration, close: a dozen syscalls);
// an attach makes some ten requests in the host's namespace, a
// long-lived process (the daemon) thousands. When the thread is in the
// namespace the process started in, the handle is one kept socket for
// the life of the process, shared by all goroutines (netlink locks it
// per request); in any other namespace (a goroutine that entered one on
// its locked thread: tests, the CNI plugin's helpers) it opens a socket
// per request, as the package functions do. The check is one stat of
// the thread's namespace.
func HostNetlink() *netlink.Handle {
	var st unix.Stat_t
	if unix.Stat("/proc/thread-self/ns/net", &st) != nil || st.Ino != hostNetns.ino {
		return &netlink.Handle{} // the package functions' handle: a socket per request
	}
	hostNetns.once.Do(func() {
		// Made here, on a thread in that namespace (checked above).
		if h, err := netlink.NewHandle(unix.NETLINK_ROUTE); err == nil {
			hostNetns.h = h
		}
	})
	if hostNetns.h == nil {
		return &netlink.Handle{}
	}
	return hostNetns.h
}

// hostNetns is the namespace the process started in (read at init, on
// the main thread, before anything could enter another) and its kept
// handle.
var hostNetns struct {
	ino  uint64
	once sync.Once
	h    *netlink.Handle
}

func init() {
	var st unix.Stat_t
	if unix.Stat("/proc/thread-self/ns/net", &st) == nil {
		hostNetns.ino = st.Ino
	}
}
