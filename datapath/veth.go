package datapath

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/ebpfnet/ebpfnet/datapath/plumbing"
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
	idx, del, err := plumbing.AddVeth(plumbing.Veth{
		Host: ep.HostVeth, Peer: ep.Interface(), PeerMAC: mac, MTU: n.MTU,
		BridgeIndex: br.Attrs().Index, PeerNS: ns.fd, HasPeerNS: true, Up: true, Hairpin: n.hairpin(),
	})
	if del != nil {
		rollback.add(del)
	}
	if err != nil {
		return err
	}
	ep.HostIfindex = idx
	return ns.do(func(h *netlink.Handle) (err error) {
		ep.ContainerIfindex, ep.DefaultRoute, err = plumbing.ConfigureContainerEnd(h, ep.Interface(), netip.PrefixFrom(ep.IP, n.Subnet.Bits()), n.Gateway, ns.Path)
		return err
	})
}

func setLoopbackUp(ns target) error {
	return ns.do(func(h *netlink.Handle) error {
		if err := plumbing.LoopbackUp(h); err != nil {
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
