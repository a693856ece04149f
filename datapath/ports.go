package datapath

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/ebpfnet/ebpfnet/datapath/ports"
	"github.com/ebpfnet/ebpfnet/maps"
)

// The port types front ends show are ports' (datapath/ports), named here
// as before.
type (
	// PortMapping is one published port, as `docker port` shows it.
	PortMapping = ports.Mapping
	// PortRequest asks for a published port (a host port, a range or any).
	PortRequest = ports.Request
	// Protocol is a published port's transport protocol.
	Protocol = ports.Protocol
)

// Published ports are TCP or UDP.
const (
	TCP = ports.TCP
	UDP = ports.UDP
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
func (i *Instance) Ports(target string) ([]PortMapping, error) {
	var out []PortMapping
	err := i.withStore(func(st *store) error {
		ep, err := findEndpoint(st, target)
		out = ep.Ports
		return err
	})
	return out, err
}

// PortBinding is one published port as the datapath holds it: traffic for
// (Proto, HostIP, HostPort) is DNATed to ContainerIP:ContainerPort.
type PortBinding struct {
	Proto         Protocol   `json:"proto"`
	HostIP        netip.Addr `json:"host_ip,omitzero"` // zero: every host address
	HostPort      uint16     `json:"host_port"`
	ContainerIP   netip.Addr `json:"container_ip"`
	ContainerPort uint16     `json:"container_port"`
}

func (b PortBinding) String() string {
	return fmt.Sprintf("%s:%d/%s -> %s:%d", ports.HostAddrString(b.HostIP), b.HostPort, b.Proto, b.ContainerIP, b.ContainerPort)
}

// PortBindings lists the published ports in the datapath's table, the
// kernel's truth (`nat ls`), sorted by protocol, host address and port.
func (i *Instance) PortBindings() ([]PortBinding, error) {
	views, err := i.datapath()
	if err != nil {
		return nil, err
	}
	raw, err := views.PortBindings()
	if err != nil {
		return nil, err
	}
	out := make([]PortBinding, 0, len(raw))
	for _, b := range raw {
		out = append(out, PortBinding{
			Proto: Protocol(b.Proto), HostIP: b.HostIP, HostPort: b.HostPort,
			ContainerIP: b.ContainerIP, ContainerPort: b.ContainerPort,
		})
	}
	slices.SortFunc(out, func(a, b PortBinding) int {
		return cmp.Or(cmp.Compare(a.Proto, b.Proto), a.HostIP.Compare(b.HostIP), cmp.Compare(a.HostPort, b.HostPort))
	})
	return out, nil
}

// binding is the datapath entry that publishes p for ep.
func binding(p PortMapping, ep Endpoint) maps.PortBinding {
	return maps.PortBinding{
		Proto: uint8(p.Proto), HostIP: p.HostIP, HostPort: p.HostPort,
		ContainerIP: ep.IP, ContainerPort: p.ContainerPort, Ifindex: ep.HostIfindex, RuntimeHeld: p.RuntimeHeld,
	}
}

func bindings(ps []PortMapping, ep Endpoint) []maps.PortBinding {
	out := make([]maps.PortBinding, len(ps))
	for j, p := range ps {
		out[j] = binding(p, ep)
	}
	return out
}
