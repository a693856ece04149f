package maps

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"

	"github.com/cilium/ebpf"

	"github.com/ebpfnet/ebpfnet/loader"
)

// BE16 is a port as the datapath stores it: network byte order in memory.
func BE16(p uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], p)
	return binary.NativeEndian.Uint16(b[:])
}

// PortFromBE16 is the inverse of BE16.
func PortFromBE16(v uint16) uint16 {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], v)
	return binary.BigEndian.Uint16(b[:])
}

// Uplink is an interface that leads outside. Its IP is the masquerade
// address of traffic leaving through it and the host IP of published ports
// bound to any address.
type Uplink struct {
	Ifindex int
	IP      netip.Addr
	MAC     net.HardwareAddr
}

// PutUplink writes or replaces an uplink.
func (v *Views) PutUplink(u Uplink) error {
	if !u.IP.Is4() {
		return fmt.Errorf("uplink %d: %v is not an IPv4 address", u.Ifindex, u.IP)
	}
	mac, err := mac6(u.MAC)
	if err != nil {
		return err
	}
	idx := uint32(u.Ifindex)
	var old loader.UplinkInfo
	if err := v.m.Uplinks.Lookup(idx, &old); err == nil && old.Ip != BE32(u.IP) {
		if err := ignoreMissing(v.m.UplinkIPs.Delete(old.Ip)); err != nil {
			return fmt.Errorf("replace uplink %d address: %w", u.Ifindex, err)
		}
	}
	if err := v.m.UplinkIPs.Put(BE32(u.IP), idx); err != nil {
		return fmt.Errorf("write uplink address %s: %w", u.IP, err)
	}
	info := loader.UplinkInfo{Ip: BE32(u.IP), Mac: mac}
	if err := v.m.Uplinks.Put(idx, &info); err != nil {
		v.m.UplinkIPs.Delete(BE32(u.IP))
		return fmt.Errorf("write uplink %d: %w", u.Ifindex, err)
	}
	return nil
}

// DeleteUplink removes an uplink; a missing one is no error.
func (v *Views) DeleteUplink(ifindex int) error {
	idx := uint32(ifindex)
	var info loader.UplinkInfo
	if err := v.m.Uplinks.Lookup(idx, &info); err != nil {
		return ignoreMissing(err)
	}
	var owner uint32
	var ipErr error
	if v.m.UplinkIPs.Lookup(info.Ip, &owner) == nil && owner == idx {
		ipErr = ignoreMissing(v.m.UplinkIPs.Delete(info.Ip))
	}
	return errors.Join(ipErr, v.deleteUplinkIPs6(idx), ignoreMissing(v.m.Uplinks.Delete(idx)))
}

// PutUplinkIPs6 records an uplink's global IPv6 addresses, which the socket
// hooks recognise as the host's own (a host process dialling one at a
// published port reaches the container); from_uplink asks the FIB
// instead. Link-local, loopback, multicast and mapped addresses are left
// out. The uplink's earlier addresses are replaced; on an error none is
// left.
func (v *Views) PutUplinkIPs6(ifindex int, ips []netip.Addr) error {
	idx := uint32(ifindex)
	if err := v.deleteUplinkIPs6(idx); err != nil {
		return err
	}
	for _, ip := range ips {
		if !ip.Is6() || ip.Is4In6() || !ip.IsGlobalUnicast() {
			continue
		}
		k := ip6Key(ip)
		if err := v.m.UplinkIPs6.Put(&k, idx); err != nil {
			v.deleteUplinkIPs6(idx)
			return fmt.Errorf("write uplink address %s: %w", ip, err)
		}
	}
	return nil
}

// UplinkIPs6 lists the uplinks' IPv6 addresses by ifindex.
func (v *Views) UplinkIPs6() (map[int][]netip.Addr, error) {
	out := map[int][]netip.Addr{}
	var k loader.IP6Key
	var idx uint32
	it := v.m.UplinkIPs6.Iterate()
	for it.Next(&k, &idx) {
		out[int(idx)] = append(out[int(idx)], addrFromIP6(k))
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list uplink IPv6 addresses: %w", err)
	}
	return out, nil
}

func (v *Views) deleteUplinkIPs6(idx uint32) error {
	var keys []loader.IP6Key
	var k loader.IP6Key
	var owner uint32
	it := v.m.UplinkIPs6.Iterate()
	for it.Next(&k, &owner) {
		if owner == idx {
			keys = append(keys, k)
		}
	}
	errs := []error{it.Err()}
	for _, k := range keys {
		errs = append(errs, ignoreMissing(v.m.UplinkIPs6.Delete(&k)))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove uplink %d's IPv6 addresses: %w", idx, err)
	}
	return nil
}

// Uplinks lists the uplinks.
func (v *Views) Uplinks() ([]Uplink, error) {
	var out []Uplink
	var idx uint32
	var info loader.UplinkInfo
	it := v.m.Uplinks.Iterate()
	for it.Next(&idx, &info) {
		out = append(out, Uplink{Ifindex: int(idx), IP: AddrFromBE32(info.Ip), MAC: append(net.HardwareAddr(nil), info.Mac[:]...)})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list uplinks: %w", err)
	}
	return out, nil
}

// Protocol numbers of published ports.
const (
	ProtoTCP  uint8 = 6
	ProtoUDP  uint8 = 17
	ProtoICMP uint8 = 1
)

// PortEntry is one published port: (Proto, HostIP, HostPort) is DNATed
// to ContainerIP:ContainerPort, delivered into the endpoint whose host-side
// veth is Ifindex.
type PortEntry struct {
	Proto         uint8      // ProtoTCP or ProtoUDP
	HostIP        netip.Addr // invalid: every address, both families; 0.0.0.0 or [::]: one family's
	HostPort      uint16
	ContainerIP   netip.Addr
	ContainerPort uint16
	Ifindex       int
	// RuntimeHeld: the runtime reserves the host port with a socket of
	// its own, which the bind guard lets through (PORT_F_RUNTIME_HELD).
	RuntimeHeld bool
}

// v6 reports whether b is published on IPv6 alone, on one address or
// [::] (the ports6 table); every other binding is in ports: with no host
// address (both families), 0.0.0.0 (PORT_F_IPV4_ONLY) or an IPv4 address.
func (b PortEntry) v6() bool {
	return b.HostIP.Is6() && !b.HostIP.Is4In6()
}

func (b PortEntry) check() error {
	if b.Proto != ProtoTCP && b.Proto != ProtoUDP {
		return fmt.Errorf("published port %d: protocol %d is neither TCP nor UDP", b.HostPort, b.Proto)
	}
	if b.HostIP.Is4In6() {
		return fmt.Errorf("published port %d: host IP %v is an IPv4-mapped address", b.HostPort, b.HostIP)
	}
	return nil
}

func (b PortEntry) key4() loader.PortKey {
	k := loader.PortKey{Proto: b.Proto, Port: BE16(b.HostPort)}
	if b.HostIP.Is4() {
		k.HostIp = BE32(b.HostIP)
	}
	return k
}

func (b PortEntry) key6() loader.Port6Key {
	return loader.Port6Key{Proto: b.Proto, Port: BE16(b.HostPort), HostIp: ip6Key(b.HostIP)}
}

// entry is b's table and key.
func (v *Views) entry(b PortEntry) (*ebpf.Map, any, error) {
	if err := b.check(); err != nil {
		return nil, nil, err
	}
	if b.v6() {
		k := b.key6()
		return v.m.Ports6, &k, nil
	}
	k := b.key4()
	return v.m.Ports, &k, nil
}

// PutPortEntry publishes a port. It fails if the (proto, host IP, host
// port) is already published.
func (v *Views) PutPortEntry(b PortEntry) error {
	m, k, err := v.entry(b)
	if err != nil {
		return err
	}
	val, err := b.value()
	if err != nil {
		return err
	}
	if err := m.Update(k, &val, ebpf.UpdateNoExist); err != nil {
		return fmt.Errorf("publish %s: %w", b.hostString(), err)
	}
	return nil
}

// portBatch bounds one batch syscall's keys and values (and the kernel's
// copy of them).
const portBatch = 4096

func (b PortEntry) value() (loader.PortEntry, error) {
	// A binding in ports6 reaches the container by its IPv6 address
	// (endpoints6, by ifindex): one of an IPv6-only endpoint has no IPv4.
	if !b.ContainerIP.Is4() && !(b.v6() && !b.ContainerIP.IsValid()) {
		return loader.PortEntry{}, fmt.Errorf("published port %d: container IP %v is not IPv4", b.HostPort, b.ContainerIP)
	}
	val := loader.PortEntry{ContainerIp: BE32(b.ContainerIP), ContainerPort: BE16(b.ContainerPort), Ifindex: uint32(b.Ifindex)}
	if b.RuntimeHeld {
		val.Flags |= uint16(loader.PortRuntimeHeld)
	}
	if b.HostIP == netip.IPv4Unspecified() {
		val.Flags |= uint16(loader.PortIPv4Only)
	}
	return val, nil
}

// byTable splits bindings into those of ports and those of ports6.
func byTable(bs []PortEntry) (b4, b6 []PortEntry, err error) {
	for _, b := range bs {
		if err := b.check(); err != nil {
			return nil, nil, err
		}
		if b.v6() {
			b6 = append(b6, b)
		} else {
			b4 = append(b4, b)
		}
	}
	return b4, b6, nil
}

// PutPortEntries publishes ports in batches, one syscall per 4096
// instead of one per port (a -p 20000-40000 range). Unlike PutPortEntry
// it does not refuse a port already in the map: the kernel takes no
// BPF_NOEXIST in a batch. Callers check conflicts against the store under
// its lock, after the intents of dead commands were rolled back, so the
// map holds no binding the store does not. All or none: on an error those
// written are removed again.
func (v *Views) PutPortEntries(bs []PortEntry) error {
	b4, b6, err := byTable(bs)
	if err != nil {
		return err
	}
	keys4 := make([]loader.PortKey, len(b4))
	keys6 := make([]loader.Port6Key, len(b6))
	vals4 := make([]loader.PortEntry, len(b4))
	vals6 := make([]loader.PortEntry, len(b6))
	for j, b := range b4 {
		keys4[j] = b.key4()
		if vals4[j], err = b.value(); err != nil {
			return err
		}
	}
	for j, b := range b6 {
		keys6[j] = b.key6()
		if vals6[j], err = b.value(); err != nil {
			return err
		}
	}
	if n, err := batchPut(v.m.Ports, keys4, vals4); err != nil {
		v.DeletePortEntries(b4[:n])
		return fmt.Errorf("publish ports from %s: %w", b4[0].hostString(), err)
	}
	if n, err := batchPut(v.m.Ports6, keys6, vals6); err != nil {
		v.DeletePortEntries(append(b4, b6[:n]...))
		return fmt.Errorf("publish ports from %s: %w", b6[0].hostString(), err)
	}
	return nil
}

// batchPut writes keys and vals in batches. On an error it returns how
// many of them may have been written.
func batchPut[K any](m *ebpf.Map, keys []K, vals []loader.PortEntry) (int, error) {
	for start := 0; start < len(keys); start += portBatch {
		end := min(start+portBatch, len(keys))
		if _, err := m.BatchUpdate(keys[start:end], vals[start:end], nil); err != nil {
			return end, fmt.Errorf("%d ports: %w", end-start, err)
		}
	}
	return len(keys), nil
}

// DeletePortEntries unpublishes ports in batches; missing ones are no
// error.
func (v *Views) DeletePortEntries(bs []PortEntry) error {
	b4, b6, err := byTable(bs)
	if err != nil {
		return err
	}
	keys4 := make([]loader.PortKey, 0, len(b4))
	for _, b := range b4 {
		keys4 = append(keys4, b.key4())
	}
	keys6 := make([]loader.Port6Key, 0, len(b6))
	for _, b := range b6 {
		keys6 = append(keys6, b.key6())
	}
	return errors.Join(batchDelete(v.m.Ports, keys4), batchDelete(v.m.Ports6, keys6))
}

func batchDelete[K any](m *ebpf.Map, keys []K) error {
	var errs []error
	for start := 0; start < len(keys); {
		end := min(start+portBatch, len(keys))
		n, err := m.BatchDelete(keys[start:end], nil)
		if err == nil {
			start = end
			continue
		}
		// The kernel stops at the first missing key: delete that one
		// alone and go on after it.
		if k := start + n; k < end {
			errs = append(errs, ignoreMissing(m.Delete(&keys[k])))
			start = k + 1
			continue
		}
		errs = append(errs, err)
		start = end
	}
	return errors.Join(errs...)
}

// DeletePortEntry unpublishes the port b's (Proto, HostIP, HostPort) names;
// a missing one is no error.
func (v *Views) DeletePortEntry(b PortEntry) error {
	m, k, err := v.entry(b)
	if err != nil {
		return err
	}
	return ignoreMissing(m.Delete(k))
}

// readTable reads a whole table of published ports in batches: a few
// syscalls for 40000 published ports rather than two per port.
func readTable[K any](m *ebpf.Map) ([]K, []loader.PortEntry, error) {
	size := min(int(m.MaxEntries()), portBatch)
	keys := make([]K, size)
	vals := make([]loader.PortEntry, size)
	var outK []K
	var outV []loader.PortEntry
	var cursor ebpf.MapBatchCursor
	for {
		n, err := m.BatchLookup(&cursor, keys, vals, nil)
		if errors.Is(err, ebpf.ErrNotSupported) {
			return iterateTable[K](m)
		}
		outK, outV = append(outK, keys[:n]...), append(outV, vals[:n]...)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return outK, outV, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("list published ports: %w", err)
		}
	}
}

// iterateTable is readTable for kernels without batch lookups.
func iterateTable[K any](m *ebpf.Map) ([]K, []loader.PortEntry, error) {
	var outK []K
	var outV []loader.PortEntry
	var k K
	var val loader.PortEntry
	it := m.Iterate()
	for it.Next(&k, &val) {
		outK, outV = append(outK, k), append(outV, val)
	}
	if err := it.Err(); err != nil {
		return nil, nil, fmt.Errorf("list published ports: %w", err)
	}
	return outK, outV, nil
}

func portEntry(proto uint8, port uint16, val loader.PortEntry) PortEntry {
	return PortEntry{
		Proto:         proto,
		HostPort:      PortFromBE16(port),
		ContainerIP:   endpointAddr(val.ContainerIp), // 0: an IPv6-only endpoint's (ports6)
		ContainerPort: PortFromBE16(val.ContainerPort),
		Ifindex:       int(val.Ifindex),
		RuntimeHeld:   val.Flags&uint16(loader.PortRuntimeHeld) != 0,
	}
}

// PortEntries lists the published ports, of both tables. HostIP is
// invalid for bindings on every address of both families, 0.0.0.0 or [::]
// for those of one.
func (v *Views) PortEntries() ([]PortEntry, error) {
	keys, vals, err := readTable[loader.PortKey](v.m.Ports)
	if err != nil {
		return nil, err
	}
	keys6, vals6, err := readTable[loader.Port6Key](v.m.Ports6)
	if err != nil {
		return nil, err
	}
	out := make([]PortEntry, 0, len(keys)+len(keys6))
	for j, k := range keys {
		b := portEntry(k.Proto, k.Port, vals[j])
		if k.HostIp != 0 || vals[j].Flags&uint16(loader.PortIPv4Only) != 0 {
			b.HostIP = AddrFromBE32(k.HostIp)
		}
		out = append(out, b)
	}
	for j, k := range keys6 {
		b := portEntry(k.Proto, k.Port, vals6[j])
		b.HostIP = addrFromIP6(k.HostIp)
		out = append(out, b)
	}
	return out, nil
}

func (b PortEntry) hostString() string {
	return fmt.Sprintf("%s:%d/%s", HostAddrString(b.HostIP), b.HostPort, ProtoName(b.Proto))
}

// HostAddrString is how ebpfnet writes a published port's host address
// everywhere: the zero address (every address of the host) as 0.0.0.0, an
// IPv6 address in brackets as Docker writes it ([::1]:8080).
func HostAddrString(ip netip.Addr) string {
	if !ip.IsValid() {
		return "0.0.0.0"
	}
	if ip.Is6() && !ip.Is4In6() {
		return "[" + ip.String() + "]"
	}
	return ip.String()
}

// NATStats are the source port allocator's counters, summed over CPUs.
type NATStats struct {
	// AllocFailures counts new flows dropped because every candidate
	// port was taken (also counted as drop reason nat_exhausted).
	AllocFailures uint64
	// Retries is a histogram of the retries a successful allocation took,
	// by bucket (NATRetryBucketNames): 0, 1, 2-3, 4-7, 8-15, 16-31; the
	// last bucket counts exhaustion. Allocations needing many retries mean
	// the conntrack table is crowded for some destination: run GC early.
	Retries [loader.NATRetryBuckets]uint64
}

// Strained counts allocations that needed at least half the retry budget
// or failed: when it grows, the conntrack table is crowded for some
// destinations and the control plane should run GC early.
func (s NATStats) Strained() uint64 {
	var n uint64
	for _, c := range s.Retries[loader.NATRetryStrained:] {
		n += c
	}
	return n
}

// NATRetryBucketNames label the Retries buckets, from the C enum's BTF:
// NAT_RETRY_2_3 is "2-3", NAT_RETRY_EXHAUSTED "exhausted".
// Read on first use, not at start-up: parsing the BTF costs every
// command about 2 ms.
var NATRetryBucketNames = sync.OnceValue(func() (out [loader.NATRetryBuckets]string) {
	for v, name := range mustEnumLabels[uint32]("nat_retry_bucket", "NAT_RETRY_") {
		out[v] = strings.ReplaceAll(name, "_", "-")
	}
	return out
})

// NATStats reads the allocator's counters.
func (v *Views) NATStats() (NATStats, error) {
	var s NATStats
	var per []uint64
	if err := v.m.NATAllocFailures.Lookup(uint32(0), &per); err != nil {
		return s, fmt.Errorf("read NAT allocation failures: %w", err)
	}
	for _, c := range per {
		s.AllocFailures += c
	}
	for i := range s.Retries {
		if err := v.m.NATRetries.Lookup(uint32(i), &per); err != nil {
			return s, fmt.Errorf("read NAT retries: %w", err)
		}
		for _, c := range per {
			s.Retries[i] += c
		}
	}
	return s, nil
}
