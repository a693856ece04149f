// Package maps gives typed Go views of the datapath's BPF maps. Keys and
// values are the bpf2go mirrors of the C structs in bpf/lib; this package
// converts them to and from netip/net types.
package maps

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/cilium/ebpf"

	"github.com/ebpfnet/ebpfnet/loader"
)

// Views wraps the datapath maps with typed accessors.
type Views struct{ m *loader.Maps }

// New returns the typed views of a loaded datapath's maps.
func New(m *loader.Maps) *Views { return &Views{m: m} }

// BE32 is an IPv4 address as the datapath stores it: network byte order in
// memory.
func BE32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.NativeEndian.Uint32(b[:])
}

// AddrFromBE32 is the inverse of BE32.
func AddrFromBE32(v uint32) netip.Addr {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

func mac6(hw net.HardwareAddr) ([6]uint8, error) {
	var out [6]uint8
	if len(hw) != 6 {
		return out, fmt.Errorf("MAC %v is not 6 bytes", hw)
	}
	copy(out[:], hw)
	return out, nil
}

// Network is one bridge network as the datapath sees it.
type Network struct {
	ID            uint32
	Subnet        netip.Prefix
	Gateway       netip.Addr
	GatewayMAC    net.HardwareAddr
	BridgeIfindex int
	ICC           bool
	Masquerade    bool
	Internal      bool
	// Unprotected (gateway mode nat-unprotected): an uplink may route
	// anything to the containers' addresses, not only replies and
	// published ports.
	Unprotected bool
	// VNI and OverlayIfindex (the host's VXLAN device) make it an overlay
	// network: endpoints on other hosts are reached through the device.
	VNI            uint32
	OverlayIfindex int
	// ServiceCIDRs are handed to the kernel's netfilter (kube-proxy's
	// Services), with the replies of the flows it translates.
	ServiceCIDRs []netip.Prefix
}

// PutNetwork writes n into the networks map and its subnet into the LPM trie.
func (v *Views) PutNetwork(n Network) error {
	mac, err := mac6(n.GatewayMAC)
	if err != nil {
		return err
	}
	var flags uint32
	if n.ICC {
		flags |= uint32(loader.NetICC)
	}
	if n.Masquerade {
		flags |= uint32(loader.NetMasquerade)
	}
	if n.Internal {
		flags |= uint32(loader.NetInternal)
	}
	if n.Unprotected {
		flags |= uint32(loader.NetUnprotected)
	}
	if len(n.ServiceCIDRs) > 0 {
		flags |= uint32(loader.NetKernelNAT)
	}
	// Before the network: the programs look the prefixes up once the flag
	// says so.
	if err := v.syncServiceCIDRs(n.ID, n.ServiceCIDRs); err != nil {
		return err
	}
	info := loader.NetworkInfo{
		Subnet:        BE32(n.Subnet.Masked().Addr()),
		Mask:          BE32(prefixMask(n.Subnet)),
		Gateway:       BE32(n.Gateway),
		Flags:         flags,
		BridgeIfindex: uint32(n.BridgeIfindex),
		GatewayMac:    mac,
	}
	if n.OverlayIfindex != 0 {
		// First: the programs look it up once the flag says overlay.
		ov := loader.OverlayNetwork{Vni: n.VNI, Ifindex: uint32(n.OverlayIfindex)}
		if err := v.m.OverlayNetworks.Put(n.ID, &ov); err != nil {
			return fmt.Errorf("write overlay network %d: %w", n.ID, err)
		}
	}
	if err := v.m.Networks.Put(n.ID, &info); err != nil {
		v.m.OverlayNetworks.Delete(n.ID)
		v.syncServiceCIDRs(n.ID, nil)
		return fmt.Errorf("write network %d: %w", n.ID, err)
	}
	key := subnetKey(n.Subnet)
	if err := v.m.Subnets.Put(&key, n.ID); err != nil {
		v.m.Networks.Delete(n.ID)
		v.m.OverlayNetworks.Delete(n.ID)
		v.syncServiceCIDRs(n.ID, nil)
		return fmt.Errorf("write subnet %s: %w", n.Subnet, err)
	}
	return nil
}

// DeleteNetwork removes a network; missing entries are no error.
func (v *Views) DeleteNetwork(id uint32, subnet netip.Prefix) error {
	key := subnetKey(subnet)
	return errors.Join(
		ignoreMissing(v.m.Subnets.Delete(&key)),
		ignoreMissing(v.m.Networks.Delete(id)),
		ignoreMissing(v.m.OverlayNetworks.Delete(id)),
		v.syncServiceCIDRs(id, nil),
	)
}

// syncServiceCIDRs makes network id's entries in service_cidrs exactly want.
func (v *Views) syncServiceCIDRs(id uint32, want []netip.Prefix) error {
	wanted := map[loader.ServiceCIDRKey]bool{}
	for _, p := range want {
		if !p.Addr().Is4() {
			return fmt.Errorf("service CIDR %s: want an IPv4 prefix", p)
		}
		wanted[serviceCIDRKey(id, p)] = true
	}
	var stale []loader.ServiceCIDRKey
	var key loader.ServiceCIDRKey
	var val uint8
	it := v.m.ServiceCIDRs.Iterate()
	for it.Next(&key, &val) {
		if key.NetId == id && !wanted[key] {
			stale = append(stale, key)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read service CIDRs: %w", err)
	}
	for _, k := range stale {
		if err := ignoreMissing(v.m.ServiceCIDRs.Delete(&k)); err != nil {
			return fmt.Errorf("delete service CIDR: %w", err)
		}
	}
	for k := range wanted {
		if err := v.m.ServiceCIDRs.Put(&k, uint8(1)); err != nil {
			return fmt.Errorf("write service CIDR: %w", err)
		}
	}
	return nil
}

// ServiceCIDRs lists network id's service prefixes as the datapath holds them.
func (v *Views) ServiceCIDRs(id uint32) ([]netip.Prefix, error) {
	var out []netip.Prefix
	var key loader.ServiceCIDRKey
	var val uint8
	it := v.m.ServiceCIDRs.Iterate()
	for it.Next(&key, &val) {
		if key.NetId == id {
			out = append(out, netip.PrefixFrom(AddrFromBE32(key.Addr), int(key.Prefixlen)-32))
		}
	}
	return out, it.Err()
}

func serviceCIDRKey(id uint32, p netip.Prefix) loader.ServiceCIDRKey {
	return loader.ServiceCIDRKey{Prefixlen: 32 + uint32(p.Bits()), NetId: id, Addr: BE32(p.Masked().Addr())}
}

func prefixMask(p netip.Prefix) netip.Addr {
	m := net.CIDRMask(p.Bits(), 32)
	a, _ := netip.AddrFromSlice(m)
	return a
}

func subnetKey(p netip.Prefix) loader.SubnetKey {
	return loader.SubnetKey{Prefixlen: uint32(p.Bits()), Addr: BE32(p.Masked().Addr())}
}

// Endpoint is one container interface as the datapath sees it.
type Endpoint struct {
	IP      netip.Addr
	MAC     net.HardwareAddr
	NetID   uint32
	Ifindex int // host side of the veth pair
	// Overlay: on an overlay network, so the datapath looks up remote
	// endpoints for it.
	Overlay bool
}

// PutEndpoint writes ep into both endpoint maps and zeroes its counters.
func (v *Views) PutEndpoint(ep Endpoint) error {
	mac, err := mac6(ep.MAC)
	if err != nil {
		return err
	}
	info := loader.EndpointInfo{Ip: BE32(ep.IP), NetId: ep.NetID, Ifindex: uint32(ep.Ifindex), Mac: mac}
	if ep.Overlay {
		info.Flags = uint16(loader.EPOverlay)
	}
	ifindex := uint32(ep.Ifindex)
	zero := make([]loader.EndpointCounters, ebpf.MustPossibleCPU())
	if err := v.m.EndpointStats.Put(ifindex, zero); err != nil {
		return fmt.Errorf("write endpoint counters: %w", err)
	}
	ip := BE32(ep.IP)
	if err := v.m.EndpointIPs.Update(ip, &info, ebpf.UpdateNoExist); err != nil {
		v.m.EndpointStats.Delete(ifindex)
		return fmt.Errorf("write endpoint %s: %w", ep.IP, err)
	}
	if err := v.m.Endpoints.Put(ifindex, &info); err != nil {
		v.m.EndpointIPs.Delete(ip)
		v.m.EndpointStats.Delete(ifindex)
		return fmt.Errorf("write endpoint ifindex %d: %w", ep.Ifindex, err)
	}
	return nil
}

// DeleteEndpoint removes an endpoint; missing entries are no error.
func (v *Views) DeleteEndpoint(ifindex int, ip netip.Addr) error {
	idx := uint32(ifindex)
	return errors.Join(
		ignoreMissing(v.m.Endpoints.Delete(idx)),
		ignoreMissing(v.m.EndpointIPs.Delete(BE32(ip))),
		ignoreMissing(v.m.EndpointStats.Delete(idx)),
	)
}

// LookupEndpoint returns the endpoint for a host-side ifindex.
func (v *Views) LookupEndpoint(ifindex int) (Endpoint, error) {
	var info loader.EndpointInfo
	if err := v.m.Endpoints.Lookup(uint32(ifindex), &info); err != nil {
		return Endpoint{}, err
	}
	return Endpoint{IP: AddrFromBE32(info.Ip), MAC: net.HardwareAddr(info.Mac[:]), NetID: info.NetId, Ifindex: int(info.Ifindex),
		Overlay: info.Flags&uint16(loader.EPOverlay) != 0}, nil
}

func ignoreMissing(err error) error {
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil
	}
	return err
}
