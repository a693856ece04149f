package maps

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"

	"github.com/ebpfnet/ebpfnet/loader"
)

// RemoteEndpoint is an endpoint of an overlay network on another host.
type RemoteEndpoint struct {
	IP    netip.Addr
	MAC   net.HardwareAddr
	NetID uint32     // this host's id of the overlay network
	Host  netip.Addr // the other host's underlay address
}

func (r RemoteEndpoint) value() (loader.RemoteEndpoint, error) {
	mac, err := mac6(r.MAC)
	if err != nil {
		return loader.RemoteEndpoint{}, err
	}
	if !r.Host.Is4() || !(r.IP.Is4() || r.IP.Is6() && !r.IP.Is4In6() && !r.IP.IsLinkLocalUnicast() && !r.IP.IsMulticast()) {
		return loader.RemoteEndpoint{}, fmt.Errorf("remote endpoint %v on host %v: want an IPv4 or global IPv6 address on an IPv4 host", r.IP, r.Host)
	}
	return loader.RemoteEndpoint{Host: BE32(r.Host), NetId: r.NetID, Mac: mac}, nil
}

func remoteFrom(ip netip.Addr, val loader.RemoteEndpoint) RemoteEndpoint {
	return RemoteEndpoint{IP: ip, MAC: slices.Clone(net.HardwareAddr(val.Mac[:])), NetID: val.NetId, Host: AddrFromBE32(val.Host)}
}

// RemoteEndpoints lists the remote_endpoints map (IPv4) and then
// remote_endpoints6 (IPv6 on dual-stack overlay networks).
func (v *Views) RemoteEndpoints() ([]RemoteEndpoint, error) {
	var (
		out []RemoteEndpoint
		ip  uint32
		ip6 loader.IP6Key
		val loader.RemoteEndpoint
	)
	it := v.m.RemoteEndpoints.Iterate()
	for it.Next(&ip, &val) {
		out = append(out, remoteFrom(AddrFromBE32(ip), val))
	}
	if err := it.Err(); err != nil {
		return out, err
	}
	it = v.m.RemoteEndpoints6.Iterate()
	for it.Next(&ip6, &val) {
		out = append(out, remoteFrom(AddrFromBE128(ip6.Addr), val))
	}
	return out, it.Err()
}

// SyncRemoteEndpoints makes the remote endpoints of the networks in netIDs
// exactly want (entries of other networks are left alone): new and changed
// entries first, then stale ones deleted, in remote_endpoints for IPv4
// addresses and remote_endpoints6 for IPv6 ones. It reports how many
// entries it wrote and deleted.
func (v *Views) SyncRemoteEndpoints(netIDs []uint32, want []RemoteEndpoint) (written, deleted int, err error) {
	scope := map[uint32]bool{}
	for _, id := range netIDs {
		scope[id] = true
	}
	keep := make(map[uint32]loader.RemoteEndpoint, len(want))
	keep6 := map[loader.IP6Key]loader.RemoteEndpoint{}
	for _, r := range want {
		if !scope[r.NetID] {
			return 0, 0, fmt.Errorf("remote endpoint %v: network %d is not being synced", r.IP, r.NetID)
		}
		val, err := r.value()
		if err != nil {
			return 0, 0, err
		}
		if r.IP.Is4() {
			keep[BE32(r.IP)] = val
		} else {
			keep6[loader.IP6Key{Addr: BE128(r.IP)}] = val
		}
	}
	w4, d4, err4 := syncRemote(v.m.RemoteEndpoints, scope, keep, AddrFromBE32)
	w6, d6, err6 := syncRemote(v.m.RemoteEndpoints6, scope, keep6, func(k loader.IP6Key) netip.Addr { return AddrFromBE128(k.Addr) })
	return w4 + w6, d4 + d6, errors.Join(err4, err6)
}

// syncRemote is SyncRemoteEndpoints for one of the two maps.
func syncRemote[K comparable](m *ebpf.Map, scope map[uint32]bool, keep map[K]loader.RemoteEndpoint, addr func(K) netip.Addr) (written, deleted int, err error) {
	var (
		ip    K
		val   loader.RemoteEndpoint
		stale []K
	)
	have := map[K]loader.RemoteEndpoint{}
	it := m.Iterate()
	for it.Next(&ip, &val) {
		have[ip] = val
		if _, ok := keep[ip]; !ok && scope[val.NetId] {
			stale = append(stale, ip)
		}
	}
	if err := it.Err(); err != nil {
		return 0, 0, fmt.Errorf("read remote endpoints: %w", err)
	}
	var errs []error
	for ip, val := range keep {
		if old, ok := have[ip]; ok && old == val {
			continue
		}
		if old, ok := have[ip]; ok && !scope[old.NetId] {
			errs = append(errs, fmt.Errorf("remote endpoint %v: address held by network %d", addr(ip), old.NetId))
			continue
		}
		if err := m.Update(ip, &val, ebpf.UpdateAny); err != nil {
			errs = append(errs, fmt.Errorf("write remote endpoint %v: %w", addr(ip), err))
			continue
		}
		written++
	}
	for _, ip := range stale {
		if err := ignoreMissing(m.Delete(ip)); err != nil {
			errs = append(errs, err)
			continue
		}
		deleted++
	}
	return written, deleted, errors.Join(errs...)
}

// OverlayHostStats is the traffic with one peer host.
type OverlayHostStats struct {
	Host      netip.Addr `json:"host"`
	TxPackets uint64     `json:"tx_packets"`
	TxBytes   uint64     `json:"tx_bytes"`
	RxPackets uint64     `json:"rx_packets"`
	RxBytes   uint64     `json:"rx_bytes"`
}

// SyncOverlayHosts makes the peer hosts exactly hosts: a new host starts
// with zero counters, a host that left loses its entry (and its counters).
func (v *Views) SyncOverlayHosts(hosts []netip.Addr) error {
	keep := map[uint32]bool{}
	for _, h := range hosts {
		if !h.Is4() {
			return fmt.Errorf("peer host %v: want IPv4", h)
		}
		keep[BE32(h)] = true
	}
	var (
		key   uint32
		stale []uint32
		have  = map[uint32]bool{}
		vals  []loader.OverlayCounters
	)
	it := v.m.OverlayHosts.Iterate()
	for it.Next(&key, &vals) {
		have[key] = true
		if !keep[key] {
			stale = append(stale, key)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read overlay hosts: %w", err)
	}
	var errs []error
	zero := make([]loader.OverlayCounters, ebpf.MustPossibleCPU())
	for h := range keep {
		if have[h] {
			continue
		}
		if err := v.m.OverlayHosts.Update(h, zero, ebpf.UpdateNoExist); err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
			errs = append(errs, fmt.Errorf("write overlay host %v: %w", AddrFromBE32(h), err))
		}
	}
	for _, h := range stale {
		errs = append(errs, ignoreMissing(v.m.OverlayHosts.Delete(h)))
	}
	return errors.Join(errs...)
}

// OverlayHosts reads the per-peer-host counters, summed over CPUs.
func (v *Views) OverlayHosts() ([]OverlayHostStats, error) {
	var (
		key  uint32
		vals []loader.OverlayCounters
		out  []OverlayHostStats
	)
	it := v.m.OverlayHosts.Iterate()
	for it.Next(&key, &vals) {
		s := OverlayHostStats{Host: AddrFromBE32(key)}
		for _, c := range vals {
			s.TxPackets += c.TxPackets
			s.TxBytes += c.TxBytes
			s.RxPackets += c.RxPackets
			s.RxBytes += c.RxBytes
		}
		out = append(out, s)
	}
	return out, it.Err()
}

// SetOverlaySelf records this host's underlay address (invalid: none, as
// before the host joined), which from_host puts on the host's own traffic
// to other hosts' endpoints in place of the gateway address.
func (v *Views) SetOverlaySelf(addr netip.Addr) error {
	var val uint32
	if addr.IsValid() {
		if !addr.Is4() {
			return fmt.Errorf("overlay address %v: want IPv4", addr)
		}
		val = BE32(addr)
	}
	if err := v.m.OverlaySelf.Put(uint32(0), val); err != nil {
		return fmt.Errorf("write overlay address: %w", err)
	}
	return nil
}

// OverlaySelf is the address SetOverlaySelf recorded (invalid: none).
func (v *Views) OverlaySelf() (netip.Addr, error) {
	var val uint32
	if err := v.m.OverlaySelf.Lookup(uint32(0), &val); err != nil {
		return netip.Addr{}, err
	}
	if val == 0 {
		return netip.Addr{}, nil
	}
	return AddrFromBE32(val), nil
}
