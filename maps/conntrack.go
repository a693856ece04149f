package maps

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ebpfnet/ebpfnet/loader"
)

// Monotonic is CLOCK_MONOTONIC now, the clock of conntrack timestamps. The
// datapath stamps flows with its coarse reading (bpf_ktime_get_coarse_ns,
// as of the last tick), so its stamps trail Monotonic by up to a tick
// (1-10 ms): nothing that ages flows in seconds can tell.
func Monotonic() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(fmt.Sprintf("clock_gettime(CLOCK_MONOTONIC): %v", err))
	}
	return time.Duration(ts.Nano())
}

// Tuple is one direction of a flow as it appears on the wire. For ICMP echo
// the id is the source port of a request and the destination port of a
// reply; the other port is 0.
type Tuple struct {
	Proto uint8
	Src   netip.AddrPort
	Dst   netip.AddrPort
}

func (t Tuple) String() string {
	return fmt.Sprintf("%s %s -> %s", ProtoName(t.Proto), t.Src, t.Dst)
}

// ProtoName is how ebpfnet writes an IP protocol number everywhere: tcp,
// udp, icmp, or proto-N.
func ProtoName(p uint8) string {
	switch p {
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	case ProtoICMP:
		return "icmp"
	case ProtoICMPv6:
		return "icmpv6"
	}
	return fmt.Sprintf("proto-%d", p)
}

func tupleFromKey(k loader.CTKey) Tuple {
	return Tuple{
		Proto: k.Proto,
		Src:   netip.AddrPortFrom(AddrFromBE32(k.Saddr), PortFromBE16(k.Sport)),
		Dst:   netip.AddrPortFrom(AddrFromBE32(k.Daddr), PortFromBE16(k.Dport)),
	}
}

// Key is the inverse of tupleFromKey.
func (t Tuple) key() loader.CTKey {
	return loader.CTKey{
		Saddr: BE32(t.Src.Addr()), Daddr: BE32(t.Dst.Addr()),
		Sport: BE16(t.Src.Port()), Dport: BE16(t.Dst.Port()),
		Proto: t.Proto,
	}
}

// FlowKind says which translation a flow gets.
type FlowKind uint8

const (
	FlowSNAT    = FlowKind(loader.CTKindSNAT)    // container -> outside, masqueraded
	FlowDNAT    = FlowKind(loader.CTKindDNAT)    // outside -> published port
	FlowHairpin = FlowKind(loader.CTKindHairpin) // container -> published port on a host IP
	FlowRouted  = FlowKind(loader.CTKindRouted)  // container -> outside, not masqueraded (tracked for the replies)
	// FlowServiceRouted: outside -> a Service's endpoint on another node
	// or a node's address, DNATed and SNATed to this node.
	FlowServiceRouted = FlowKind(loader.CTKindServiceRouted)
	// FlowNAT64: outside (IPv6) -> a published port of an IPv4-only
	// container, translated to IPv4 from its gateway (conntrack6).
	FlowNAT64 = FlowKind(loader.CTKindNAT64)
)

func (k FlowKind) String() string {
	switch k {
	case FlowSNAT:
		return "snat"
	case FlowDNAT:
		return "dnat"
	case FlowHairpin:
		return "hairpin"
	case FlowRouted:
		return "routed"
	case FlowServiceRouted:
		return "service"
	case FlowNAT64:
		return "nat64"
	}
	return fmt.Sprintf("kind-%d", uint8(k))
}

// FlowState is the TCP state bits one direction has seen.
type FlowState uint8

const (
	StateSYN         = FlowState(loader.CTStateSYN)
	StateEstablished = FlowState(loader.CTStateEstablished) // an ACK without SYN
	StateFIN         = FlowState(loader.CTStateFIN)
	StateRST         = FlowState(loader.CTStateRST)
)

func (s FlowState) String() string {
	var names []string
	for _, b := range []struct {
		bit  FlowState
		name string
	}{{StateSYN, "syn"}, {StateEstablished, "established"}, {StateFIN, "fin"}, {StateRST, "rst"}} {
		if s&b.bit != 0 {
			names = append(names, b.name)
		}
	}
	if len(names) == 0 {
		return "-"
	}
	return strings.Join(names, ",")
}

// Flow is one conntrack entry: one direction of a NATed flow.
type Flow struct {
	Tuple      Tuple     `json:"tuple"`      // as on the wire in this direction: the entry's key
	Translated Tuple     `json:"translated"` // after the rewrite
	Peer       Tuple     `json:"peer"`       // the other direction's key
	Kind       FlowKind  `json:"kind"`
	Reply      bool      `json:"reply"` // the direction opposite to the flow's first packet
	State      FlowState `json:"state"`
	Ifindex    int       `json:"ifindex"` // delivered into this host-side veth; 0: out through the FIB
	// PeerIfindex is the other direction's Ifindex, kept to rebuild it.
	PeerIfindex int           `json:"peer_ifindex"`
	Created     time.Duration `json:"created_ns"`   // CLOCK_MONOTONIC
	LastSeen    time.Duration `json:"last_seen_ns"` // CLOCK_MONOTONIC, updated at most once a second
	// Embryonic: an inbound TCP flow still in the embryonic table, its
	// client not yet having acknowledged the container's answer.
	Embryonic bool `json:"embryonic,omitempty"`
	// Inbound: an inbound datagram flow (a published UDP port), kept in a
	// table of its own so that spoofed datagrams evict only their like.
	Inbound bool `json:"inbound,omitempty"`
}

// MarshalText writes a kind by name in JSON.
func (k FlowKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// MarshalText writes the state bits by name in JSON.
func (s FlowState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalJSON writes a tuple with its protocol by name and addresses with
// ports: {"proto":"tcp","src":"172.30.0.2:40000","dst":"198.18.0.1:80"}.
func (t Tuple) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Proto string         `json:"proto"`
		Src   netip.AddrPort `json:"src"`
		Dst   netip.AddrPort `json:"dst"`
	}{ProtoName(t.Proto), t.Src, t.Dst})
}

// Age is how long ago the flow began.
func (f Flow) Age(now time.Duration) time.Duration { return now - f.Created }

// Idle is how long ago the direction last carried a packet.
func (f Flow) Idle(now time.Duration) time.Duration { return now - f.LastSeen }

func flowFrom(k loader.CTKey, e loader.CTEntry) Flow {
	return Flow{
		Tuple: tupleFromKey(k),
		Translated: Tuple{
			Proto: k.Proto,
			Src:   netip.AddrPortFrom(AddrFromBE32(e.NewSaddr), PortFromBE16(e.NewSport)),
			Dst:   netip.AddrPortFrom(AddrFromBE32(e.NewDaddr), PortFromBE16(e.NewDport)),
		},
		Peer:        tupleFromKey(e.Peer),
		Kind:        FlowKind(e.Kind),
		Reply:       e.Reply != 0,
		State:       FlowState(e.State),
		Ifindex:     int(e.Ifindex),
		PeerIfindex: int(e.PeerIfindex),
		Created:     time.Duration(e.Created),
		LastSeen:    time.Duration(e.LastSeen),
	}
}

// ctBatch is how many entries one read of the conntrack table returns. GC,
// DeleteFlows and counting hold one batch at a time, never the table (the
// table is 524k entries by default: a snapshot of it cost the daemon
// ~280 MB during a SYN flood).
var ctBatch = 4096

// flowTables are the tables whose entries are plain flows the GC expires:
// conntrack, and the inbound datagram flows (ct_inbound). The embryonic
// table expires in the datapath (embryonic.go).
func (v *Views) flowTables() []*ebpf.Map { return []*ebpf.Map{v.m.Conntrack, v.m.CTInbound} }

// forEachFlowBatch is forEachBatch over every flow table.
func (v *Views) forEachFlowBatch(fn func(m *ebpf.Map, keys []loader.CTKey, vals []loader.CTEntry) error) error {
	for _, m := range v.flowTables() {
		if err := v.forEachBatch(m, func(keys []loader.CTKey, vals []loader.CTEntry) error { return fn(m, keys, vals) }); err != nil {
			return err
		}
	}
	return nil
}

// forEachBatch reads table m in batches into fixed buffers and hands each
// batch to fn, which may delete entries (those not yet read are then not
// seen). Memory is O(ctBatch) whatever the table's size.
func (v *Views) forEachBatch(m *ebpf.Map, fn func(keys []loader.CTKey, vals []loader.CTEntry) error) error {
	size := ctBatch
	keys := make([]loader.CTKey, size)
	vals := make([]loader.CTEntry, size)
	var cursor ebpf.MapBatchCursor
	for {
		n, err := m.BatchLookup(&cursor, keys, vals, nil)
		if errors.Is(err, unix.ENOSPC) && n == 0 {
			// One hash bucket holds more entries than the buffer.
			size *= 2
			keys, vals = make([]loader.CTKey, size), make([]loader.CTEntry, size)
			continue
		}
		if errors.Is(err, ebpf.ErrNotSupported) {
			return forEachChunk(m, keys, vals, fn)
		}
		if n > 0 {
			if err := fn(keys[:n], vals[:n]); err != nil {
				return err
			}
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", tableName(m), err)
		}
	}
}

func tableName(m *ebpf.Map) string {
	if info, err := m.Info(); err == nil && info.Name != "" {
		return info.Name
	}
	return "conntrack"
}

// forEachChunk is forEachBatch for kernels without batch lookups.
func forEachChunk(m *ebpf.Map, keys []loader.CTKey, vals []loader.CTEntry, fn func([]loader.CTKey, []loader.CTEntry) error) error {
	n := 0
	it := m.Iterate()
	for it.Next(&keys[n], &vals[n]) {
		if n++; n == len(keys) {
			if err := fn(keys, vals); err != nil {
				return err
			}
			n = 0
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read %s: %w", tableName(m), err)
	}
	if n > 0 {
		return fn(keys[:n], vals[:n])
	}
	return nil
}

// countFlows counts a flow table's entries, one batch at a time.
func (v *Views) countFlows(m *ebpf.Map) (int, error) {
	n := 0
	err := v.forEachBatch(m, func(keys []loader.CTKey, _ []loader.CTEntry) error {
		n += len(keys)
		return nil
	})
	return n, err
}

// Flows lists every entry of conntrack and of the inbound datagram table;
// each flow appears once per direction.
func (v *Views) Flows() ([]Flow, error) {
	var out []Flow
	err := v.forEachFlowBatch(func(m *ebpf.Map, keys []loader.CTKey, vals []loader.CTEntry) error {
		for i := range keys {
			f := flowFrom(keys[i], vals[i])
			f.Inbound = m == v.m.CTInbound
			out = append(out, f)
		}
		return nil
	})
	return out, err
}

// DeleteFlows deletes the entries match selects, and their peers. It returns
// how many entries it deleted. Detach uses it to forget an endpoint's flows.
func (v *Views) DeleteFlows(match func(Flow) bool) (int, error) {
	deleted := 0
	var errs []error
	gone := map[loader.CTKey]bool{} // this batch's deletions: O(batch)
	del := func(m *ebpf.Map, k loader.CTKey) {
		if gone[k] {
			return
		}
		gone[k] = true
		switch err := m.Delete(&k); {
		case err == nil:
			deleted++
		case !errors.Is(err, ebpf.ErrKeyNotExist):
			errs = append(errs, err)
		}
	}
	err := v.forEachFlowBatch(func(m *ebpf.Map, keys []loader.CTKey, vals []loader.CTEntry) error {
		clear(gone)
		for i := range keys {
			if gone[keys[i]] || !match(flowFrom(keys[i], vals[i])) {
				continue
			}
			del(m, keys[i])
			del(m, vals[i].Peer)
		}
		return nil
	})
	if err := errors.Join(append(errs, err)...); err != nil {
		return deleted, fmt.Errorf("delete conntrack entries: %w", err)
	}
	return deleted, nil
}

// Timeouts are how long a flow may stay idle, by protocol and TCP state.
type Timeouts struct {
	TCPSyn         time.Duration // handshake not complete in both directions
	TCPEstablished time.Duration // both directions sent an ACK without SYN
	TCPClosing     time.Duration // FIN or RST seen
	UDP            time.Duration
	ICMP           time.Duration // echo; also other protocols
}

// DefaultTimeouts are close to Linux conntrack's, shorter where a stale
// entry only costs a port.
var DefaultTimeouts = Timeouts{
	TCPSyn:         60 * time.Second,
	TCPEstablished: 6 * time.Hour,
	TCPClosing:     60 * time.Second,
	UDP:            60 * time.Second,
	ICMP:           30 * time.Second,
}

// Validate refuses a timeout that is not positive: GC with one would expire
// every flow of that kind, live or not.
func (t Timeouts) Validate() error {
	for _, c := range []struct {
		name string
		d    time.Duration
	}{{"tcp-syn", t.TCPSyn}, {"tcp-established", t.TCPEstablished}, {"tcp-closing", t.TCPClosing}, {"udp", t.UDP}, {"icmp", t.ICMP}} {
		if c.d <= 0 {
			return fmt.Errorf("conntrack timeout %s %v: must be positive", c.name, c.d)
		}
	}
	return nil
}

// timeout is the idle limit of a flow whose halves are a and b (b may be nil
// when the LRU evicted it; the datapath rebuilds it on the next packet).
func (t Timeouts) timeout(a, b *loader.CTEntry, proto uint8) time.Duration {
	switch proto {
	case ProtoTCP:
		st := FlowState(a.State)
		est := st&StateEstablished != 0
		if b != nil {
			st |= FlowState(b.State)
			est = est && FlowState(b.State)&StateEstablished != 0
		}
		switch {
		case st&(StateFIN|StateRST) != 0:
			return t.TCPClosing
		case est:
			return t.TCPEstablished
		}
		return t.TCPSyn
	case ProtoUDP:
		return t.UDP
	}
	return t.ICMP
}

// shortest is the least idle time after which some flow may expire.
func (t Timeouts) shortest() time.Duration {
	return min(t.TCPSyn, t.TCPEstablished, t.TCPClosing, t.UDP, t.ICMP)
}

// GC deletes the flows idle for longer than their timeout, both halves at
// once, in conntrack, in the inbound datagram table and in conntrack6; now is
// CLOCK_MONOTONIC (Monotonic()). It returns the number of flows expired. A
// flow's idle time is that of its most recently used half.
func (v *Views) GC(now time.Duration, t Timeouts) (expired int, err error) {
	if err := t.Validate(); err != nil {
		return 0, err
	}
	var errs []error
	for _, m := range v.flowTables() {
		n, err := v.gcTable(m, now, t)
		expired += n
		errs = append(errs, err)
	}
	n, err := v.gc6(now, t) // NAT66's flows (conntrack6.go)
	expired += n
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return expired, fmt.Errorf("conntrack GC: %w", err)
	}
	return expired, nil
}

// gcTable is GC on one table. It reads the table in batches
// (forEachBatch) and deletes in batches, so its memory does not grow with
// the table. An entry seen within the shortest timeout is alive whatever
// its peer; any other is read again with its peer (the datapath may have
// used either since the batch was read, and the peer may be in another
// batch) and decided on both.
func (v *Views) gcTable(m *ebpf.Map, now time.Duration, t Timeouts) (expired int, err error) {
	shortest := t.shortest()
	var errs []error
	doomed := make(map[loader.CTKey]bool) // this batch's: O(batch)
	pending := make([]loader.CTKey, 0, 2*ctBatch)
	flush := func() {
		for len(pending) > 0 {
			n, err := m.BatchDelete(pending, nil)
			if err == nil {
				break
			}
			if n >= len(pending) {
				break
			}
			// pending[n] failed (gone meanwhile, or no batch delete):
			// delete it alone and go on with the rest.
			if err := ignoreMissing(m.Delete(&pending[n])); err != nil {
				errs = append(errs, err)
			}
			pending = pending[n+1:]
		}
		pending = pending[:0:cap(pending)]
	}
	// Declared once: a variable whose address goes to a syscall wrapper
	// lives on the heap, and one per entry would grow with the table.
	var cur, peerEntry loader.CTEntry
	err = v.forEachBatch(m, func(keys []loader.CTKey, vals []loader.CTEntry) error {
		clear(doomed)
		for i := range keys {
			k := keys[i]
			if doomed[k] || now-time.Duration(vals[i].LastSeen) <= shortest {
				continue
			}
			if m.Lookup(&keys[i], &cur) != nil {
				continue // gone since the batch was read
			}
			peer := &peerEntry
			if doomed[cur.Peer] || m.Lookup(&cur.Peer, peer) != nil || peer.Peer != k {
				peer = nil // evicted, or the key was reused by another flow
			}
			if now-lastSeen(&cur, peer) <= t.timeout(&cur, peer, k.Proto) {
				continue
			}
			doomed[k] = true
			pending = append(pending, k)
			if peer != nil {
				doomed[cur.Peer] = true
				pending = append(pending, cur.Peer)
			}
			expired++
		}
		flush()
		return nil
	})
	return expired, errors.Join(append(errs, err)...)
}

func lastSeen(a, b *loader.CTEntry) time.Duration {
	t := a.LastSeen
	if b != nil && b.LastSeen > t {
		t = b.LastSeen
	}
	return time.Duration(t)
}

// PutFlow writes the entry f describes, replacing one with the same Tuple.
// The datapath creates flows itself: this is for tests and tools that need
// a crafted entry (an old timestamp, a taken port).
func (v *Views) PutFlow(f Flow) error {
	k := f.Tuple.key()
	e := loader.CTEntry{
		Peer:     f.Peer.key(),
		NewSaddr: BE32(f.Translated.Src.Addr()), NewDaddr: BE32(f.Translated.Dst.Addr()),
		NewSport: BE16(f.Translated.Src.Port()), NewDport: BE16(f.Translated.Dst.Port()),
		Ifindex: uint32(f.Ifindex), PeerIfindex: uint32(f.PeerIfindex),
		Kind: uint8(f.Kind), State: uint8(f.State),
		Created: uint64(f.Created), LastSeen: uint64(f.LastSeen),
	}
	if f.Reply {
		e.Reply = 1
	}
	if err := v.m.Conntrack.Put(&k, &e); err != nil {
		return fmt.Errorf("write conntrack entry %v: %w", f.Tuple, err)
	}
	return nil
}

// DeleteEndpointFlows forgets every flow of the container with address ip,
// in either direction, whatever the translation (detach calls it, after
// removing the endpoint), and the IPv6 flows of every endpoint removed.
func (v *Views) DeleteEndpointFlows(ip netip.Addr) (int, error) {
	involves := func(f Flow) bool {
		return f.Tuple.Src.Addr() == ip || f.Tuple.Dst.Addr() == ip ||
			f.Translated.Src.Addr() == ip || f.Translated.Dst.Addr() == ip
	}
	n, err := v.DeleteFlows(involves)
	// Half-open flows too: a new endpoint may get the address, and must not
	// inherit a handshake in flight to the old one.
	emb, embErr := v.deleteEmbryonic(involves)
	// Its IPv6 flows (NAT66), found by its endpoint entry's absence.
	n6, err6 := v.deleteOrphanFlows6()
	return n + emb + n6, errors.Join(err, embErr, err6)
}
