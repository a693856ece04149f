package loader_test

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket/layers"

	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

// IPv6 on overlay networks (bpf/lib/overlay6.h): the overlay fixture's
// networks 3 and 4 (and the overlay world's 5) dual stack, each endpoint's
// IPv6 address the twin of its IPv4 one, as the cluster hands them out.
var (
	ip6D  = netip.MustParseAddr("fd00:210::2")
	ip6D2 = netip.MustParseAddr("fd00:210::3")
	ip6R  = netip.MustParseAddr("fd00:210::40")
	ip6E  = netip.MustParseAddr("fd00:211::2")
	ip6S  = netip.MustParseAddr("fd00:211::9")
	ip6R4 = netip.MustParseAddr("fd00:211::40")
	ip6F  = netip.MustParseAddr("fd00:212::2")
	ip6T  = netip.MustParseAddr("fd00:212::9")
	llD   = maps.LinkLocal(macD)
	llR   = maps.LinkLocal(macR)
)

// overlayNet6 are the dual-stack overlay networks: id -> subnet, gateway.
var overlayNet6 = map[uint32][2]string{
	3: {"10.210.0.0/24", "fd00:210::/64"},
	4: {"10.211.0.0/24", "fd00:211::/64"},
	5: {"10.212.0.0/24", "fd00:212::/64"},
}

// dualStack makes the fixture's overlay networks (those of nets that
// exist) dual stack and gives the local endpoints their IPv6 addresses
// and the remote ones their remote_endpoints6 entries.
func dualStack(tb testing.TB, f *fixture, icc map[uint32]bool, locals map[netip.Addr]ovLocal6, remotes map[netip.Addr]ovRemote) {
	tb.Helper()
	for id, s := range overlayNet6 {
		if _, ok := icc[id]; !ok {
			continue
		}
		p4, p6 := netip.MustParsePrefix(s[0]), netip.MustParsePrefix(s[1])
		if err := f.views.PutNetwork(maps.Network{ID: id, Subnet: p4, Gateway: p4.Addr().Next(), GatewayMAC: macGW, BridgeIfindex: 49 + int(id),
			ICC: icc[id], VNI: 4093 + id, OverlayIfindex: ifVXLAN, Subnet6: p6, Gateway6: p6.Addr().Next()}); err != nil {
			tb.Fatal(err)
		}
	}
	for ip6, l := range locals {
		if err := f.views.DeleteEndpoint(l.ifindex, l.ip4); err != nil {
			tb.Fatal(err)
		}
		if err := f.views.PutEndpoint(maps.Endpoint{IP: l.ip4, MAC: l.mac, NetID: l.net, Ifindex: l.ifindex, Overlay: true, IP6: ip6}); err != nil {
			tb.Fatal(err)
		}
	}
	var rs []maps.RemoteEndpoint
	rall, err := f.views.RemoteEndpoints()
	if err != nil {
		tb.Fatal(err)
	}
	rs = append(rs, rall...)
	for ip, r := range remotes {
		rs = append(rs, maps.RemoteEndpoint{IP: ip, MAC: r.mac, NetID: r.net, Host: r.host})
	}
	var scope []uint32
	for id := range icc {
		scope = append(scope, id)
	}
	for _, r := range rall {
		if _, ok := icc[r.NetID]; !ok {
			scope = append(scope, r.NetID)
		}
	}
	if _, _, err := f.views.SyncRemoteEndpoints(scope, rs); err != nil {
		tb.Fatal(err)
	}
}

// ovLocal6 is a local endpoint by its IPv6 address.
type ovLocal6 struct {
	ovLocal
	ip4 netip.Addr
}

// newOverlayFixture6 is newOverlayFixture with networks 3 and 4 dual stack:
// local D (fd00:210::2), remote R (fd00:210::40 on host R) and S
// (fd00:211::9 on host S).
func newOverlayFixture6(t testing.TB, icc bool) *fixture {
	t.Helper()
	f := newOverlayFixture(t, icc)
	dualStack(t, f, map[uint32]bool{3: icc, 4: true},
		map[netip.Addr]ovLocal6{ip6D: {ovLocal{macD, 3, ifD}, ipD}},
		map[netip.Addr]ovRemote{ip6R: {macR, 3, hostR}, ip6S: {macS, 4, hostS}})
	return f
}

// To a remote endpoint over IPv6: redirected to the VXLAN device (counted
// against the endpoint's host, the only redirect target that counts tx to
// a peer), the inner frame addressed to the endpoint's MAC and nothing
// else changed: hop limit and checksums as sent (one link).
func TestOverlay6EncapsulatesToRemoteEndpoint(t *testing.T) {
	f := newOverlayFixture6(t, true)
	var n uint64
	sent := 0
	for _, tc := range []struct {
		name  string
		proto byte
		l4    []byte
	}{
		{"TCP", 6, tcpSyn6(40000, 80)},
		{"UDP", 17, udp6(40000, 53, "hello")},
		{"ICMPv6 echo", 58, echo6(7, 1)},
	} {
		for _, dmac := range []net.HardwareAddr{macR, macGW} {
			t.Run(tc.name+" to "+dmac.String(), func(t *testing.T) {
				in := frame6(macD, dmac, ip6D, ip6R, 64, nil, tc.proto, tc.l4)
				ret, out := f.run(t, ifD, in)
				if ret != tcActRedirect {
					d, _ := f.views.Drops()
					t.Fatalf("verdict = %d, want TC_ACT_REDIRECT (drops %v)", ret, d)
				}
				if want := withDstMAC(in, macR); !bytes.Equal(out, want) {
					t.Fatalf("frame:\n got %x\nwant %x", out, want)
				}
				if !l4OK6(out) {
					t.Fatalf("checksum broken: %x", out)
				}
				n += uint64(len(in))
				sent++
				if p := f.peer(t, hostR); p.TxPackets != uint64(sent) || p.TxBytes != n || p.RxPackets != 0 {
					t.Fatalf("peer %v counters %+v, want %d packets (%d bytes) sent", hostR, p, sent, n)
				}
				if p := f.peer(t, hostS); p.TxPackets != 0 {
					t.Fatalf("peer %v counted %+v, want nothing", hostS, p)
				}
				if got := f.verdict(t, loader.VerdictForward); got != uint64(sent) {
					t.Fatalf("forward verdicts = %d, want %d", got, sent)
				}
			})
		}
	}
}

// expectedNAFor is the advertisement answering to's solicitation (from
// src, MAC toMAC) for target at mac: built by gopacket.
func expectedNAFor(t *testing.T, toMAC net.HardwareAddr, src, target netip.Addr, mac net.HardwareAddr) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: mac, DstMAC: toMAC, EthernetType: layers.EthernetTypeIPv6}
	ip := &layers.IPv6{Version: 6, HopLimit: 255, NextHeader: layers.IPProtocolICMPv6, SrcIP: target.AsSlice(), DstIP: src.AsSlice()}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborAdvertisement, 0)}
	if err := icmp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	na := &layers.ICMPv6NeighborAdvertisement{Flags: 0x60, TargetAddress: target.AsSlice(),
		Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptTargetAddress, Data: mac}}}
	return serialize(t, eth, ip, icmp, na)
}

// A solicitation for a remote endpoint of the sender's network is answered
// in place, back into the container (from its global or link-local
// address, to the solicited-node address or unicast), with the remote
// endpoint's MAC, never the R flag; nothing goes to the peer. One for
// anything else, or with --icc=false, goes to the bridge unchanged.
func TestOverlay6AnswersNeighbourSolicitation(t *testing.T) {
	f := newOverlayFixture6(t, true)
	for _, src := range []netip.Addr{ip6D, llD} {
		sn, smac := solicited(ip6R)
		for _, dst := range []struct {
			ip  netip.Addr
			mac net.HardwareAddr
		}{{sn, smac}, {ip6R, macR}} {
			in := frame6(macD, dst.mac, src, dst.ip, 255, nil, 58, ns6(ip6R, lla6(1, macD)))
			ret, out := f.run(t, ifD, in)
			if ret != tcActRedirect {
				t.Fatalf("NS from %v to %v: verdict %d, want TC_ACT_REDIRECT", src, dst.ip, ret)
			}
			if want := expectedNAFor(t, macD, src, ip6R, macR); !bytes.Equal(out, want) {
				t.Fatalf("NS from %v to %v: answer\n got %x\nwant %x", src, dst.ip, out, want)
			}
			if !l4OK6(out) {
				t.Fatalf("NA checksum broken: %x", out)
			}
		}
	}
	if p := f.peer(t, hostR); p.TxPackets != 0 {
		t.Fatalf("NS counted as sent to the peer: %+v", p)
	}
	for _, target := range []netip.Addr{ip6S, netip.MustParseAddr("fd00:210::77"), llR} {
		sn, smac := solicited(target)
		in := frame6(macD, smac, ip6D, sn, 255, nil, 58, ns6(target, lla6(1, macD)))
		if ret, out := f.run(t, ifD, in); ret != tcActOK || !bytes.Equal(out, in) {
			t.Errorf("NS for %v: verdict %d, changed %v; want it passed unchanged", target, ret, !bytes.Equal(out, in))
		}
	}
	off := newOverlayFixture6(t, false)
	sn, smac := solicited(ip6R)
	in := frame6(macD, smac, ip6D, sn, 255, nil, 58, ns6(ip6R, lla6(1, macD)))
	if ret, out := off.run(t, ifD, in); ret != tcActOK || !bytes.Equal(out, in) {
		t.Errorf("NS for a remote endpoint with --icc=false: verdict %d, changed %v; want it passed unchanged", ret, !bytes.Equal(out, in))
	}
}

// What never crosses to a remote endpoint over IPv6, by its reason; a
// link-local destination stays on the host (to the bridge).
func TestOverlay6Drops(t *testing.T) {
	for _, tc := range []struct {
		name   string
		icc    bool
		frame  []byte
		reason string
	}{
		{"icc disabled across hosts", false, frame6(macD, macR, ip6D, ip6R, 64, nil, 17, udp6(1, 2, "x")), "icc_disabled"},
		{"remote endpoint of another overlay network", true, frame6(macD, macGW, ip6D, ip6S, 64, nil, 17, udp6(1, 2, "x")), "network_isolation"},
		{"spoofed source to a remote endpoint", true, frame6(macD, macR, netip.MustParseAddr("fd00:210::9"), ip6R, 64, nil, 17, udp6(1, 2, "x")), "spoofed_ip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newOverlayFixture6(t, tc.icc)
			if ret, _ := f.run(t, ifD, tc.frame); ret != tcActShot {
				t.Fatalf("verdict = %d, want TC_ACT_SHOT", ret)
			}
			if got := f.drops(t, tc.reason); got != 1 {
				t.Fatalf("drops[%s] = %d, want 1", tc.reason, got)
			}
			if p := f.peer(t, hostR); p.TxPackets != 0 {
				t.Fatalf("dropped packet counted to peer: %+v", p)
			}
		})
	}
	f := newOverlayFixture6(t, true)
	in := frame6(macD, macR, llD, llR, 64, nil, 17, udp6(1, 2, "x"))
	if ret, out := f.run(t, ifD, in); ret != tcActOK || !bytes.Equal(out, in) {
		t.Errorf("to a remote endpoint's link-local address: verdict %d, changed %v; want it to the bridge unchanged", ret, !bytes.Equal(out, in))
	}
	if p := f.peer(t, hostR); p.TxPackets != 0 {
		t.Errorf("link-local packet tunnelled: %+v", p)
	}
}

// from_overlay with an IPv6 inner frame: delivered byte for byte but the
// destination MAC, counted to the endpoint and the peer.
func TestFromOverlay6Delivers(t *testing.T) {
	w := newOverlayWorld(t)
	sent := 0
	for _, tc := range []struct {
		proto byte
		l4    []byte
	}{{6, tcpSyn6(40000, 80)}, {17, udp6(40000, 53, "hello")}, {58, echo6(9, 1)}} {
		for _, dmac := range []net.HardwareAddr{macD, macGW} {
			in := frame6(macR, dmac, ip6R, ip6D, 64, nil, tc.proto, tc.l4)
			ret, out, _ := runOverlay(t, w.prog, keyFrom(4096, hostR), in)
			if ret != tcActRedirect {
				d, _ := w.views.Drops()
				t.Fatalf("proto %d to %v: verdict %d, want TC_ACT_REDIRECT (drops %v)", tc.proto, dmac, ret, d)
			}
			if want := withDstMAC(in, macD); !bytes.Equal(out, want) || !l4OK6(out) {
				t.Fatalf("proto %d to %v: frame\n got %x\nwant %x", tc.proto, dmac, out, want)
			}
			sent++
		}
	}
	if _, rx, err := w.views.EndpointCounters(ifD); err != nil || rx.Packets != uint64(sent) {
		t.Errorf("D rx %+v (%v), want %d packets", rx, err, sent)
	}
	if p := w.peer(t, hostR); p.RxPackets != uint64(sent) || p.TxPackets != 0 {
		t.Errorf("peer %v counters %+v, want %d packets received", hostR, p, sent)
	}
}

// Each refusal of an IPv6 inner frame, by its reason, never counted as
// traffic from the peer.
func TestFromOverlay6Drops(t *testing.T) {
	u := udp6(40000, 53, "x")
	sn, smac := solicited(ip6D)
	for _, tc := range []struct {
		name   string
		key    tunnelKey
		frame  []byte
		reason string
	}{
		{"outer source is not the endpoint's host", keyFrom(4096, hostS), frame6(macR, macD, ip6R, ip6D, 64, nil, 17, u), "overlay_spoofed"},
		{"inner source MAC is not the endpoint's", keyFrom(4096, hostR), frame6(macS, macD, ip6R, ip6D, 64, nil, 17, u), "overlay_spoofed"},
		{"inner source is no remote endpoint", keyFrom(4096, hostR), frame6(macR, macD, netip.MustParseAddr("fd00:210::41"), ip6D, 64, nil, 17, u), "overlay_spoofed"},
		{"link-local inner source", keyFrom(4096, hostR), frame6(macR, macD, llR, ip6D, 64, nil, 17, u), "overlay_spoofed"},
		{"the peer host's own address", keyFrom(4096, hostR), frame6(macR, macD, netip.AddrFrom16(hostR.As16()), ip6D, 64, nil, 17, u), "overlay_spoofed"},
		{"VNI of another network of the same host", keyFrom(4097, hostR), frame6(macR, macD, ip6R, ip6D, 64, nil, 17, u), "overlay_vni"},
		{"no local endpoint", keyFrom(4096, hostR), frame6(macR, macGW, ip6R, netip.MustParseAddr("fd00:210::77"), 64, nil, 17, u), "overlay_no_endpoint"},
		{"a local endpoint's link-local address", keyFrom(4096, hostR), frame6(macR, macD, ip6R, llD, 64, nil, 17, u), "overlay_no_endpoint"},
		{"neighbour solicitation", keyFrom(4096, hostR), frame6(macR, smac, ip6R, sn, 255, nil, 58, ns6(ip6D, lla6(1, macR))), "overlay_no_endpoint"},
		{"local endpoint of another network", keyFrom(4096, hostR), frame6(macR, macGW, ip6R, ip6E, 64, nil, 17, u), "network_isolation"},
		{"icc disabled", keyFrom(4098, hostS), frame6(macT, macF, ip6T, ip6F, 64, nil, 17, u), "icc_disabled"},
		{"malformed", keyFrom(4096, hostR), frame6(macR, macD, ip6R, ip6D, 64, nil, 17, u)[:60], "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newOverlayWorld(t)
			if ret, _, _ := runOverlay(t, w.prog, tc.key, tc.frame); ret != tcActShot {
				t.Fatalf("verdict %d, want TC_ACT_SHOT", ret)
			}
			if got := w.drops(t, tc.reason); got != 1 {
				d, _ := w.views.Drops()
				t.Fatalf("drops[%s] = %d, want 1 (%v)", tc.reason, got, d)
			}
			for _, h := range w.hosts {
				if p := w.peer(t, h); p.RxPackets != 0 {
					t.Fatalf("dropped frame counted as received from %v: %+v", h, p)
				}
			}
		})
	}
}

// expect6 is from_overlay's contract for an IPv6 inner frame (lib/overlay6.h),
// read from the world: parse6's verdict on the frame, then the remote
// endpoint the inner source names must be on the outer source's host with
// the inner source MAC, on a dual-stack network of the packet's VNI; the
// destination a local endpoint's global address on that network, with
// --icc. It returns the delivery's IPv4 key into w.locals (for counters).
func (w *overlayWorld) expect6(key tunnelKey, in []byte) (reason string, dst netip.Addr) {
	if len(in) < 14+40 {
		return "malformed", netip.Addr{}
	}
	if p := parse6(in); p.reason != "" {
		return p.reason, netip.Addr{}
	}
	saddr, daddr := addr6(in[22:38]), addr6(in[38:54])
	src, ok := w.remotes6[saddr]
	if !ok || src.host != key.outer || !bytes.Equal(src.mac, in[6:12]) {
		return "overlay_spoofed", netip.Addr{}
	}
	if n := w.nets[src.net]; !n.overlay || n.vni != key.vni {
		return "overlay_vni", netip.Addr{}
	}
	l, local := w.locals6[daddr]
	switch {
	case !local:
		return "overlay_no_endpoint", netip.Addr{}
	case l.net != src.net:
		return "network_isolation", netip.Addr{}
	case !w.nets[src.net].icc:
		return "icc_disabled", netip.Addr{}
	}
	return "", l.ip4
}

// ovSeeds6 are IPv6 seeds for FuzzFromOverlay: deliveries (TCP, UDP,
// ICMPv6, with a hop-by-hop header, a fragment) and each refusal.
func ovSeeds6() []ovSeed {
	r := keyFrom(4096, hostR)
	u := udp6(40000, 53, "hello")
	sn, smac := solicited(ip6D)
	return []ovSeed{
		{r, frame6(macR, macD, ip6R, ip6D, 64, nil, 17, u)},
		{r, frame6(macR, macGW, ip6R, ip6D2, 64, nil, 6, tcpSyn6(40000, 443))},
		{r, frame6(macR, macD, ip6R, ip6D, 64, nil, 58, echo6(3, 1))},
		{r, frame6(macR, macD, ip6R, ip6D, 64, []ext6{{0, padN6}}, 17, u)},
		{r, frame6(macR, macD, ip6R, ip6D, 64, []ext6{{44, []byte{0, 0x01, 0, 0, 0, 7}}}, 17, udp6(1, 2, "12345678"))},
		{r, frame6(macR, macD, ip6R, ip6D, 64, []ext6{{51, padN6}}, 17, u)},
		{keyFrom(4097, hostR), frame6(macR4, macGW, ip6R4, ip6E, 64, nil, 17, u)},
		{keyFrom(4098, hostS), frame6(macT, macF, ip6T, ip6F, 64, nil, 17, u)},
		{keyFrom(4096, hostS), frame6(macR, macD, ip6R, ip6D, 64, nil, 17, u)},
		{r, frame6(macS, macD, ip6R, ip6D, 64, nil, 17, u)},
		{keyFrom(4097, hostR), frame6(macR, macD, ip6R, ip6D, 64, nil, 17, u)},
		{r, frame6(macR, macD, llR, ip6D, 64, nil, 17, u)},
		{r, frame6(macR, macD, ip6R, llD, 64, nil, 17, u)},
		{r, frame6(macR, smac, ip6R, sn, 255, nil, 58, ns6(ip6D, lla6(1, macR)))},
		{r, frame6(macR, macGW, ip6R, ip6E, 64, nil, 17, u)},
		{r, frame6(macR, macGW, ip6R, netip.MustParseAddr("fd00:210::77"), 64, nil, 17, u)},
	}
}
