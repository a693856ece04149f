package maps

import (
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
