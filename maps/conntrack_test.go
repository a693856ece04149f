package maps

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sort"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/loader"
)

func newViews(t *testing.T) *Views {
	t.Helper()
	dp, err := loader.Load(loader.Options{CTMapSize: 1024})
	if err != nil {
		t.Fatalf("load datapath: %v", err)
	}
	t.Cleanup(dp.Close)
	return New(&dp.Maps)
}

var (
	ctrA = netip.MustParseAddr("172.30.0.2")
	ctrB = netip.MustParseAddr("172.30.0.3")
	host = netip.MustParseAddr("198.18.0.2")
	srv  = netip.MustParseAddr("198.18.5.5")
)

// putPair writes both halves of a masqueraded flow from c:port to srv:dport
// with the given states and last-seen times.
func putPair(t *testing.T, v *Views, proto uint8, c netip.Addr, port, dport uint16, fwdState, repState FlowState, fwdSeen, repSeen time.Duration) (fwd, rep Tuple) {
	t.Helper()
	fwd = Tuple{Proto: proto, Src: netip.AddrPortFrom(c, port), Dst: netip.AddrPortFrom(srv, dport)}
	rep = Tuple{Proto: proto, Src: netip.AddrPortFrom(srv, dport), Dst: netip.AddrPortFrom(host, port)}
	for _, f := range []Flow{
		{Tuple: fwd, Translated: Tuple{proto, rep.Dst, fwd.Dst}, Peer: rep, Kind: FlowSNAT, State: fwdState, PeerIfindex: 7, LastSeen: fwdSeen, Created: fwdSeen},
		{Tuple: rep, Translated: Tuple{proto, rep.Src, fwd.Src}, Peer: fwd, Kind: FlowSNAT, Reply: true, State: repState, Ifindex: 7, LastSeen: repSeen, Created: fwdSeen},
	} {
		if err := v.PutFlow(f); err != nil {
			t.Fatal(err)
		}
	}
	return fwd, rep
}

func keys(t *testing.T, v *Views) map[Tuple]bool {
	t.Helper()
	fs, err := v.Flows()
	if err != nil {
		t.Fatal(err)
	}
	out := map[Tuple]bool{}
	for _, f := range fs {
		out[f.Tuple] = true
	}
	return out
}

// gcNow is the CLOCK_MONOTONIC time the GC tests pretend it is. GC takes
// the time as an argument, so the tests use a fixed clock and never the
// machine's: a real "now - 2h" is negative on a machine booted less than two
// hours ago.
const gcNow = 100 * time.Hour

func TestGCStateAwareTimeouts(t *testing.T) {
	v := newViews(t)
	now := gcNow
	ago := func(d time.Duration) time.Duration { return now - d }
	const (
		syn  = StateSYN
		est  = StateSYN | StateEstablished
		fin  = StateSYN | StateEstablished | StateFIN
		none = FlowState(0)
	)
	to := Timeouts{TCPSyn: time.Minute, TCPEstablished: time.Hour, TCPClosing: 10 * time.Second, UDP: 30 * time.Second, ICMP: 5 * time.Second}
	type pair struct {
		name    string
		fwd     Tuple
		rep     Tuple
		expired bool
	}
	var pairs []pair
	add := func(name string, proto uint8, port uint16, fs, rs FlowState, fseen, rseen time.Duration, expired bool) {
		f, r := putPair(t, v, proto, ctrA, port, 443, fs, rs, ago(fseen), ago(rseen))
		pairs = append(pairs, pair{name, f, r, expired})
	}
	add("established, idle 30m", ProtoTCP, 1001, est, est, 30*time.Minute, 40*time.Minute, false)
	add("established, idle 2h", ProtoTCP, 1002, est, est, 2*time.Hour, 2*time.Hour, true)
	add("half-open (one side established) idle 2m: syn timeout", ProtoTCP, 1003, est, syn, 2*time.Minute, 2*time.Minute, true)
	add("syn idle 30s", ProtoTCP, 1004, syn, none, 30*time.Second, 30*time.Second, false)
	add("closing idle 20s", ProtoTCP, 1005, fin, est, 20*time.Second, 20*time.Second, true)
	add("closing idle 5s", ProtoTCP, 1006, fin, est, 5*time.Second, 5*time.Second, false)
	add("rst on the reply side idle 20s", ProtoTCP, 1007, est, StateRST, 20*time.Second, 20*time.Second, true)
	add("udp: one half recent", ProtoUDP, 1008, none, none, 10*time.Minute, 10*time.Second, false)
	add("udp idle 1m", ProtoUDP, 1009, none, none, time.Minute, time.Minute, true)
	add("icmp idle 6s", ProtoICMP, 1010, none, none, 6*time.Second, 6*time.Second, true)
	add("icmp idle 1s", ProtoICMP, 1011, none, none, time.Second, time.Second, false)

	// A lone half whose peer the LRU evicted: expired on its own.
	lone, gone := putPair(t, v, ProtoUDP, ctrB, 2000, 53, none, none, ago(time.Hour), ago(time.Hour))
	k := gone.key()
	if err := v.m.Conntrack.Delete(&k); err != nil {
		t.Fatal(err)
	}

	want := 1 // the lone half
	for _, p := range pairs {
		if p.expired {
			want++
		}
	}
	n, err := v.GC(now, to)
	if err != nil {
		t.Fatal(err)
	}
	if n != want {
		t.Errorf("GC expired %d flows, want %d", n, want)
	}
	left := keys(t, v)
	for _, p := range pairs {
		for _, k := range []Tuple{p.fwd, p.rep} {
			if left[k] == p.expired {
				t.Errorf("%s: entry %v present=%v, want %v", p.name, k, left[k], !p.expired)
			}
		}
	}
	if left[lone] {
		t.Error("lone expired half kept")
	}
	// A second run finds nothing more.
	if n, err := v.GC(now, to); err != nil || n != 0 {
		t.Errorf("second GC = %d, %v; want 0", n, err)
	}
}

// On a machine booted a few seconds ago every timestamp is small: the GC
// must neither underflow nor expire what the datapath just touched (an entry
// refreshed after the GC read the clock is newer than now).
func TestGCYoungMachine(t *testing.T) {
	v := newViews(t)
	now := 3 * time.Second // booted three seconds ago
	to := Timeouts{TCPSyn: time.Minute, TCPEstablished: time.Hour, TCPClosing: 10 * time.Second, UDP: 30 * time.Second, ICMP: time.Second}
	fresh, _ := putPair(t, v, ProtoUDP, ctrA, 3000, 53, 0, 0, time.Second, 2*time.Second)
	future, _ := putPair(t, v, ProtoUDP, ctrA, 3001, 53, 0, 0, 0, now+time.Second)
	boot, _ := putPair(t, v, ProtoICMP, ctrA, 3002, 0, 0, 0, 0, 0) // seen at ktime 0, idle 3s > 1s
	n, err := v.GC(now, to)
	if err != nil || n != 1 {
		t.Errorf("GC = %d, %v; want 1 (the ICMP flow)", n, err)
	}
	left := keys(t, v)
	if !left[fresh] || !left[future] || left[boot] {
		t.Errorf("after GC: fresh %v (want true), touched after now %v (want true), idle since boot %v (want false)", left[fresh], left[future], left[boot])
	}
}

func TestDeleteFlowsRemovesBothHalves(t *testing.T) {
	v := newViews(t)
	now := gcNow
	putPair(t, v, ProtoTCP, ctrA, 1000, 443, StateSYN, 0, now, now)
	putPair(t, v, ProtoUDP, ctrA, 1001, 53, 0, 0, now, now)
	keepF, keepR := putPair(t, v, ProtoTCP, ctrB, 1002, 443, StateSYN, 0, now, now)
	// Detach of A: match on the container side of either half.
	n, err := v.DeleteEndpointFlows(ctrA)
	if err != nil || n != 4 {
		t.Fatalf("DeleteFlows = %d, %v; want 4 entries", n, err)
	}
	left := keys(t, v)
	var got []string
	for k := range left {
		got = append(got, k.String())
	}
	sort.Strings(got)
	if len(left) != 2 || !left[keepF] || !left[keepR] {
		t.Errorf("left %v, want only B's flow", got)
	}
}

func TestPortEntries(t *testing.T) {
	v := newViews(t)
	specific := netip.MustParseAddr("198.18.0.9")
	bs := []PortEntry{
		{Proto: ProtoTCP, HostPort: 8080, ContainerIP: ctrA, ContainerPort: 80, Ifindex: 11},
		{Proto: ProtoTCP, HostIP: specific, HostPort: 8080, ContainerIP: ctrB, ContainerPort: 8000, Ifindex: 12},
		{Proto: ProtoUDP, HostPort: 8080, ContainerIP: ctrB, ContainerPort: 53, Ifindex: 12},
	}
	for _, b := range bs {
		if err := v.PutPortEntry(b); err != nil {
			t.Fatal(err)
		}
	}
	dup := bs[0]
	dup.HostIP = netip.IPv4Unspecified() // 0.0.0.0 is "any" too
	if err := v.PutPortEntry(dup); err == nil {
		t.Error("duplicate binding accepted")
	}
	if err := v.PutPortEntry(PortEntry{Proto: 132, HostPort: 1, ContainerIP: ctrA, ContainerPort: 1}); err == nil {
		t.Error("SCTP binding accepted")
	}
	got, err := v.PortEntries()
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(got, func(i, j int) bool { return got[i].ContainerPort < got[j].ContainerPort })
	want := []PortEntry{bs[2], bs[0], bs[1]}
	if len(got) != 3 {
		t.Fatalf("PortEntries = %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("binding %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	// The raw key: port in network byte order.
	var pb loader.PortEntry
	key := loader.PortKey{Proto: ProtoTCP, Port: BE16(8080), HostIp: BE32(specific)}
	if err := v.m.Ports.Lookup(&key, &pb); err != nil || PortFromBE16(pb.ContainerPort) != 8000 {
		t.Errorf("raw lookup: %+v, %v", pb, err)
	}
	var raw [2]byte
	binary.NativeEndian.PutUint16(raw[:], key.Port)
	if raw != [2]byte{0x1f, 0x90} {
		t.Errorf("port 8080 stored as %x, want 1f90", raw)
	}
	if err := v.DeletePortEntry(bs[1]); err != nil {
		t.Fatal(err)
	}
	if err := v.DeletePortEntry(bs[1]); err != nil {
		t.Errorf("deleting a missing binding: %v", err)
	}
	if got, _ := v.PortEntries(); len(got) != 2 {
		t.Errorf("after delete: %v", got)
	}
}

func TestUplinks(t *testing.T) {
	v := newViews(t)
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	if err := v.PutUplink(Uplink{Ifindex: 5, IP: host, MAC: mac}); err != nil {
		t.Fatal(err)
	}
	other := netip.MustParseAddr("198.18.0.3")
	if err := v.PutUplink(Uplink{Ifindex: 5, IP: other, MAC: mac}); err != nil { // address change
		t.Fatal(err)
	}
	var idx uint32
	if err := v.m.UplinkIPs.Lookup(BE32(host), &idx); err == nil {
		t.Error("old uplink address still maps to the uplink")
	}
	if err := v.m.UplinkIPs.Lookup(BE32(other), &idx); err != nil || idx != 5 {
		t.Errorf("uplink_ips[%v] = %d, %v", other, idx, err)
	}
	ups, err := v.Uplinks()
	if err != nil || len(ups) != 1 || ups[0].IP != other || ups[0].MAC.String() != mac.String() {
		t.Fatalf("Uplinks = %v, %v", ups, err)
	}
	if err := v.DeleteUplink(5); err != nil {
		t.Fatal(err)
	}
	if err := v.DeleteUplink(5); err != nil {
		t.Errorf("deleting a missing uplink: %v", err)
	}
	if err := v.m.UplinkIPs.Lookup(BE32(other), &idx); err == nil {
		t.Error("uplink address left behind")
	}
}

func TestGCRefusesNonPositiveTimeouts(t *testing.T) {
	v := newViews(t)
	live, _ := putPair(t, v, ProtoUDP, ctrA, 4000, 53, 0, 0, gcNow, gcNow)
	to := DefaultTimeouts
	to.UDP = -5 * time.Second
	if n, err := v.GC(gcNow, to); err == nil || n != 0 {
		t.Errorf("GC with a UDP timeout of -5s = %d, %v; want a refusal", n, err)
	}
	if !keys(t, v)[live] {
		t.Error("a live flow expired")
	}
	if err := DefaultTimeouts.Validate(); err != nil {
		t.Errorf("default timeouts: %v", err)
	}
}

// An uplink's IPv6 addresses (for the socket hooks): only global unicast
// ones, replaced as a whole, gone with the uplink.
func TestUplinkIPs6(t *testing.T) {
	v := newViews(t)
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	if err := v.PutUplink(Uplink{Ifindex: 5, IP: host, MAC: mac}); err != nil {
		t.Fatal(err)
	}
	a, b := netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("2001:db8::3")
	if err := v.PutUplinkIPs6(5, []netip.Addr{a, netip.MustParseAddr("fe80::1"), netip.MustParseAddr("::1"), host}); err != nil {
		t.Fatal(err)
	}
	if err := v.PutUplinkIPs6(7, []netip.Addr{netip.MustParseAddr("2001:db8:7::1")}); err != nil {
		t.Fatal(err)
	}
	if got, err := v.UplinkIPs6(); err != nil || len(got[5]) != 1 || got[5][0] != a || len(got[7]) != 1 {
		t.Fatalf("UplinkIPs6 = %v, %v", got, err)
	}
	if err := v.PutUplinkIPs6(5, []netip.Addr{b}); err != nil {
		t.Fatal(err)
	}
	if got, _ := v.UplinkIPs6(); len(got[5]) != 1 || got[5][0] != b {
		t.Fatalf("after replacing: %v", got)
	}
	if err := v.DeleteUplink(5); err != nil {
		t.Fatal(err)
	}
	if got, _ := v.UplinkIPs6(); len(got[5]) != 0 || len(got[7]) != 1 {
		t.Fatalf("after deleting uplink 5: %v", got)
	}
}
