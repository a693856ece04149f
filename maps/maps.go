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
// memory. The zero Addr (no IPv4 address: an endpoint or network of an
// IPv6-only network) is 0.
func BE32(a netip.Addr) uint32 {
	if !a.IsValid() {
		return 0
	}
	b := a.As4()
	return binary.NativeEndian.Uint32(b[:])
}

// endpointAddr is an endpoint's stored IPv4 address: 0 is none (IPv6 only).
func endpointAddr(v uint32) netip.Addr {
	if v == 0 {
		return netip.Addr{}
	}
	return AddrFromBE32(v)
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
	// Subnet6 and Gateway6 make it dual stack (zero: IPv4 only).
	Subnet6  netip.Prefix
	Gateway6 netip.Addr
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
	if n.Subnet6.IsValid() {
		// Before the network: the programs look it up once the flag says so.
		flags |= uint32(loader.NetIPv6)
		if err := v.putNetwork6(n); err != nil {
			return err
		}
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
		v.deleteNetwork6(n.ID)
		return fmt.Errorf("write network %d: %w", n.ID, err)
	}
	if !n.Subnet.IsValid() {
		return nil // IPv6 only: no IPv4 prefix
	}
	key := subnetKey(n.Subnet)
	if err := v.m.Subnets.Put(&key, n.ID); err != nil {
		v.m.Networks.Delete(n.ID)
		v.m.OverlayNetworks.Delete(n.ID)
		v.syncServiceCIDRs(n.ID, nil)
		v.deleteNetwork6(n.ID)
		return fmt.Errorf("write subnet %s: %w", n.Subnet, err)
	}
	return nil
}

// DeleteNetwork removes a network, its IPv6 side included; missing entries
// are no error.
func (v *Views) DeleteNetwork(id uint32, subnet netip.Prefix) error {
	var errSubnet error
	if subnet.IsValid() {
		key := subnetKey(subnet)
		errSubnet = ignoreMissing(v.m.Subnets.Delete(&key))
	}
	return errors.Join(
		errSubnet,
		ignoreMissing(v.m.Networks.Delete(id)),
		ignoreMissing(v.m.OverlayNetworks.Delete(id)),
		v.syncServiceCIDRs(id, nil),
		v.deleteNetwork6(id),
	)
}

// putNetwork6 writes n's IPv6 side: networks6 and its subnets6 prefix.
func (v *Views) putNetwork6(n Network) error {
	if !n.Subnet6.Addr().Is6() || !n.Gateway6.Is6() {
		return fmt.Errorf("network %d: IPv6 subnet %s or gateway %s is no IPv6", n.ID, n.Subnet6, n.Gateway6)
	}
	info := loader.Network6Info{
		Gateway6:  BE128(n.Gateway6),
		Subnet6:   BE128(n.Subnet6.Masked().Addr()),
		Prefixlen: uint32(n.Subnet6.Bits()),
	}
	if err := v.m.Networks6.Put(n.ID, &info); err != nil {
		return fmt.Errorf("write network %d's IPv6 side: %w", n.ID, err)
	}
	key := subnet6Key(n.Subnet6)
	if err := v.m.Subnets6.Put(&key, n.ID); err != nil {
		v.m.Networks6.Delete(n.ID)
		return fmt.Errorf("write subnet %s: %w", n.Subnet6, err)
	}
	return nil
}

// deleteNetwork6 removes network id's IPv6 side, if it has one.
func (v *Views) deleteNetwork6(id uint32) error {
	var info loader.Network6Info
	if err := v.m.Networks6.Lookup(id, &info); err != nil {
		return ignoreMissing(err)
	}
	key := loader.Subnet6Key{Prefixlen: info.Prefixlen, Addr: info.Subnet6}
	return errors.Join(
		ignoreMissing(v.m.Subnets6.Delete(&key)),
		ignoreMissing(v.m.Networks6.Delete(id)),
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

func subnet6Key(p netip.Prefix) loader.Subnet6Key {
	return loader.Subnet6Key{Prefixlen: uint32(p.Bits()), Addr: BE128(p.Masked().Addr())}
}

// BE128 is an IPv6 address as the datapath holds it: four words in network
// byte order, each loaded natively.
func BE128(a netip.Addr) [4]uint32 {
	b := a.As16()
	var out [4]uint32
	for i := range out {
		out[i] = binary.NativeEndian.Uint32(b[4*i:])
	}
	return out
}

// AddrFromBE128 is the inverse of BE128.
func AddrFromBE128(w [4]uint32) netip.Addr {
	var b [16]byte
	for i, v := range w {
		binary.NativeEndian.PutUint32(b[4*i:], v)
	}
	return netip.AddrFrom16(b)
}

// LinkLocal is the link-local address a container with MAC mac has on a
// dual-stack network: the modified EUI-64 one (RFC 4291 appendix A), which
// the control plane configures and from_container checks against the MAC.
func LinkLocal(mac net.HardwareAddr) netip.Addr {
	var b [16]byte
	b[0], b[1] = 0xfe, 0x80
	if len(mac) == 6 {
		b[8], b[9], b[10] = mac[0]^0x02, mac[1], mac[2]
		b[11], b[12] = 0xff, 0xfe
		b[13], b[14], b[15] = mac[3], mac[4], mac[5]
	}
	return netip.AddrFrom16(b)
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
	// IP6 is its global IPv6 address on a dual-stack network (zero: none);
	// its link-local one is LinkLocal(MAC).
	IP6 netip.Addr
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
	if !ep.IP.IsValid() && !ep.IP6.IsValid() {
		return fmt.Errorf("endpoint ifindex %d has no address", ep.Ifindex)
	}
	// Without IPv4 (an IPv6-only network) the entry's address is 0, which
	// from_container reads as "no IPv4", and endpoint_ips holds nothing.
	if ep.IP.IsValid() {
		if err := v.m.EndpointIPs.Update(ip, &info, ebpf.UpdateNoExist); err != nil {
			v.m.EndpointStats.Delete(ifindex)
			return fmt.Errorf("write endpoint %s: %w", ep.IP, err)
		}
	}
	// The IPv6 side before the sender's entry: from_container finds its
	// endpoints6 entry once it is a known sender.
	if ep.IP6.IsValid() {
		if err := v.putEndpoint6(ep, &info); err != nil {
			v.deleteEndpointIP(ep.IP)
			v.m.EndpointStats.Delete(ifindex)
			return err
		}
	}
	if err := v.m.Endpoints.Put(ifindex, &info); err != nil {
		v.deleteEndpointIP(ep.IP)
		v.m.EndpointStats.Delete(ifindex)
		v.deleteEndpoint6(ep.Ifindex, ep.MAC)
		return fmt.Errorf("write endpoint ifindex %d: %w", ep.Ifindex, err)
	}
	return nil
}

// putEndpoint6 writes ep's IPv6 addresses, global and link-local, and its
// endpoints6 entry.
func (v *Views) putEndpoint6(ep Endpoint, info *loader.EndpointInfo) error {
	if !ep.IP6.Is6() || ep.IP6.Is4In6() || ep.IP6.IsLinkLocalUnicast() {
		return fmt.Errorf("endpoint %s: %s is no global IPv6 address", ep.IP, ep.IP6)
	}
	global := loader.IP6Key{Addr: BE128(ep.IP6)}
	ll := loader.IP6Key{Addr: BE128(LinkLocal(ep.MAC))}
	ifindex := uint32(ep.Ifindex)
	if err := v.m.EndpointIPs6.Update(&global, info, ebpf.UpdateNoExist); err != nil {
		return fmt.Errorf("write endpoint %s: %w", ep.IP6, err)
	}
	if err := v.m.EndpointIPs6.Update(&ll, info, ebpf.UpdateNoExist); err != nil {
		v.m.EndpointIPs6.Delete(&global)
		if errors.Is(err, ebpf.ErrKeyExist) {
			return fmt.Errorf("link-local address %s: another endpoint has MAC %s", LinkLocal(ep.MAC), ep.MAC)
		}
		return fmt.Errorf("write endpoint %s: %w", LinkLocal(ep.MAC), err)
	}
	if err := v.m.Endpoints6.Put(ifindex, &global); err != nil {
		v.m.EndpointIPs6.Delete(&global)
		v.m.EndpointIPs6.Delete(&ll)
		return fmt.Errorf("write endpoint ifindex %d's IPv6 address: %w", ep.Ifindex, err)
	}
	return nil
}

// deleteEndpoint6 removes the IPv6 side of the endpoint at ifindex with MAC
// mac, if it has one.
func (v *Views) deleteEndpoint6(ifindex int, mac net.HardwareAddr) error {
	var global loader.IP6Key
	idx := uint32(ifindex)
	if err := v.m.Endpoints6.Lookup(idx, &global); err != nil {
		return ignoreMissing(err)
	}
	ll := loader.IP6Key{Addr: BE128(LinkLocal(mac))}
	return errors.Join(
		ignoreMissing(v.m.EndpointIPs6.Delete(&global)),
		ignoreMissing(v.m.EndpointIPs6.Delete(&ll)),
		ignoreMissing(v.m.Endpoints6.Delete(idx)),
	)
}

// DeleteEndpoint removes an endpoint, its IPv6 side included; missing
// entries are no error.
func (v *Views) DeleteEndpoint(ifindex int, ip netip.Addr) error {
	idx := uint32(ifindex)
	var info loader.EndpointInfo
	var err6 error
	if err := v.m.Endpoints.Lookup(idx, &info); err == nil {
		err6 = v.deleteEndpoint6(ifindex, info.Mac[:])
	}
	return errors.Join(
		err6,
		ignoreMissing(v.m.Endpoints.Delete(idx)),
		v.deleteEndpointIP(ip),
		ignoreMissing(v.m.EndpointStats.Delete(idx)),
	)
}

// deleteEndpointIP removes ip's endpoint_ips entry, if it has an address.
func (v *Views) deleteEndpointIP(ip netip.Addr) error {
	if !ip.IsValid() {
		return nil
	}
	return ignoreMissing(v.m.EndpointIPs.Delete(BE32(ip)))
}

// LookupEndpoint returns the endpoint for a host-side ifindex.
func (v *Views) LookupEndpoint(ifindex int) (Endpoint, error) {
	var info loader.EndpointInfo
	if err := v.m.Endpoints.Lookup(uint32(ifindex), &info); err != nil {
		return Endpoint{}, err
	}
	return Endpoint{IP: endpointAddr(info.Ip), MAC: net.HardwareAddr(info.Mac[:]), NetID: info.NetId, Ifindex: int(info.Ifindex),
		Overlay: info.Flags&uint16(loader.EPOverlay) != 0}, nil
}

func ignoreMissing(err error) error {
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil
	}
	return err
}
