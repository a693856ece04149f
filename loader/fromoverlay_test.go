package loader_test

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket/layers"

	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

// from_overlay through BPF_PROG_TEST_RUN. The test run cannot attach
// tunnel metadata, so these tests run bpf/from_overlay_test.c: the program
// of bpf/from_overlay.c, compiled with bpf_skb_get_tunnel_key replaced by a
// stub that reads the key from the context's cb[] (cb[0] the VNI, cb[1] the
// outer source, cb[2] whether there is a key at all). It shares the
// datapath's maps, so the fixtures and the counters are the real ones.

// loadOverlayTestEntry loads the test build of from_overlay against the
// maps of the fixture's datapath.
func loadOverlayTestEntry(tb testing.TB, f *fixture) *ebpf.Program {
	tb.Helper()
	spec, err := loadFromOverlayTest()
	if err != nil {
		tb.Fatal(err)
	}
	shared := f.dp.Maps.ByName()
	repl := map[string]*ebpf.Map{}
	for name := range spec.Maps {
		if m, ok := shared[name]; ok {
			repl[name] = m
		}
	}
	for _, name := range []string{"remote_endpoints", "overlay_networks", "networks", "endpoint_ips", "overlay_hosts", "endpoint_stats", "drop_counters", "verdicts"} {
		if repl[name] == nil {
			tb.Fatalf("test build of from_overlay: map %s not shared with the datapath", name)
		}
	}
	var progs fromOverlayTestPrograms
	if err := spec.LoadAndAssign(&progs, &ebpf.CollectionOptions{MapReplacements: repl}); err != nil {
		tb.Fatalf("load test build of from_overlay: %v", err)
	}
	tb.Cleanup(func() { progs.Close() })
	return progs.FromOverlay
}

// tunnelKey is what the VXLAN device would attach: the VNI and the outer
// source. ok false: no tunnel metadata at all.
type tunnelKey struct {
	vni   uint32
	outer netip.Addr
	ok    bool
}

func keyFrom(vni uint32, outer netip.Addr) tunnelKey {
	return tunnelKey{vni: vni, outer: outer, ok: true}
}

func (k tunnelKey) context() loader.SkBuff {
	c := loader.SkBuff{IngressIfindex: uint32(ifVXLAN)}
	if k.ok {
		c.CB[0], c.CB[1], c.CB[2] = k.vni, binary.BigEndian.Uint32(k.outer.AsSlice()), 1
	}
	return c
}

// runOverlay runs the test build of from_overlay on frame with key. ok
// false: the kernel refused the frame (too short or too long for a test run).
func runOverlay(t *testing.T, prog *ebpf.Program, key tunnelKey, frame []byte) (ret uint32, out []byte, ok bool) {
	t.Helper()
	buf := make([]byte, len(frame)+256)
	opts := ebpf.RunOptions{Data: frame, DataOut: buf, Context: key.context(), Repeat: 1}
	ret, err := prog.Run(&opts)
	if err != nil {
		if len(frame) < 14+40 || len(frame) > 3000 {
			return 0, nil, false
		}
		t.Fatalf("BPF_PROG_TEST_RUN: %v", err)
	}
	return ret, buf[:len(opts.DataOut)], true
}

// The overlay world: newOverlayFixture's networks 3 (VNI 4096: local D,
// remote R on host R) and 4 (VNI 4097: remote S on host S), and newFixture's
// bridge networks 1 (A, B) and 2 (C), plus
//   - on 3 a second local endpoint D2;
//   - on 4 a local endpoint E and a remote endpoint R4 on host R (one host
//     on two VNIs);
//   - network 5 (VNI 4098, --icc=false): local F, remote T on host S;
//   - a remote endpoint U whose network (1, a bridge network) has no VNI;
//   - a peer host X with no endpoints.
var (
	macD2 = net.HardwareAddr{0x02, 0x42, 10, 210, 0, 3}
	macE  = net.HardwareAddr{0x02, 0x42, 10, 211, 0, 2}
	macR4 = net.HardwareAddr{0x02, 0x42, 10, 211, 0, 64}
	macF  = net.HardwareAddr{0x02, 0x42, 10, 212, 0, 2}
	macT  = net.HardwareAddr{0x02, 0x42, 10, 212, 0, 9}
	macU  = net.HardwareAddr{0x02, 0x42, 172, 30, 0, 50}

	ipD2  = netip.MustParseAddr("10.210.0.3")
	ipE   = netip.MustParseAddr("10.211.0.2")
	ipR4  = netip.MustParseAddr("10.211.0.64")
	ipF   = netip.MustParseAddr("10.212.0.2")
	ipT   = netip.MustParseAddr("10.212.0.9")
	ipU   = netip.MustParseAddr("172.30.0.50")
	hostX = netip.MustParseAddr("198.18.0.14")
)

const (
	ifD2 = 105
	ifE  = 106
	ifF  = 107
)

// The world as the test knows it, written apart from the maps' encoding.
type ovLocal struct {
	mac     net.HardwareAddr
	net     uint32
	ifindex int
}

type ovRemote struct {
	mac  net.HardwareAddr
	net  uint32
	host netip.Addr
}

type ovNet struct {
	vni     uint32 // 0: no overlay network
	icc     bool
	overlay bool
}

type overlayWorld struct {
	*fixture
	prog    *ebpf.Program
	locals  map[netip.Addr]ovLocal
	remotes map[netip.Addr]ovRemote
	nets    map[uint32]ovNet
	hosts   []netip.Addr
	// IPv6 (overlay6_test.go): networks 3, 4 and 5 are dual stack.
	locals6  map[netip.Addr]ovLocal6
	remotes6 map[netip.Addr]ovRemote
}

func newOverlayWorld(tb testing.TB) *overlayWorld {
	tb.Helper()
	f := newOverlayFixture(tb, true)
	w := &overlayWorld{
		fixture: f,
		locals: map[netip.Addr]ovLocal{
			ipA: {macA, 1, ifA}, ipB: {macB, 1, ifB}, ipC: {macC, 2, ifC},
			ipD: {macD, 3, ifD}, ipD2: {macD2, 3, ifD2}, ipE: {macE, 4, ifE}, ipF: {macF, 5, ifF},
		},
		remotes: map[netip.Addr]ovRemote{
			ipR: {macR, 3, hostR}, ipS: {macS, 4, hostS}, ipR4: {macR4, 4, hostR}, ipT: {macT, 5, hostS}, ipU: {macU, 1, hostR},
		},
		nets: map[uint32]ovNet{
			1: {icc: true}, 2: {icc: true},
			3: {4096, true, true}, 4: {4097, true, true}, 5: {4098, false, true},
		},
		hosts: []netip.Addr{hostR, hostS, hostX},
		locals6: map[netip.Addr]ovLocal6{
			ip6D: {ovLocal{macD, 3, ifD}, ipD}, ip6D2: {ovLocal{macD2, 3, ifD2}, ipD2},
			ip6E: {ovLocal{macE, 4, ifE}, ipE}, ip6F: {ovLocal{macF, 5, ifF}, ipF},
		},
		remotes6: map[netip.Addr]ovRemote{ip6R: {macR, 3, hostR}, ip6S: {macS, 4, hostS}, ip6R4: {macR4, 4, hostR}, ip6T: {macT, 5, hostS}},
	}
	if err := f.views.PutNetwork(maps.Network{ID: 5, Subnet: netip.MustParsePrefix("10.212.0.0/24"), Gateway: netip.MustParseAddr("10.212.0.1"),
		GatewayMAC: macGW, BridgeIfindex: 54, ICC: false, VNI: 4098, OverlayIfindex: ifVXLAN}); err != nil {
		tb.Fatal(err)
	}
	for ip, l := range w.locals {
		if l.ifindex == ifA || l.ifindex == ifB || l.ifindex == ifC || l.ifindex == ifD {
			continue // the fixtures' own
		}
		if err := f.views.PutEndpoint(maps.Endpoint{IP: ip, MAC: l.mac, NetID: l.net, Ifindex: l.ifindex, Overlay: true}); err != nil {
			tb.Fatal(err)
		}
	}
	var rs []maps.RemoteEndpoint
	for ip, r := range w.remotes {
		rs = append(rs, maps.RemoteEndpoint{IP: ip, MAC: r.mac, NetID: r.net, Host: r.host})
	}
	if _, _, err := f.views.SyncRemoteEndpoints([]uint32{1, 3, 4, 5}, rs); err != nil {
		tb.Fatal(err)
	}
	if err := f.views.SyncOverlayHosts(w.hosts); err != nil {
		tb.Fatal(err)
	}
	dualStack(tb, f, map[uint32]bool{3: true, 4: true, 5: false}, w.locals6, w.remotes6)
	w.prog = loadOverlayTestEntry(tb, f)
	return w
}

// expect is from_overlay's contract (docs/overlay.md, "Packet walk" step
// 4), read from the world: the drop reason, or the local endpoint the
// frame is delivered to.
func (w *overlayWorld) expect(key tunnelKey, in []byte) (reason string, dst netip.Addr) {
	if !key.ok {
		return "malformed", netip.Addr{}
	}
	switch binary.BigEndian.Uint16(in[12:]) {
	case 0x8100, 0x88a8:
		return "vlan", netip.Addr{}
	case 0x86dd:
		return w.expect6(key, in)
	case 0x0800:
	default:
		return "ethertype", netip.Addr{}
	}
	if !wellFormed(in) {
		return "malformed", netip.Addr{}
	}
	saddr, daddr := netip.AddrFrom4([4]byte(in[26:30])), netip.AddrFrom4([4]byte(in[30:34]))
	l, local := w.locals[daddr]
	src, ok := w.remotes[saddr]
	if !ok {
		// A peer host speaking for itself (its stack, from_host there),
		// to an endpoint here, on that endpoint's network's VNI; --icc is
		// between containers.
		if saddr != key.outer || !slices.Contains(w.hosts, key.outer) || !local {
			return "overlay_spoofed", netip.Addr{}
		}
		if n := w.nets[l.net]; !n.overlay || n.vni != key.vni {
			return "overlay_vni", netip.Addr{}
		}
		return "", daddr
	}
	if src.host != key.outer || !bytes.Equal(src.mac, in[6:12]) {
		return "overlay_spoofed", netip.Addr{}
	}
	n := w.nets[src.net]
	if !n.overlay || n.vni != key.vni {
		return "overlay_vni", netip.Addr{}
	}
	switch {
	case !local:
		return "overlay_no_endpoint", netip.Addr{}
	case l.net != src.net:
		return "network_isolation", netip.Addr{}
	case !n.icc:
		return "icc_disabled", netip.Addr{}
	}
	return "", daddr
}

// ovCounters is every counter from_overlay may move.
type ovCounters struct {
	drops    map[string]maps.Counter
	verdicts map[maps.VerdictKey]maps.Counter
	rx, tx   map[int]maps.Counter // per local endpoint's ifindex
	peers    map[netip.Addr]maps.OverlayHostStats
}

func (w *overlayWorld) counters(t *testing.T) ovCounters {
	t.Helper()
	c := ovCounters{rx: map[int]maps.Counter{}, tx: map[int]maps.Counter{}, peers: map[netip.Addr]maps.OverlayHostStats{}}
	var err error
	if c.drops, err = w.views.Drops(); err != nil {
		t.Fatal(err)
	}
	if c.verdicts, err = w.views.Verdicts(); err != nil {
		t.Fatal(err)
	}
	for _, l := range w.locals {
		tx, rx, err := w.views.EndpointCounters(l.ifindex)
		if err != nil {
			t.Fatal(err)
		}
		c.tx[l.ifindex], c.rx[l.ifindex] = tx, rx
	}
	ps, err := w.views.OverlayHosts()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		c.peers[p.Host] = p
	}
	return c
}

func cloneMap[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func plus(c maps.Counter, n int) maps.Counter {
	return maps.Counter{Packets: c.Packets + 1, Bytes: c.Bytes + uint64(n)}
}

// checkCounters asserts that from before to after exactly the counters of
// one frame of n bytes moved: dropped for reason, or (reason "") delivered
// to the endpoint on ifindex from peer host outer.
func (w *overlayWorld) checkCounters(t *testing.T, before, after ovCounters, reason string, ifindex int, outer netip.Addr, n int, in []byte) {
	t.Helper()
	want := ovCounters{drops: cloneMap(before.drops), verdicts: cloneMap(before.verdicts), rx: cloneMap(before.rx), tx: cloneMap(before.tx), peers: cloneMap(before.peers)}
	if reason != "" {
		want.drops[reason] = plus(want.drops[reason], n)
		k := maps.VerdictKey{Direction: loader.DirFromOverlay, Verdict: loader.VerdictDrop}
		want.verdicts[k] = plus(want.verdicts[k], n)
	} else {
		k := maps.VerdictKey{Direction: loader.DirFromOverlay, Verdict: loader.VerdictForward}
		want.verdicts[k] = plus(want.verdicts[k], n)
		want.rx[ifindex] = plus(want.rx[ifindex], n)
		p := want.peers[outer]
		p.RxPackets++
		p.RxBytes += uint64(n)
		want.peers[outer] = p
	}
	for k, v := range after.drops {
		if v != want.drops[k] {
			t.Fatalf("drops[%s] %+v, want %+v (expected: drop %q)\n%x", k, v, want.drops[k], reason, in)
		}
	}
	for k, v := range after.verdicts {
		if v != want.verdicts[k] {
			t.Fatalf("verdict counter %+v = %+v, want %+v (expected: drop %q)\n%x", k, v, want.verdicts[k], reason, in)
		}
	}
	for k, v := range after.rx {
		if v != want.rx[k] || after.tx[k] != want.tx[k] {
			t.Fatalf("endpoint %d rx %+v tx %+v, want rx %+v tx %+v (expected: drop %q, delivery to %d)\n%x", k, v, after.tx[k], want.rx[k], want.tx[k], reason, ifindex, in)
		}
	}
	for h, p := range after.peers {
		if p != want.peers[h] {
			t.Fatalf("peer host %v counters %+v, want %+v (expected: drop %q)\n%x", h, p, want.peers[h], reason, in)
		}
	}
}

// ovSeed is one seed input: a tunnel key and a frame.
type ovSeed struct {
	key   tunnelKey
	frame []byte
}

// ovSeeds are well-formed frames across the world: deliveries (to the
// endpoint's MAC, to the gateway's, any protocol), and each way a frame
// from the overlay is refused.
func ovSeeds(tb testing.TB) []ovSeed {
	udp := func(srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr) []byte {
		return pkt{srcMAC: srcMAC, dstMAC: dstMAC, src: src, dst: dst, proto: layers.IPProtocolUDP, sport: 40000, dport: 53}.build(tb)
	}
	r, s := keyFrom(4096, hostR), keyFrom(4097, hostS)
	var out []ovSeed
	add := func(k tunnelKey, f []byte) { out = append(out, ovSeed{k, f}) }
	add(r, udp(macR, macD, ipR, ipD))
	add(r, udp(macR, macGW, ipR, ipD))
	add(r, pkt{srcMAC: macR, dstMAC: macD2, src: ipR, dst: ipD2, proto: layers.IPProtocolTCP, sport: 40000, dport: 443, tcpFlags: "S"}.build(tb))
	add(r, pkt{srcMAC: macR, dstMAC: macD, src: ipR, dst: ipD, proto: layers.IPProtocolTCP, sport: 40001, dport: 80, tcpFlags: "A", payload: []byte("GET / HTTP/1.1\r\n\r\n")}.build(tb))
	add(r, pkt{srcMAC: macR, dstMAC: macD, src: ipR, dst: ipD, proto: layers.IPProtocolICMPv4, sport: 77}.build(tb))
	add(r, pkt{srcMAC: macR, dstMAC: macD, src: ipR, dst: ipD, proto: layers.IPProtocolUDP, sport: 40000, dport: 53, flags: layers.IPv4MoreFragments}.build(tb))
	add(s, udp(macS, macE, ipS, ipE))
	add(keyFrom(4097, hostR), udp(macR4, macGW, ipR4, ipE))
	add(keyFrom(4098, hostS), udp(macT, macF, ipT, ipF))    // icc disabled
	add(keyFrom(4096, hostS), udp(macR, macD, ipR, ipD))    // outer source is not R's host
	add(keyFrom(4096, hostX), udp(macR, macD, ipR, ipD))    // a peer with no endpoints
	add(r, udp(macS, macD, ipR, ipD))                       // R's address, S's MAC
	add(keyFrom(4097, hostR), udp(macR, macD, ipR, ipD))    // R on another VNI
	add(keyFrom(4096, hostR), udp(macR4, macGW, ipR4, ipE)) // R4 on R's VNI
	add(keyFrom(0, hostR), udp(macU, macA, ipU, ipA))       // a remote endpoint of a network without VNI
	add(r, udp(macR, macGW, ipR, netip.MustParseAddr("10.210.0.77")))
	add(r, udp(macR, macGW, ipR, ipA))
	add(s, udp(macS, macGW, ipS, ipD))
	add(tunnelKey{vni: 4096, outer: hostR}, udp(macR, macD, ipR, ipD)) // no tunnel metadata
	add(r, arpFrame(tb, macR, layers.ARPRequest, macR, ipR, ipD))
	// Peer hosts speaking for themselves.
	add(r, udp(macGW, macD, hostR, ipD))                                                                              // delivered
	add(keyFrom(4098, hostS), udp(macGW, macF, hostS, ipF))                                                           // delivered: --icc is between containers
	add(keyFrom(4096, hostX), udp(macGW, macD, hostX, ipD))                                                           // a peer with no endpoints: delivered
	add(keyFrom(4097, hostR), udp(macGW, macD, hostR, ipD))                                                           // on another network's VNI
	add(r, udp(macGW, macD, hostS, ipD))                                                                              // for another host
	add(keyFrom(4096, netip.MustParseAddr("198.18.0.99")), udp(macGW, macD, netip.MustParseAddr("198.18.0.99"), ipD)) // no peer
	add(r, udp(macGW, macGW, hostR, netip.MustParseAddr("10.210.0.77")))                                              // to no endpoint
	return append(out, ovSeeds6()...)
}

// FuzzFromOverlay: whatever the frame and the tunnel key (VNI, outer
// source, present or not),
//
//  1. without tunnel metadata, or with a malformed inner frame (wellFormed,
//     parse.h's contract written apart; for IPv6 parse6, ipv6.h's), it is
//     dropped as malformed; VLAN, IPv6 extension headers not walked and
//     other ethertypes by their reasons;
//  2. anti-spoofing across hosts (IPv4, and IPv6 by remote_endpoints6:
//     expect6): an inner source that is no remote
//     endpoint, or whose record names another host than the outer source or
//     another MAC than the inner source's, is dropped (overlay_spoofed); a
//     VNI other than that endpoint's network's, too (overlay_vni);
//  3. isolation: a frame to an address that is no local endpoint of the
//     sender's overlay network is never delivered (overlay_no_endpoint,
//     network_isolation), nor one on a network with --icc=false;
//  4. a delivered frame goes to exactly the right local endpoint (its rx
//     counter, bumped with the ifindex bpf_redirect_peer is given, and no
//     other endpoint's moves) with every byte unchanged but the destination
//     MAC, which becomes the endpoint's;
//  5. counters: one verdict per frame, one drop reason per dropped frame,
//     and a peer host's rx counts only frames delivered from it (overlay.h:
//     "rx decapsulated from it and delivered"); tx never moves here.
//
// The expected outcome is computed from the world (expect), so every
// property is checked as an equality: exactly this drop, or exactly this
// delivery.
func FuzzFromOverlay(f *testing.F) {
	w := newOverlayWorld(f)
	for _, s := range ovSeeds(f) {
		f.Add(s.key.vni, binary.BigEndian.Uint32(s.key.outer.AsSlice()), s.key.ok, s.frame)
	}
	f.Fuzz(func(t *testing.T, vni, outer uint32, hasKey bool, in []byte) {
		in = append([]byte{}, in...)
		var o [4]byte
		binary.BigEndian.PutUint32(o[:], outer)
		key := tunnelKey{vni: vni, outer: netip.AddrFrom4(o), ok: hasKey}
		before := w.counters(t)
		ret, out, ok := runOverlay(t, w.prog, key, in)
		if !ok {
			t.Skip("frame refused by BPF_PROG_TEST_RUN")
		}
		reason, dst := w.expect(key, in)
		after := w.counters(t)
		if reason != "" {
			if ret != tcActShot {
				t.Fatalf("verdict %d, want TC_ACT_SHOT (%s); output\n%x\ninput\n%x", ret, reason, out, in)
			}
			w.checkCounters(t, before, after, reason, 0, key.outer, len(in), in)
			return
		}
		l := w.locals[dst]
		if ret != tcActRedirect {
			d, _ := w.views.Drops()
			t.Fatalf("verdict %d, want delivery to %v (ifindex %d); drops %v\n%x", ret, dst, l.ifindex, d, in)
		}
		want := append(append([]byte{}, l.mac...), in[6:]...)
		if !bytes.Equal(out, want) {
			t.Fatalf("delivered frame changed beyond the destination MAC:\n in %x\nout %x\nwant %x", in, out, want)
		}
		w.checkCounters(t, before, after, "", l.ifindex, key.outer, len(in), in)
	})
}

// A delivery, byte for byte: only the destination MAC changes (a frame
// sent to the gateway MAC gets the endpoint's), and the frame is counted to
// the endpoint and to the peer host it came from.
func TestFromOverlayDelivers(t *testing.T) {
	w := newOverlayWorld(t)
	for _, dstMAC := range []net.HardwareAddr{macD, macGW} {
		in := udpFrame(t, macR, dstMAC, ipR, ipD)
		ret, out, _ := runOverlay(t, w.prog, keyFrom(4096, hostR), in)
		if ret != tcActRedirect {
			t.Fatalf("to %v: verdict %d, want TC_ACT_REDIRECT", dstMAC, ret)
		}
		if want := udpFrame(t, macR, macD, ipR, ipD); !bytes.Equal(out, want) {
			t.Fatalf("to %v: frame\n got %x\nwant %x", dstMAC, out, want)
		}
	}
	n := uint64(2 * len(udpFrame(t, macR, macD, ipR, ipD)))
	if _, rx, err := w.views.EndpointCounters(ifD); err != nil || rx.Packets != 2 || rx.Bytes != n {
		t.Errorf("D rx %+v (%v), want 2 packets, %d bytes", rx, err, n)
	}
	if p := w.peer(t, hostR); p.RxPackets != 2 || p.RxBytes != n || p.TxPackets != 0 {
		t.Errorf("peer %v counters %+v, want 2 packets (%d bytes) received", hostR, p, n)
	}
}

// Each refusal, by its reason, and never counted as traffic from the peer
// host. The last three were (the frame's sender had checked out): the
// first finding of FuzzFromOverlay, kept in
// testdata/fuzz/FuzzFromOverlay/63773c7ff616749a.
func TestFromOverlayDrops(t *testing.T) {
	for _, tc := range []struct {
		name   string
		key    tunnelKey
		frame  func(t *testing.T) []byte
		reason string
	}{
		{"no tunnel metadata", tunnelKey{}, func(t *testing.T) []byte { return udpFrame(t, macR, macD, ipR, ipD) }, "malformed"},
		{"outer source is not the endpoint's host", keyFrom(4096, hostS), func(t *testing.T) []byte { return udpFrame(t, macR, macD, ipR, ipD) }, "overlay_spoofed"},
		{"inner source MAC is not the endpoint's", keyFrom(4096, hostR), func(t *testing.T) []byte { return udpFrame(t, macS, macD, ipR, ipD) }, "overlay_spoofed"},
		{"inner source is no remote endpoint", keyFrom(4096, hostR), func(t *testing.T) []byte {
			return udpFrame(t, macR, macD, netip.MustParseAddr("10.210.0.65"), ipD)
		}, "overlay_spoofed"},
		{"VNI of another network of the same host", keyFrom(4097, hostR), func(t *testing.T) []byte { return udpFrame(t, macR, macD, ipR, ipD) }, "overlay_vni"},
		{"no local endpoint", keyFrom(4096, hostR), func(t *testing.T) []byte {
			return udpFrame(t, macR, macGW, ipR, netip.MustParseAddr("10.210.0.77"))
		}, "overlay_no_endpoint"},
		{"local endpoint of another network", keyFrom(4096, hostR), func(t *testing.T) []byte { return udpFrame(t, macR, macGW, ipR, ipA) }, "network_isolation"},
		{"icc disabled", keyFrom(4098, hostS), func(t *testing.T) []byte { return udpFrame(t, macT, macF, ipT, ipF) }, "icc_disabled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newOverlayWorld(t)
			if ret, _, _ := runOverlay(t, w.prog, tc.key, tc.frame(t)); ret != tcActShot {
				t.Fatalf("verdict %d, want TC_ACT_SHOT", ret)
			}
			if got := w.drops(t, tc.reason); got != 1 {
				t.Fatalf("drops[%s] = %d, want 1", tc.reason, got)
			}
			for _, h := range w.hosts {
				if p := w.peer(t, h); p.RxPackets != 0 || p.RxBytes != 0 {
					t.Fatalf("dropped frame counted as received from %v: %+v", h, p)
				}
			}
			for _, l := range w.locals {
				if _, rx, err := w.views.EndpointCounters(l.ifindex); err != nil || rx.Packets != 0 {
					t.Fatalf("endpoint %d rx %+v (%v) after a drop", l.ifindex, rx, err)
				}
			}
		})
	}
}
