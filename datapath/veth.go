package datapath

import (
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
)

// plumbVeth creates the veth pair with its container end (eth0 or the
// endpoint's IfName) directly in the target namespace, addresses it and
// routes via the gateway if the namespace has no default route yet.
func (i *Instance) plumbVeth(ep *Endpoint, n Network, ns target, rollback *undo) error {
	br, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		return fmt.Errorf("bridge %s of network %s is missing: %w", n.Bridge, n.Name, err)
	}
	mac, _ := net.ParseMAC(ep.MAC)
	veth := &netlink.Veth{
		// Up in the create request itself: one round trip less.
		LinkAttrs:        netlink.LinkAttrs{Name: ep.HostVeth, MTU: n.MTU, MasterIndex: br.Attrs().Index, Flags: net.FlagUp},
		PeerName:         ep.Interface(),
		PeerHardwareAddr: mac,
		PeerNamespace:    netlink.NsFd(ns.fd),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("create veth %s: %w", ep.HostVeth, err)
	}
	// Deleting the host end deletes the container end too.
	rollback.add(func() { netlink.LinkDel(veth) })
	// LinkAdd looked the new link up by name for its index already.
	if ep.HostIfindex = veth.Attrs().Index; ep.HostIfindex == 0 {
		host, err := netlink.LinkByName(ep.HostVeth)
		if err != nil {
			return err
		}
		ep.HostIfindex = host.Attrs().Index
	}

	return ns.do(func(h *netlink.Handle) error { return configureContainerEnd(h, ep, n, ns.Path) })
}

// configureContainerEnd addresses the container end, brings it (and lo)
// up and gives the namespace its default route if it has none: the first
// network gives it, as in Docker; a network connected later only its
// subnet's.
func configureContainerEnd(h *netlink.Handle, ep *Endpoint, n Network, where string) error {
	eth0, err := h.LinkByName(ep.Interface())
	if err != nil {
		return fmt.Errorf("find %s in %s: %w", ep.Interface(), where, err)
	}
	ep.ContainerIfindex = eth0.Attrs().Index
	ep.DefaultRoute = !hasDefaultRoute(h)
	steps := []struct {
		what string
		do   func() error
	}{
		{"bring up lo", func() error { return linkUpByName(h, "lo") }},
		{"address " + ep.Interface(), func() error {
			return h.AddrAdd(eth0, &netlink.Addr{IPNet: prefixIPNet(netip.PrefixFrom(ep.IP, n.Subnet.Bits()))})
		}},
		{"bring up " + ep.Interface(), func() error { return h.LinkSetUp(eth0) }},
		{"add default route", func() error {
			if !ep.DefaultRoute {
				return nil
			}
			return h.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: n.Gateway.AsSlice()})
		}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			return fmt.Errorf("%s in %s: %w", s.what, where, err)
		}
	}
	return nil
}

func linkUpByName(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return err
	}
	return h.LinkSetUp(l)
}

// withHandle runs fn with a netlink handle inside ns.
func withHandle(ns netnsutil.Namespace, fn func(*netlink.Handle) error) error {
	nsh, err := ns.Open()
	if err != nil {
		return err
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", ns.Path, err)
	}
	defer h.Close()
	return fn(h)
}

func setLoopbackUp(ns target) error {
	return ns.do(func(h *netlink.Handle) error {
		if err := linkUpByName(h, "lo"); err != nil {
			return fmt.Errorf("bring up lo in %s: %w", ns.Path, err)
		}
		return nil
	})
}

func checkNoInterface(ns target, ifName string) error {
	return ns.do(func(h *netlink.Handle) error {
		if _, err := h.LinkByName(ifName); err == nil {
			return existsf("target %s already has an %s interface", ns.Path, ifName)
		}
		return nil
	})
}

func hasDefaultRoute(h *netlink.Handle) bool {
	routes, err := h.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(routes, isDefaultRoute)
}

func isDefaultRoute(r netlink.Route) bool {
	return r.Dst == nil || (r.Dst.IP.IsUnspecified() && r.Dst.Mask != nil && net.IP(r.Dst.Mask).IsUnspecified())
}
