package loader

import (
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
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
	if !inHostNetns() || hostNetns.h == nil {
		return &netlink.Handle{} // the package functions' handle: a socket per request
	}
	return hostNetns.h
}

// HostNetlinkRequest is an rtnetlink request of type typ with flags, for
// a message netlink's API does not make (one RTM_NEWLINK with more in it
// than LinkAdd puts there), on HostNetlink's kept socket (another one,
// kept as long) when the calling thread is in the process's namespace,
// else on a socket of its own.
func HostNetlinkRequest(typ, flags int) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(typ, flags)
	if inHostNetns() && hostNetns.raw != nil {
		req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: hostNetns.raw}
	}
	return req
}

// inHostNetns says whether the calling thread is in the namespace the
// process started in, and makes the kept sockets on first use there.
func inHostNetns() bool {
	var st unix.Stat_t
	if unix.Stat("/proc/thread-self/ns/net", &st) != nil || st.Ino != hostNetns.ino {
		return false
	}
	hostNetns.once.Do(func() {
		// Made here, on a thread in that namespace (checked above).
		if h, err := netlink.NewHandle(unix.NETLINK_ROUTE); err == nil {
			hostNetns.h = h
		}
		if s, err := nl.GetNetlinkSocketAt(netns.None(), netns.None(), unix.NETLINK_ROUTE); err == nil {
			hostNetns.raw = &nl.SocketHandle{Socket: s}
		}
	})
	return true
}

// hostNetns is the namespace the process started in (read at init, on
// the main thread, before anything could enter another) and its kept
// handle.
var hostNetns struct {
	ino  uint64
	once sync.Once
	h    *netlink.Handle
	raw  *nl.SocketHandle
}

func init() {
	var st unix.Stat_t
	if unix.Stat("/proc/thread-self/ns/net", &st) == nil {
		hostNetns.ino = st.Ino
	}
}
