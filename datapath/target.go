package datapath

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ebpfnet/ebpfnet/datapath/plumbing"
	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
	"github.com/ebpfnet/ebpfnet/loader"
)

// The namespace an attach works in. A path names a namespace only for the
// moment it is looked at: `ip netns delete X; ip netns add X` (or a runtime
// re-binding its netns file) points it at another one, and a namespace
// that died hands its inode to the next one made. Attach used to resolve
// the target, check it, and open the path again for each step, so a path
// re-pointed in between (a runner reusing a netns name, a namespace torn
// down and made again while an ADD ran) got the veth in a namespace the
// result did not name: ADD reported an address the caller's namespace
// never had. Now the namespace is held open from resolution to the end of
// the attach, every step works in that one, and before the record is
// saved the attach checks that the target still names it and that the
// interface there has the MAC and address it reports.

// target is an attach's network namespace, held open by descriptor so it
// cannot die (and give its inode away) while the attach runs, with one
// rtnetlink socket in it for all of the attach's requests there (a handle
// per request cost three sockets, each made by entering the namespace and
// leaving it again).
type target struct {
	netnsutil.Namespace
	fd netns.NsHandle
	h  *netlink.Handle
}

// openTarget opens a resolved namespace and checks the descriptor is the
// namespace that was resolved.
func openTarget(ns netnsutil.Namespace) (target, error) {
	fd, err := ns.Open()
	if err != nil {
		return target{}, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(fd), &st); err != nil {
		fd.Close()
		return target{}, fmt.Errorf("open netns %s: %w", ns.Path, err)
	}
	if st.Ino != ns.Ino {
		fd.Close()
		return target{}, fmt.Errorf("target %s changed while it was opened (another namespace is bound there now)", ns.Ref)
	}
	h, err := netlink.NewHandleAt(fd, unix.NETLINK_ROUTE)
	if err != nil {
		fd.Close()
		return target{}, fmt.Errorf("netlink in %s: %w", ns.Path, err)
	}
	return target{ns, fd, h}, nil
}

func (t target) close() {
	t.h.Close()
	t.fd.Close()
}

// do runs fn with the target's netlink handle.
func (t target) do(fn func(*netlink.Handle) error) error { return fn(t.h) }

// cookie is the namespace's cookie, the name the socket hooks know it by.
func (t target) cookie() (c uint64, err error) {
	err = netnsutil.DoIn(t.fd, t.Path, func() error {
		c, err = loader.NetnsCookie()
		return err
	})
	return c, err
}

// verifyPlumbed checks what attach is about to report: that name (the
// target as given) still names the namespace the attach worked in, and
// that ep's interface there is up with ep's MAC and address, and carries
// the default route if ep says it does.
func verifyPlumbed(t target, name string, ep Endpoint, n Network) error {
	now, err := netnsutil.Resolve(name)
	if err != nil {
		return fmt.Errorf("target %s vanished while it was attached: %w", name, err)
	}
	if now.Ino != t.Ino {
		return fmt.Errorf("target %s names another network namespace than the one attached (it was deleted and made again meanwhile)", name)
	}
	return t.do(func(h *netlink.Handle) error {
		l, err := h.LinkByIndex(ep.ContainerIfindex)
		if err != nil || l.Attrs().Name != ep.Interface() {
			return fmt.Errorf("interface %s is missing in %s after attach", ep.Interface(), name)
		}
		if l.Attrs().HardwareAddr.String() != ep.MAC {
			return fmt.Errorf("interface %s in %s has MAC %s, not %s", ep.Interface(), name, l.Attrs().HardwareAddr, ep.MAC)
		}
		if l.Attrs().Flags&unix.IFF_UP == 0 {
			return fmt.Errorf("interface %s in %s is down after attach", ep.Interface(), name)
		}
		if ep.IP.IsValid() {
			if err := holdsPrefixes(h, l, netlink.FAMILY_V4, ep, name, ep.Prefix(n)); err != nil {
				return err
			}
		}
		if ep.DefaultRoute && !plumbing.DefaultRouteVia(h, l.Attrs().Index, n.Gateway) {
			return fmt.Errorf("no default route via %s in %s after attach", n.Gateway, name)
		}
		return verifyPlumbed6(h, l, ep, n, name)
	})
}

// verifyPlumbed6 is verifyPlumbed for ep's IPv6 side, if it has one.
func verifyPlumbed6(h *netlink.Handle, l netlink.Link, ep Endpoint, n Network, name string) error {
	v6 := containerIPv6(ep, n)
	if !v6.Addr.IsValid() {
		return nil
	}
	if err := holdsPrefixes(h, l, netlink.FAMILY_V6, ep, name, v6.Addr, netip.PrefixFrom(v6.LinkLocal, 64)); err != nil {
		return err
	}
	if ep.DefaultRoute6 && !plumbing.DefaultRouteVia(h, l.Attrs().Index, n.Gateway6) {
		return fmt.Errorf("no IPv6 default route via %s in %s after attach", n.Gateway6, name)
	}
	return nil
}

// holdsPrefixes checks that ep's interface l (in h's namespace, the target
// named name) holds each of wants, addresses of one family.
func holdsPrefixes(h *netlink.Handle, l netlink.Link, family int, ep Endpoint, name string, wants ...netip.Prefix) error {
	addrs, err := h.AddrList(l, family)
	if err != nil {
		return fmt.Errorf("addresses of %s in %s: %w", ep.Interface(), name, err)
	}
	for _, want := range wants {
		if !slices.ContainsFunc(addrs, func(a netlink.Addr) bool {
			p, ok := plumbing.IPNetPrefix(a.IPNet)
			return ok && p == want
		}) {
			return fmt.Errorf("interface %s in %s lacks address %s after attach", ep.Interface(), name, want)
		}
	}
	return nil
}
