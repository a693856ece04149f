package datapath

import (
	"errors"
	"os"

	"github.com/vishvananda/netlink"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
)

// Whether an endpoint is still in use depends on what made it, and every
// piece of housekeeping (ls's status, prune, rm, the daemon's reconcile,
// CNI GC) asks InUse, so none of them can call an endpoint dead that
// another one keeps, or remove a container's network from under it:
//
//   - a prepared endpoint (Docker's driver) lives as long as its host veth:
//     the runtime moved the other end into a sandbox ebpfnet never opened,
//     and the pair dies with that sandbox. It has no namespace inode.
//   - any other endpoint (the CLI's, ebpfnet run's, the CNI plugin's, the
//     API's) lives as long as the namespace it was attached to: its path
//     (a name, a runtime's netns file, /proc/PID/ns/net) still opens the
//     namespace with the recorded inode. An inode check, not the path
//     alone, because a path can be reused for another namespace.
//   - a record with neither (never written by this version) is kept:
//     nothing says it is gone.

// InUse reports whether the endpoint's container still exists, by the rule
// for the kind of front end that made it. When it cannot tell, it says
// yes: housekeeping must never remove a live container's network.
func (i *Instance) InUse(ep Endpoint) bool {
	switch {
	case ep.PeerName != "":
		return hostVethAlive(ep)
	case ep.NetnsIno != 0:
		return namespaceAlive(ep.Netns, ep.NetnsIno)
	}
	return true
}

// hostVethAlive reports whether a prepared endpoint's host veth is still
// the one it made (same name and ifindex) in this namespace.
func hostVethAlive(ep Endpoint) bool {
	l, err := netlink.LinkByName(ep.HostVeth)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return false
	}
	if err != nil {
		return true // unsure: keep it
	}
	return l.Attrs().Index == ep.HostIfindex
}

// namespaceAlive reports whether ref still opens the namespace with inode
// ino.
func namespaceAlive(ref string, ino uint64) bool {
	ns, err := netnsutil.Resolve(ref)
	if errors.Is(err, os.ErrPermission) {
		return true // unsure: keep it
	}
	return err == nil && ns.Ino == ino
}
