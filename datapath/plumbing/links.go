package plumbing

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ebpfnet/ebpfnet/loader"
)

// Veth is a veth pair to make: its host end on a bridge, its peer either in
// another namespace (PeerNS) or, without one, in this one.
type Veth struct {
	Host, Peer  string
	PeerMAC     net.HardwareAddr
	MTU         int
	BridgeIndex int
	// PeerNS is where the peer goes if HasPeerNS.
	PeerNS    netns.NsHandle
	HasPeerNS bool
	// Up brings the host end up in the create request itself (one round
	// trip less).
	Up bool
	// Hairpin lets the bridge send a frame back out of the port it came
	// in on: netfilter's DNAT of a pod to its own Service is bridged back
	// to it (the bridge CNI plugin's hairpinMode).
	Hairpin bool
}

// AddVeth makes v and returns the host end's ifindex and how to delete
// the pair again (deleting the host end deletes the peer too). It is one
// request: the host end's bridge is in it (netlink's LinkAdd sets it with
// a second request, and looks the new link up by name with a third), and
// the kernel's echo of the new link (NLM_F_ECHO, Linux 6.3 on) gives its
// ifindex; an older kernel, which sends none, costs the lookup by name.
func AddVeth(v Veth) (ifindex int, del func(), err error) {
	req := loader.HostNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK|unix.NLM_F_ECHO)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	if v.Up {
		msg.Change, msg.Flags = unix.IFF_UP, unix.IFF_UP
	}
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(v.Host)))
	if v.MTU > 0 {
		req.AddData(nl.NewRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(v.MTU))))
	}
	req.AddData(nl.NewRtAttr(unix.IFLA_TXQLEN, nl.Uint32Attr(0))) // as LinkAdd of a zero LinkAttrs made it
	if v.BridgeIndex != 0 {
		req.AddData(nl.NewRtAttr(unix.IFLA_MASTER, nl.Uint32Attr(uint32(v.BridgeIndex))))
	}
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("veth"))
	peer := info.AddRtAttr(nl.IFLA_INFO_DATA, nil).AddRtAttr(nl.VETH_INFO_PEER, nil)
	nl.NewIfInfomsgChild(peer, unix.AF_UNSPEC)
	peer.AddRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(v.Peer))
	peer.AddRtAttr(unix.IFLA_TXQLEN, nl.Uint32Attr(0))
	if v.MTU > 0 {
		peer.AddRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(v.MTU)))
	}
	if v.PeerMAC != nil {
		peer.AddRtAttr(unix.IFLA_ADDRESS, []byte(v.PeerMAC))
	}
	if v.HasPeerNS {
		peer.AddRtAttr(unix.IFLA_NET_NS_FD, nl.Uint32Attr(uint32(v.PeerNS)))
	}
	req.AddData(info)
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil {
		return 0, nil, fmt.Errorf("create veth %s: %w", v.Host, err)
	}
	h := loader.HostNetlink()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: v.Host}}
	del = func() { h.LinkDel(veth) }
	for _, m := range msgs {
		if echoed(m, v.Host) {
			ifindex = int(nl.DeserializeIfInfomsg(m).Index)
			break
		}
	}
	if ifindex == 0 {
		host, err := h.LinkByName(v.Host)
		if err != nil {
			return 0, del, err
		}
		ifindex = host.Attrs().Index
	}
	veth.Index = ifindex
	if v.Hairpin {
		// By that index: no lookup by name again.
		if err := h.LinkSetHairpin(veth, true); err != nil {
			return ifindex, del, fmt.Errorf("set hairpin mode of %s: %w", v.Host, err)
		}
	}
	return ifindex, del, nil
}

// echoed says whether m, an RTM_NEWLINK message, is the link name's.
func echoed(m []byte, name string) bool {
	if len(m) < unix.SizeofIfInfomsg {
		return false
	}
	attrs, err := nl.ParseRouteAttr(m[unix.SizeofIfInfomsg:])
	if err != nil {
		return false
	}
	for _, a := range attrs {
		if a.Attr.Type == unix.IFLA_IFNAME {
			return strings.TrimRight(string(a.Value), "\x00") == name
		}
	}
	return false
}

// SetLinkUp brings the interface ifindex up.
func SetLinkUp(ifindex int) error {
	if err := loader.HostNetlink().LinkSetUp(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ifindex}}); err != nil {
		return fmt.Errorf("bring up interface %d: %w", ifindex, err)
	}
	return nil
}

// SetHairpin sets the hairpin mode of the bridge port name.
func SetHairpin(name string, on bool) error {
	l, err := netlink.LinkByName(name)
	if err == nil {
		err = netlink.LinkSetHairpin(l, on)
	}
	if err != nil {
		return fmt.Errorf("set hairpin mode of %s: %w", name, err)
	}
	return nil
}

// ContainerIPv6 is the IPv6 side of a container interface on a dual-stack
// network; the zero value is none.
type ContainerIPv6 struct {
	Addr      netip.Prefix // the global address, with the subnet's length
	LinkLocal netip.Addr   // the one link-local address it may use
	Gateway   netip.Addr
}

// ConfigureContainerEnd addresses the interface ifname of h's namespace
// with addr (and v6's addresses), brings it (and lo) up and gives the
// namespace a default route via gw (and v6.Gateway) if it has none: the
// first network gives it, as in Docker; a network connected later only its
// subnet's. where names the namespace in errors. With v6, the caller has
// run ConfigureContainerIPv6 in the namespace first.
func ConfigureContainerEnd(h *netlink.Handle, ifname string, addr netip.Prefix, gw netip.Addr, v6 ContainerIPv6, where string) (ifindex int, defaultRoute, defaultRoute6 bool, err error) {
	eth0, err := h.LinkByName(ifname)
	if err != nil {
		return 0, false, false, fmt.Errorf("find %s in %s: %w", ifname, where, err)
	}
	// addr zero: an IPv6-only network's endpoint, without IPv4.
	defaultRoute = addr.IsValid() && !HasDefaultRoute(h)
	dual := v6.Addr.IsValid()
	defaultRoute6 = dual && !HasDefaultRoute6(h)
	steps := []struct {
		what string
		do   func() error
	}{
		{"bring up lo", func() error { return LoopbackUp(h) }},
		{"address " + ifname, func() error {
			if !addr.IsValid() {
				return nil
			}
			return h.AddrAdd(eth0, &netlink.Addr{IPNet: PrefixIPNet(addr)})
		}},
		{"address " + ifname + " with IPv6", func() error {
			if !dual {
				return nil
			}
			// Only the addresses the datapath knows: no address of the
			// kernel's making (the MAC is fixed, so the EUI-64 link-local
			// is what from_container accepts), and no duplicate address
			// detection delaying the first packet (the control plane hands
			// each address out once).
			if err := h.LinkSetIP6AddrGenMode(eth0, nl.IN6_ADDR_GEN_MODE_NONE); err != nil {
				return err
			}
			ll := &netlink.Addr{IPNet: PrefixIPNet(netip.PrefixFrom(v6.LinkLocal, 64)), Flags: unix.IFA_F_NODAD, Scope: unix.RT_SCOPE_LINK}
			if err := h.AddrReplace(eth0, ll); err != nil {
				return err
			}
			return h.AddrAdd(eth0, &netlink.Addr{IPNet: PrefixIPNet(v6.Addr), Flags: unix.IFA_F_NODAD})
		}},
		{"bring up " + ifname, func() error { return h.LinkSetUp(eth0) }},
		{"add default route", func() error {
			if !defaultRoute {
				return nil
			}
			return h.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: gw.AsSlice()})
		}},
		{"add IPv6 default route", func() error {
			if !defaultRoute6 {
				return nil
			}
			return h.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: v6.Gateway.AsSlice()})
		}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			return eth0.Attrs().Index, defaultRoute, defaultRoute6, fmt.Errorf("%s in %s: %w", s.what, where, err)
		}
	}
	return eth0.Attrs().Index, defaultRoute, defaultRoute6, nil
}

// ConfigureContainerIPv6 readies ifname of the namespace the calling thread
// is in for IPv6 before it is up: enabled whatever the namespace's default
// (Docker disables it in containers without IPv6), and deaf to router
// advertisements, so that it holds no address or route the control plane
// did not give it.
func ConfigureContainerIPv6(ifname string) error {
	for _, kv := range [][2]string{{"disable_ipv6", "0"}, {"accept_ra", "0"}, {"autoconf", "0"}} {
		path := filepath.Join("/proc/sys/net/ipv6/conf", ifname, kv[0])
		if err := os.WriteFile(path, []byte(kv[1]), 0o644); err != nil {
			return fmt.Errorf("set %s of %s: %w", kv[0], ifname, err)
		}
	}
	return nil
}

// AddBridge makes a bridge with a fixed MAC (a bridge without one takes
// its lowest port's, and loses it with its last port) and returns how to
// delete it again.
func AddBridge(name string, mtu int, mac net.HardwareAddr) (del func(), err error) {
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: mtu, HardwareAddr: mac}}
	if err := netlink.LinkAdd(br); err != nil {
		return nil, fmt.Errorf("create bridge %s: %w", name, err)
	}
	return func() { netlink.LinkDel(br) }, nil
}

// AddressBridge gives the bridge name its gateway addresses, one per
// family (and with them the subnets' routes), and brings it up.
func AddressBridge(name string, gws ...netip.Prefix) (netlink.Link, error) {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return nil, err
	}
	for _, gw := range gws {
		a := &netlink.Addr{IPNet: PrefixIPNet(gw)}
		if gw.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD // the gateway must answer at once
		}
		if err := netlink.AddrAdd(link, a); err != nil {
			return nil, fmt.Errorf("address bridge %s with %s: %w", name, gw, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("bring up bridge %s: %w", name, err)
	}
	return link, nil
}

// AddPreparedVeth makes v with both ends in this namespace (a runtime moves
// the peer itself), gives the peer v's MTU, brings the host end up and
// stores the host end's ifindex in *ifindex. onUndo receives the deletion
// of the pair as soon as it exists.
func AddPreparedVeth(v Veth, ifindex *int, onUndo func(func())) error {
	v.HasPeerNS, v.Up = false, false
	idx, del, err := AddVeth(v)
	if del != nil {
		onUndo(del)
	}
	if err != nil {
		return err
	}
	*ifindex = idx
	peer, err := netlink.LinkByName(v.Peer)
	if err != nil {
		return err
	}
	if peer.Attrs().MTU != v.MTU {
		if err := netlink.LinkSetMTU(peer, v.MTU); err != nil {
			return fmt.Errorf("set MTU of %s: %w", v.Peer, err)
		}
	}
	host, err := netlink.LinkByIndex(idx)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return fmt.Errorf("bring up %s: %w", v.Host, err)
	}
	return nil
}

// EnsureVXLAN makes the VXLAN device name unless it exists (external: the
// tunnel key comes from the programs; no learning: the caller's store is
// the only source of peers) and brings it up. It returns the device's
// ifindex and, if it made it, how to delete it again (else nil).
func EnsureVXLAN(name string, mtu, port int) (ifindex int, del func(), err error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		vx := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: mtu}, FlowBased: true, Port: port, Learning: false}
		if err := netlink.LinkAdd(vx); err != nil {
			return 0, nil, fmt.Errorf("create VXLAN device %s: %w", name, err)
		}
		del = func() { netlink.LinkDel(vx) }
		if l, err = netlink.LinkByName(name); err != nil {
			return 0, del, err
		}
	} else if _, ok := l.(*netlink.Vxlan); !ok {
		return 0, nil, fmt.Errorf("interface %s exists and is no VXLAN device", name)
	}
	// The host's routes to remote endpoints lead here, and their MACs come
	// from the datapath: no ARP.
	if err := netlink.LinkSetARPOff(l); err != nil {
		return 0, del, fmt.Errorf("turn ARP off on %s: %w", name, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return 0, del, fmt.Errorf("bring up %s: %w", name, err)
	}
	return l.Attrs().Index, del, nil
}

// DeleteLink deletes the interface name, if there is one.
func DeleteLink(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil
	}
	return netlink.LinkDel(l)
}

// DeleteVeth deletes the veth pair whose host end is name, if that is
// still the interface ifindex. ENODEV is no error: the kernel was already
// deleting the pair, as it does (asynchronously) when the peer's namespace
// is destroyed.
func DeleteVeth(name string, ifindex int) error {
	h := loader.HostNetlink()
	if l, err := h.LinkByName(name); err == nil && l.Attrs().Index == ifindex {
		if err := h.LinkDel(l); !errors.Is(err, syscall.ENODEV) {
			return err
		}
	}
	return nil
}

// Enslave makes the interface name a port of bridge again, with hairpin
// mode as given; an interface that is gone is left to its owner (no
// error).
func Enslave(name string, bridge netlink.Link, hairpin bool) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil
	}
	if err := netlink.LinkSetMaster(l, bridge); err != nil {
		return err
	}
	if hairpin {
		return SetHairpin(name, true)
	}
	return nil
}

// AddDefaultRouteIfNone gives h's namespace a default route via gw through
// ifname unless it has one; it reports whether it added it.
func AddDefaultRouteIfNone(h *netlink.Handle, ifname string, gw netip.Addr) (bool, error) {
	if HasDefaultRoute(h) {
		return false, nil
	}
	l, err := h.LinkByName(ifname)
	if err != nil {
		return false, err
	}
	return true, h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: gw.AsSlice()})
}
