package maps

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/ebpfnet/ebpfnet/loader"
)

// LookupEndpoint6 returns the global IPv6 address the endpoints6 map holds
// for a host-side ifindex.
func (v *Views) LookupEndpoint6(ifindex int) (netip.Addr, error) {
	var k loader.IP6Key
	if err := v.m.Endpoints6.Lookup(uint32(ifindex), &k); err != nil {
		return netip.Addr{}, fmt.Errorf("endpoints6 entry of ifindex %d: %w", ifindex, err)
	}
	return AddrFromBE128(k.Addr), nil
}

// LookupEndpointIP6 returns the endpoint with IPv6 address ip (global or
// link-local) in endpoint_ips6.
func (v *Views) LookupEndpointIP6(ip netip.Addr) (Endpoint, error) {
	var info loader.EndpointInfo
	if err := v.m.EndpointIPs6.Lookup(&loader.IP6Key{Addr: BE128(ip)}, &info); err != nil {
		return Endpoint{}, err
	}
	return endpointFrom(info), nil
}

// EndpointsByIP6 lists endpoint_ips6: IPv6 address (global or link-local)
// -> the endpoint it delivers to.
func (v *Views) EndpointsByIP6() (map[netip.Addr]Endpoint, error) {
	out := map[netip.Addr]Endpoint{}
	var k loader.IP6Key
	var info loader.EndpointInfo
	it := v.m.EndpointIPs6.Iterate()
	for it.Next(&k, &info) {
		out[AddrFromBE128(k.Addr)] = endpointFrom(info)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list endpoint IPv6 addresses: %w", err)
	}
	return out, nil
}

// Endpoints6 lists endpoints6: host-side ifindex -> global IPv6 address.
func (v *Views) Endpoints6() (map[int]netip.Addr, error) {
	out := map[int]netip.Addr{}
	var idx uint32
	var k loader.IP6Key
	it := v.m.Endpoints6.Iterate()
	for it.Next(&idx, &k) {
		out[int(idx)] = AddrFromBE128(k.Addr)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list endpoints6: %w", err)
	}
	return out, nil
}

// DeleteEndpointIP6 removes one endpoint_ips6 entry; a missing one is no
// error.
func (v *Views) DeleteEndpointIP6(ip netip.Addr) error {
	return ignoreMissing(v.m.EndpointIPs6.Delete(&loader.IP6Key{Addr: BE128(ip)}))
}

// DeleteEndpoint6 removes one endpoints6 entry; a missing one is no error.
func (v *Views) DeleteEndpoint6(ifindex int) error {
	return ignoreMissing(v.m.Endpoints6.Delete(uint32(ifindex)))
}

// Subnets6 lists the subnets6 trie: prefix -> network id.
func (v *Views) Subnets6() (map[netip.Prefix]uint32, error) {
	out := map[netip.Prefix]uint32{}
	var k loader.Subnet6Key
	var id uint32
	it := v.m.Subnets6.Iterate()
	for it.Next(&k, &id) {
		out[netip.PrefixFrom(AddrFromBE128(k.Addr), int(k.Prefixlen))] = id
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list subnets6: %w", err)
	}
	return out, nil
}

// DeleteSubnet6 removes one subnets6 entry (and the networks6 entry of
// its network); missing entries are no error.
func (v *Views) DeleteSubnet6(p netip.Prefix, id uint32) error {
	key := subnet6Key(p)
	return errors.Join(ignoreMissing(v.m.Subnets6.Delete(&key)), ignoreMissing(v.m.Networks6.Delete(id)))
}
