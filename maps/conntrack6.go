package maps

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"

	"github.com/ebpfnet/ebpfnet/loader"
)

// ProtoICMPv6 is ICMPv6's protocol number: NAT66 tracks echo flows by it.
const ProtoICMPv6 = 58

// addrFromIP6 is a conntrack6 address; NAT64's IPv4 side, kept
// IPv4-mapped (bpf/lib/nat64.h), reads as the IPv4 address it is (key6
// maps it back).
func addrFromIP6(k loader.IP6Key) netip.Addr { return AddrFromBE128(k.Addr).Unmap() }

func ip6Key(a netip.Addr) loader.IP6Key { return loader.IP6Key{Addr: BE128(a)} }

func tupleFromKey6(k loader.CT6Key) Tuple {
	return Tuple{
		Proto: k.Proto,
		Src:   netip.AddrPortFrom(addrFromIP6(k.Saddr), PortFromBE16(k.Sport)),
		Dst:   netip.AddrPortFrom(addrFromIP6(k.Daddr), PortFromBE16(k.Dport)),
	}
}

func (t Tuple) key6() loader.CT6Key {
	return loader.CT6Key{
		Saddr: ip6Key(t.Src.Addr()), Daddr: ip6Key(t.Dst.Addr()),
		Sport: BE16(t.Src.Port()), Dport: BE16(t.Dst.Port()),
		Proto: t.Proto,
	}
}

func flowFrom6(k loader.CT6Key, e loader.CT6Entry) Flow {
	return Flow{
		Tuple: tupleFromKey6(k),
		Translated: Tuple{
			Proto: k.Proto,
			Src:   netip.AddrPortFrom(addrFromIP6(e.NewSaddr), PortFromBE16(e.NewSport)),
			Dst:   netip.AddrPortFrom(addrFromIP6(e.NewDaddr), PortFromBE16(e.NewDport)),
		},
		Peer:        tupleFromKey6(e.Peer),
		Kind:        FlowKind(e.Kind),
		Reply:       e.Reply != 0,
		State:       FlowState(e.State),
		Ifindex:     int(e.Ifindex),
		PeerIfindex: int(e.PeerIfindex),
		Created:     time.Duration(e.Created),
		LastSeen:    time.Duration(e.LastSeen),
	}
}

// flowTables6 are the IPv6 flow tables: conntrack6, and ct6_embryonic,
// whose flows (TCP to published ports not yet acknowledged by their
// client) are marked Embryonic.
func (v *Views) flowTables6() []struct {
	m         *ebpf.Map
	name      string
	embryonic bool
} {
	return []struct {
		m         *ebpf.Map
		name      string
		embryonic bool
	}{{v.m.Conntrack6, "conntrack6", false}, {v.m.CT6Embryonic, "ct6_embryonic", true}}
}

// Flows6 lists every entry of conntrack6, NAT66's and published ports'
// flows (bpf/lib/nat6.h), then of ct6_embryonic: each flow once per
// direction.
func (v *Views) Flows6() ([]Flow, error) {
	var out []Flow
	var k loader.CT6Key
	var e loader.CT6Entry
	for _, t := range v.flowTables6() {
		it := t.m.Iterate()
		for it.Next(&k, &e) {
			f := flowFrom6(k, e)
			f.Embryonic = t.embryonic
			out = append(out, f)
		}
		if err := it.Err(); err != nil {
			return out, fmt.Errorf("read %s: %w", t.name, err)
		}
	}
	return out, nil
}

// PutFlow6 writes the IPv6 entry f describes into conntrack6, replacing
// one with the same Tuple: for tests and tools, as PutFlow.
func (v *Views) PutFlow6(f Flow) error {
	k := f.Tuple.key6()
	e := loader.CT6Entry{
		Peer:     f.Peer.key6(),
		NewSaddr: ip6Key(f.Translated.Src.Addr()), NewDaddr: ip6Key(f.Translated.Dst.Addr()),
		NewSport: BE16(f.Translated.Src.Port()), NewDport: BE16(f.Translated.Dst.Port()),
		Ifindex: uint32(f.Ifindex), PeerIfindex: uint32(f.PeerIfindex),
		Kind: uint8(f.Kind), State: uint8(f.State),
		Created: uint64(f.Created), LastSeen: uint64(f.LastSeen),
	}
	if f.Reply {
		e.Reply = 1
	}
	if err := v.m.Conntrack6.Put(&k, &e); err != nil {
		return fmt.Errorf("write conntrack6 entry %v: %w", f.Tuple, err)
	}
	return nil
}

// gc6 is GC on conntrack6 and ct6_embryonic.
func (v *Views) gc6(now time.Duration, t Timeouts) (expired int, err error) {
	var errs []error
	for _, tab := range v.flowTables6() {
		n, err := gc6Table(tab.m, now, t)
		expired += n
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", tab.name, err))
		}
	}
	return expired, errors.Join(errs...)
}

// gc6Table is GC on one IPv6 table: a flow idle (its most recently used
// half) for longer than its timeout loses both halves. The table is walked
// once and each candidate read again with its peer, as gcTable does; the
// keys to delete are collected first (conntrack6 is 128k entries at most).
// An embryonic flow is in SYN state (its timeout TCPSyn) or, the container
// having refused it, RST (TCPClosing): unlike IPv4's embryonic table, the
// datapath leaves dead IPv6 ones to this and to the LRU.
func gc6Table(m *ebpf.Map, now time.Duration, t Timeouts) (expired int, err error) {
	shortest := t.shortest()
	var doomed []loader.CT6Key
	seen := map[loader.CT6Key]bool{}
	var k loader.CT6Key
	var e, cur, peerEntry loader.CT6Entry
	it := m.Iterate()
	for it.Next(&k, &e) {
		if seen[k] || now-time.Duration(e.LastSeen) <= shortest {
			continue
		}
		if m.Lookup(&k, &cur) != nil {
			continue
		}
		peer := &peerEntry
		if seen[cur.Peer] || m.Lookup(&cur.Peer, peer) != nil || peer.Peer != k {
			peer = nil
		}
		a := loader.CTEntry{State: cur.State, LastSeen: cur.LastSeen}
		var b *loader.CTEntry
		if peer != nil {
			b = &loader.CTEntry{State: peer.State, LastSeen: peer.LastSeen}
		}
		if now-lastSeen(&a, b) <= t.timeout(&a, b, k.Proto) {
			continue
		}
		seen[k] = true
		doomed = append(doomed, k)
		if peer != nil {
			seen[cur.Peer] = true
			doomed = append(doomed, cur.Peer)
		}
		expired++
	}
	errs := []error{it.Err()}
	for i := range doomed {
		errs = append(errs, ignoreMissing(m.Delete(&doomed[i])))
	}
	return expired, errors.Join(errs...)
}

// DeleteFlows6 deletes the entries of conntrack6 and ct6_embryonic match
// selects, and their peers; it returns how many entries it deleted.
func (v *Views) DeleteFlows6(match func(Flow) bool) (int, error) {
	deleted := 0
	var errs []error
	for _, t := range v.flowTables6() {
		var doomed []loader.CT6Key
		var k loader.CT6Key
		var e loader.CT6Entry
		it := t.m.Iterate()
		for it.Next(&k, &e) {
			f := flowFrom6(k, e)
			f.Embryonic = t.embryonic
			if match(f) {
				doomed = append(doomed, k, e.Peer)
			}
		}
		errs = append(errs, it.Err())
		for i := range doomed {
			switch err := t.m.Delete(&doomed[i]); {
			case err == nil:
				deleted++
			case !errors.Is(err, ebpf.ErrKeyNotExist):
				errs = append(errs, fmt.Errorf("%s: %w", t.name, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return deleted, fmt.Errorf("delete IPv6 flow entries: %w", err)
	}
	return deleted, nil
}

// deleteOrphanFlows6 forgets the NAT66 flows of containers that are gone:
// those whose container side (the reply entry's ifindex, the forward
// entry's peer's) no endpoint holds any more. Detach removes the endpoint
// before its flows, with its IPv4 address only (DeleteEndpointFlows): this
// finds its IPv6 flows without the address, so a new endpoint given it
// inherits none.
func (v *Views) deleteOrphanFlows6() (int, error) {
	live := map[uint32]bool{}
	var info loader.EndpointInfo
	gone := func(ifindex uint32) bool {
		if ifindex == 0 {
			return false
		}
		alive, ok := live[ifindex]
		if !ok {
			alive = v.m.Endpoints.Lookup(ifindex, &info) == nil
			live[ifindex] = alive
		}
		return !alive
	}
	return v.DeleteFlows6(func(f Flow) bool { return gone(uint32(f.Ifindex)) || gone(uint32(f.PeerIfindex)) })
}
