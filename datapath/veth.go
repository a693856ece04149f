package datapath

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/ebpfnet/ebpfnet/datapath/plumbing"
	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

// plumbVeth creates the veth pair with its container end (eth0 or the
// endpoint's IfName) directly in the target namespace, addresses it and
// routes via the gateway if the namespace has no default route yet. The
// host end stays down, so that nothing the container sends reaches the
// bridge before from_container judges it: the caller attaches the program
// (attachProgram) and brings it up once the program is attached.
func (i *Instance) plumbVeth(ep *Endpoint, n Network, ns target, rollback *undo) error {
	br, err := loader.HostNetlink().LinkByName(n.Bridge)
	if err != nil {
		return fmt.Errorf("bridge %s of network %s is missing: %w", n.Bridge, n.Name, err)
	}
	mac, _ := net.ParseMAC(ep.MAC)
	idx, del, err := plumbing.AddVeth(plumbing.Veth{
		Host: ep.HostVeth, Peer: ep.Interface(), PeerMAC: mac, MTU: n.MTU,
		BridgeIndex: br.Attrs().Index, PeerNS: ns.fd, HasPeerNS: true, Hairpin: n.hairpin(),
	})
	if del != nil {
		rollback.add(del)
	}
	if err != nil {
		return err
	}
	ep.HostIfindex = idx
	v6 := containerIPv6(*ep, n)
	if v6.Addr.IsValid() {
		if err := netnsutil.DoIn(ns.fd, ns.Path, func() error { return plumbing.ConfigureContainerIPv6(ep.Interface()) }); err != nil {
			return err
		}
	}
	return ns.do(func(h *netlink.Handle) (err error) {
		ep.ContainerIfindex, ep.DefaultRoute, ep.DefaultRoute6, err = plumbing.ConfigureContainerEnd(h, ep.Interface(),
			ep.Prefix(n), n.Gateway, v6, ns.Path)
		return err
	})
}

// attachProgram is the step that attaches from_container at ingress of
// the host veth: a clsact qdisc and a cls_bpf filter (loader/tc.go says
// why not TCX), or with tcx a pinned TCX link (AttachOptions.TCXLink).
// Its undo removes the qdisc or the link; deleting the veth would too,
// but not the link's pin.
func (i *Instance) attachProgram(ifindex *int, name string, tcx bool) step {
	if tcx {
		return step{name: "program attach",
			do: func() error {
				_, err := i.dp.AttachTCXIngress(loader.ProgFromContainer, *ifindex, name)
				return err
			},
			undo: func() { i.dp.DetachTCX(loader.ProgFromContainer, name) },
		}
	}
	return step{name: "program attach",
		do: func() error {
			return i.dp.AttachTCIngress(loader.ProgFromContainer, *ifindex, name)
		},
		undo: func() { loader.DetachTCIngress(*ifindex) },
	}
}

// detachProgram is the step that removes a pinned TCX link of
// from_container from the host veth, which endpoints attached by builds
// before the cls_bpf filter have, and those attached with TCXLink. The
// filter goes with the veth.
func (i *Instance) detachProgram(name string) step {
	return step{name: "program detach", do: func() error { return i.dp.DetachTCX(loader.ProgFromContainer, name) }}
}

// containerIPv6 is ep's IPv6 side on n (zero without IPv6).
func containerIPv6(ep Endpoint, n Network) plumbing.ContainerIPv6 {
	if !ep.IP6.IsValid() || !n.Subnet6.IsValid() {
		return plumbing.ContainerIPv6{}
	}
	mac, _ := net.ParseMAC(ep.MAC)
	return plumbing.ContainerIPv6{Addr: netip.PrefixFrom(ep.IP6, n.Subnet6.Bits()), LinkLocal: maps.LinkLocal(mac), Gateway: n.Gateway6}
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

// enableForwarding makes a host veth forward IPv4 and IPv6: bpf_fib_lookup
// answers only "forwarding disabled" for packets that arrive on an
// interface that does not. IPv6 is needed even for a container without
// IPv6 (ipv6: false): the replies of its NAT64 flows (bpf/lib/nat64.h)
// are looked up as IPv6 arriving on its veth; there a host without IPv6
// is no error.
func enableForwarding(hostVeth string, ipv6 bool) error {
	if err := plumbing.EnableForwarding6(hostVeth); err != nil && ipv6 {
		return err
	}
	return plumbing.EnableForwarding(hostVeth)
}
