package maps

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/ebpfnet/ebpfnet/loader"
)

// The listings below let the control plane compare the maps with its store
// and remove entries a crashed command left (reconcile). The maps are small
// (one entry per network, endpoint or published port).

// EndpointsByIfindex lists the endpoints map (host-side ifindex -> endpoint).
func (v *Views) EndpointsByIfindex() ([]Endpoint, error) {
	var out []Endpoint
	var idx uint32
	var info loader.EndpointInfo
	it := v.m.Endpoints.Iterate()
	for it.Next(&idx, &info) {
		out = append(out, endpointFrom(info))
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list endpoints: %w", err)
	}
	return out, nil
}

// EndpointsByIP lists the endpoint_ips map (container address -> endpoint).
func (v *Views) EndpointsByIP() ([]Endpoint, error) {
	var out []Endpoint
	var ip uint32
	var info loader.EndpointInfo
	it := v.m.EndpointIPs.Iterate()
	for it.Next(&ip, &info) {
		e := endpointFrom(info)
		e.IP = AddrFromBE32(ip)
		out = append(out, e)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list endpoint addresses: %w", err)
	}
	return out, nil
}

// LookupEndpointIP returns the endpoint with container address ip.
func (v *Views) LookupEndpointIP(ip netip.Addr) (Endpoint, error) {
	var info loader.EndpointInfo
	if err := v.m.EndpointIPs.Lookup(BE32(ip), &info); err != nil {
		return Endpoint{}, err
	}
	return endpointFrom(info), nil
}

func endpointFrom(info loader.EndpointInfo) Endpoint {
	return Endpoint{IP: endpointAddr(info.Ip), MAC: net.HardwareAddr(info.Mac[:]), NetID: info.NetId, Ifindex: int(info.Ifindex)}
}

// DeleteEndpointIfindex removes the endpoints and endpoint_stats entries of
// one host-side ifindex; missing entries are no error.
func (v *Views) DeleteEndpointIfindex(ifindex int) error {
	idx := uint32(ifindex)
	var info loader.EndpointInfo
	if err := v.m.Endpoints.Lookup(idx, &info); err == nil {
		if err := v.deleteEndpoint6(ifindex, info.Mac[:]); err != nil {
			return err
		}
	}
	if err := ignoreMissing(v.m.Endpoints.Delete(idx)); err != nil {
		return err
	}
	return ignoreMissing(v.m.EndpointStats.Delete(idx))
}

// DeleteEndpointIP removes the endpoint_ips entry of one address.
func (v *Views) DeleteEndpointIP(ip netip.Addr) error {
	return v.deleteEndpointIP(ip)
}

// Networks lists the networks map; Subnet and BridgeIfindex are what the
// datapath holds.
func (v *Views) Networks() ([]Network, error) {
	var out []Network
	var id uint32
	var info loader.NetworkInfo
	it := v.m.Networks.Iterate()
	for it.Next(&id, &info) {
		ones, _ := net.IPMask(BE32Bytes(info.Mask)).Size()
		n := Network{
			ID:            id,
			GatewayMAC:    net.HardwareAddr(info.GatewayMac[:]),
			BridgeIfindex: int(info.BridgeIfindex),
		}
		if info.Gateway != 0 { // else IPv6 only
			n.Subnet = netip.PrefixFrom(AddrFromBE32(info.Subnet), ones)
			n.Gateway = AddrFromBE32(info.Gateway)
		}
		out = append(out, n)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	return out, nil
}

// BE32Bytes is a BE32 value as the 4 bytes of the address.
func BE32Bytes(v uint32) []byte {
	b := AddrFromBE32(v).As4()
	return b[:]
}

// Subnets lists the subnets trie: prefix -> network id.
func (v *Views) Subnets() (map[netip.Prefix]uint32, error) {
	out := map[netip.Prefix]uint32{}
	var k loader.SubnetKey
	var id uint32
	it := v.m.Subnets.Iterate()
	for it.Next(&k, &id) {
		out[netip.PrefixFrom(AddrFromBE32(k.Addr), int(k.Prefixlen))] = id
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list subnets: %w", err)
	}
	return out, nil
}

// DeleteSubnet removes one subnets trie entry; a missing one is no error.
func (v *Views) DeleteSubnet(p netip.Prefix) error {
	key := subnetKey(p)
	return ignoreMissing(v.m.Subnets.Delete(&key))
}
