package datapath

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/ebpfnet/ebpfnet/datapath/ports"
	"github.com/ebpfnet/ebpfnet/maps"
)

// holder is ep as the port table sees it.
func holder(ep Endpoint) ports.Holder {
	return ports.Holder{Owner: ep.describe(), ContainerID: ep.ContainerID, Ports: ep.Ports}
}

func holders(eps []Endpoint) []ports.Holder {
	out := make([]ports.Holder, len(eps))
	for j, e := range eps {
		out[j] = holder(e)
	}
	return out
}

// Ports returns an endpoint's published ports, as `docker port` shows them.
func (i *Instance) Ports(target string) ([]ports.Mapping, error) {
	var out []ports.Mapping
	err := i.withStore(func(st *store) error {
		ep, err := findEndpoint(st, target)
		out = ep.Ports
		return err
	})
	return out, err
}

// PortEntry is one published port as the datapath holds it: traffic for
// (Proto, HostIP, HostPort) is DNATed to ContainerIP:ContainerPort.
type PortEntry struct {
	Proto         ports.Protocol `json:"proto"`
	HostIP        netip.Addr     `json:"host_ip,omitzero"` // zero: every host address
	HostPort      uint16         `json:"host_port"`
	ContainerIP   netip.Addr     `json:"container_ip"`
	ContainerPort uint16         `json:"container_port"`
}

func (b PortEntry) String() string {
	return fmt.Sprintf("%s:%d/%s -> %s:%d", ports.HostAddrString(b.HostIP), b.HostPort, b.Proto, b.ContainerIP, b.ContainerPort)
}

// PortEntries lists the published ports in the datapath's table, the
// kernel's truth (`nat ls`), sorted by protocol, host address and port.
func (i *Instance) PortEntries() ([]PortEntry, error) {
	views, err := i.datapath()
	if err != nil {
		return nil, err
	}
	raw, err := views.PortEntries()
	if err != nil {
		return nil, err
	}
	out := make([]PortEntry, 0, len(raw))
	for _, b := range raw {
		out = append(out, PortEntry{
			Proto: ports.Protocol(b.Proto), HostIP: b.HostIP, HostPort: b.HostPort,
			ContainerIP: b.ContainerIP, ContainerPort: b.ContainerPort,
		})
	}
	slices.SortFunc(out, func(a, b PortEntry) int {
		return cmp.Or(cmp.Compare(a.Proto, b.Proto), a.HostIP.Compare(b.HostIP), cmp.Compare(a.HostPort, b.HostPort))
	})
	return out, nil
}

// binding is the datapath entry that publishes p for ep.
func binding(p ports.Mapping, ep Endpoint) maps.PortEntry {
	return maps.PortEntry{
		Proto: uint8(p.Proto), HostIP: p.HostIP, HostPort: p.HostPort,
		ContainerIP: ep.IP, ContainerPort: p.ContainerPort, Ifindex: ep.HostIfindex, RuntimeHeld: p.RuntimeHeld,
	}
}

func bindings(ps []ports.Mapping, ep Endpoint) []maps.PortEntry {
	out := make([]maps.PortEntry, len(ps))
	for j, p := range ps {
		out[j] = binding(p, ep)
	}
	return out
}

// portFamilies checks reqs against the address families of n (ok false:
// the default network, made IPv4-only) and returns them as published
// there. A port on an IPv6 host address needs IPv6 on the network: it
// would have no address to answer on (one on every address is served over
// IPv6 by NAT64 instead). On an IPv6-only network a port on an IPv4 host
// address is refused likewise, and one on every address is published on
// every IPv6 address ([::]), as Docker 28 does there.
func portFamilies(reqs []ports.Request, n Network, ok bool) ([]ports.Request, error) {
	if ok && !n.Subnet.IsValid() {
		out := slices.Clone(reqs)
		for j, r := range out {
			switch {
			case !r.HostIP.IsValid():
				out[j].HostIP = netip.IPv6Unspecified()
			case r.HostIP.Is4():
				return nil, fmt.Errorf("published port %d/%s on %s: network %s is IPv6-only (--ipv4=false)", r.ContainerPort, r.Proto, ports.HostAddrString(r.HostIP), n.Name)
			}
		}
		return out, nil
	}
	for _, r := range reqs {
		if r.IPv6() && (!ok || !n.Subnet6.IsValid()) {
			name := n.Name
			if !ok {
				name = "the default network"
			}
			return nil, fmt.Errorf("published port %d/%s on %s: %s has no IPv6 (a network made with --ipv6 has)", r.ContainerPort, r.Proto, ports.HostAddrString(r.HostIP), name)
		}
	}
	return reqs, nil
}
