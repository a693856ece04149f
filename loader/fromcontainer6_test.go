package loader_test

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

// IPv6 between the containers of dual-stack networks (from_container6 in
// bpf/from_container.c): network 1 (A, B) and network 2 (C) of newFixture
// with IPv6 subnets; network 3 has none.
var (
	subnet6N1 = netip.MustParsePrefix("fd00:1::/64")
	subnet6N2 = netip.MustParsePrefix("fd00:2::/64")
	gw6N1     = netip.MustParseAddr("fd00:1::1")
	gw6N2     = netip.MustParseAddr("fd00:2::1")
	ip6A      = netip.MustParseAddr("fd00:1::2")
	ip6B      = netip.MustParseAddr("fd00:1::3")
	ip6C      = netip.MustParseAddr("fd00:2::2")
	llA       = maps.LinkLocal(macA)
	llB       = maps.LinkLocal(macB)
	llC       = maps.LinkLocal(macC)

	allNodes  = netip.MustParseAddr("ff02::1")
	mldv2Addr = netip.MustParseAddr("ff02::16")

	// The IPv6 side of the NAT tests' uplink (setupNetns6): the host's
	// address hostH6, its router rtR6, an outside server srvD6.
	hostH6 = netip.MustParseAddr("2001:db8:ff::2")
	rtR6   = netip.MustParseAddr("2001:db8:ff::1")
	srvD6  = netip.MustParseAddr("2001:db8::1")
)

type world6 struct {
	icc      bool
	internal bool
}

// newFixture6 is newFixture with networks 1 and 2 dual stack.
func newFixture6(t testing.TB, w world6) *fixture {
	t.Helper()
	dp, err := loader.Load(loader.Options{})
	if err != nil {
		t.Fatalf("load datapath: %v", err)
	}
	t.Cleanup(dp.Close)
	v := maps.New(&dp.Maps)
	for _, n := range []maps.Network{
		{ID: 1, Subnet: netip.MustParsePrefix("172.30.0.0/16"), Gateway: netip.MustParseAddr("172.30.0.1"), GatewayMAC: macGW,
			BridgeIfindex: 50, ICC: w.icc, Internal: w.internal, Subnet6: subnet6N1, Gateway6: gw6N1},
		{ID: 2, Subnet: netip.MustParsePrefix("172.31.0.0/16"), Gateway: netip.MustParseAddr("172.31.0.1"), GatewayMAC: macGW,
			BridgeIfindex: 51, ICC: true, Subnet6: subnet6N2, Gateway6: gw6N2},
	} {
		if err := v.PutNetwork(n); err != nil {
			t.Fatal(err)
		}
	}
	for _, ep := range []maps.Endpoint{
		{IP: ipA, MAC: macA, NetID: 1, Ifindex: ifA, IP6: ip6A},
		{IP: ipB, MAC: macB, NetID: 1, Ifindex: ifB, IP6: ip6B},
		{IP: ipC, MAC: macC, NetID: 2, Ifindex: ifC, IP6: ip6C},
	} {
		if err := v.PutEndpoint(ep); err != nil {
			t.Fatal(err)
		}
	}
	return &fixture{dp: dp, views: v, prog: dp.Program(loader.ProgFromContainer)}
}

// fixtures6 loads one datapath per world for a test's cases (a load takes
// half a second); the cases compare counters before and after.
func fixtures6(t *testing.T) func(world6) *fixture {
	all := map[world6]*fixture{}
	return func(w world6) *fixture {
		if all[w] == nil {
			all[w] = newFixture6(t, w)
		}
		return all[w]
	}
}

// An extension header: its type and its bytes after the next header and
// length bytes (a fragment header's reserved byte included in the length
// byte's place: 0).
type ext6 struct {
	typ  byte
	body []byte
}

// dstOpts is a destination options (or hop-by-hop) header of 8 bytes:
// one PadN option.
var padN6 = []byte{1, 4, 0, 0, 0, 0}

// frame6 builds an Ethernet frame holding IPv6 from src to dst, hop limit
// hop, with the extension headers exts and the upper-layer message l4 of
// protocol proto. The TCP, UDP or ICMPv6 checksum is computed here, apart
// from the program and gopacket.
func frame6(srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr, hop uint8, exts []ext6, proto byte, l4 []byte) []byte {
	l4 = append([]byte{}, l4...)
	if off, ok := map[byte]int{6: 16, 17: 6, 58: 2}[proto]; ok && len(l4) >= off+2 {
		l4[off], l4[off+1] = 0, 0
		binary.BigEndian.PutUint16(l4[off:], ^uint16(onesSum(pseudo6(src, dst, proto, len(l4)), l4)))
	}
	var chain []byte
	for i, e := range exts {
		next := proto
		if i+1 < len(exts) {
			next = exts[i+1].typ
		}
		h := []byte{next, 0}
		if e.typ != 44 {
			h[1] = byte((2+len(e.body))/8 - 1)
		}
		chain = append(chain, append(h, e.body...)...)
	}
	first := proto
	if len(exts) > 0 {
		first = exts[0].typ
	}
	f := make([]byte, 14+40)
	copy(f[0:], dstMAC)
	copy(f[6:], srcMAC)
	binary.BigEndian.PutUint16(f[12:], 0x86dd)
	f[14] = 0x60
	binary.BigEndian.PutUint16(f[14+4:], uint16(len(chain)+len(l4)))
	f[14+6] = first
	f[14+7] = hop
	s, d := src.As16(), dst.As16()
	copy(f[14+8:], s[:])
	copy(f[14+24:], d[:])
	return append(append(f, chain...), l4...)
}

func pseudo6(src, dst netip.Addr, proto byte, n int) uint32 {
	s, d := src.As16(), dst.As16()
	p := append(append([]byte{}, s[:]...), d[:]...)
	p = binary.BigEndian.AppendUint32(p, uint32(n))
	p = append(p, 0, 0, 0, proto)
	return onesSum(0, p)
}

// l4OK6 says whether the upper-layer checksum of an IPv6 frame without
// extension headers is right.
func l4OK6(f []byte) bool {
	src, dst := netip.AddrFrom16([16]byte(f[22:38])), netip.AddrFrom16([16]byte(f[38:54]))
	n := int(binary.BigEndian.Uint16(f[18:]))
	return onesSum(pseudo6(src, dst, f[20], n), f[54:54+n]) == 0xffff
}

func udp6(sport, dport uint16, payload string) []byte {
	u := binary.BigEndian.AppendUint16(nil, sport)
	u = binary.BigEndian.AppendUint16(u, dport)
	u = binary.BigEndian.AppendUint16(u, uint16(8+len(payload)))
	return append(append(u, 0, 0), payload...)
}

func tcpSyn6(sport, dport uint16) []byte {
	t := binary.BigEndian.AppendUint16(nil, sport)
	t = binary.BigEndian.AppendUint16(t, dport)
	t = append(t, 0, 0, 0, 1, 0, 0, 0, 0, 5<<4, 0x02, 0xfa, 0xf0, 0, 0, 0, 0)
	return t
}

func echo6(id, seq uint16) []byte {
	return append([]byte{128, 0, 0, 0, byte(id >> 8), byte(id), byte(seq >> 8), byte(seq)}, "ping"...)
}

// lla6 is a source (1) or target (2) link-layer address option.
func lla6(typ byte, mac net.HardwareAddr) []byte {
	return append([]byte{typ, 1}, mac...)
}

func ns6(target netip.Addr, opts ...[]byte) []byte {
	a := target.As16()
	m := append([]byte{135, 0, 0, 0, 0, 0, 0, 0}, a[:]...)
	for _, o := range opts {
		m = append(m, o...)
	}
	return m
}

func na6(flags byte, target netip.Addr, opts ...[]byte) []byte {
	m := ns6(target, opts...)
	m[0], m[4] = 136, flags
	return m
}

// solicited is a's solicited-node multicast address and its MAC.
func solicited(a netip.Addr) (netip.Addr, net.HardwareAddr) {
	b := a.As16()
	m := netip.MustParseAddr("ff02::1:ff00:0").As16()
	copy(m[13:], b[13:])
	return netip.AddrFrom16(m), net.HardwareAddr{0x33, 0x33, 0xff, b[13], b[14], b[15]}
}

// nsFrame is A's solicitation for target, the common shape: to its
// solicited-node address, A's MAC in a source link-layer address option.
func nsFrame(src, target netip.Addr) []byte {
	dst, dmac := solicited(target)
	return frame6(macA, dmac, src, dst, 255, nil, 58, ns6(target, lla6(1, macA)))
}

// mld2Report joins group, from src (link-local or ::), with the router
// alert hop-by-hop header MLD carries.
func mld2Report(src, group netip.Addr) []byte {
	g := group.As16()
	m := append([]byte{143, 0, 0, 0, 0, 0, 0, 1, 4, 0, 0, 0}, g[:]...)
	hbh := ext6{0, []byte{5, 2, 0, 0, 1, 0}} // router alert (MLD), PadN
	return frame6(macA, net.HardwareAddr{0x33, 0x33, 0, 0, 0, 0x16}, src, mldv2Addr, 1, []ext6{hbh}, 58, m)
}

// withDstMAC returns a copy of f addressed to mac.
func withDstMAC(f []byte, mac net.HardwareAddr) []byte {
	out := append([]byte{}, f...)
	copy(out, mac)
	return out
}

func TestFromContainer6ToPeer(t *testing.T) {
	f := newFixture6(t, world6{icc: true})
	for _, tc := range []struct {
		name     string
		src, dst netip.Addr
		proto    byte
		l4       []byte
	}{
		{"TCP global", ip6A, ip6B, 6, tcpSyn6(40000, 80)},
		{"UDP global", ip6A, ip6B, 17, udp6(40000, 53, "hello")},
		{"ICMPv6 echo global", ip6A, ip6B, 58, echo6(7, 1)},
		{"TCP link-local", llA, llB, 6, tcpSyn6(40000, 80)},
		{"UDP link-local", llA, llB, 17, udp6(40000, 53, "hello")},
		{"ICMPv6 echo link-local", llA, llB, 58, echo6(7, 1)},
		{"UDP global to B's link-local", ip6A, llB, 17, udp6(1, 2, "x")},
		{"unicast NS to B without an option", llA, llB, 58, ns6(llB)},
		{"unicast NS to B from A's global, not the answered shape (two options)", ip6A, ip6B, 58,
			ns6(ip6B, lla6(1, macA), []byte{14, 1, 1, 2, 3, 4, 5, 6})},
	} {
		for _, dmac := range []net.HardwareAddr{macB, macGW} {
			t.Run(tc.name+" to "+dmac.String(), func(t *testing.T) {
				fwd := f.verdict(t, loader.VerdictForward)
				_, rx0, _ := f.views.EndpointCounters(ifB)
				hop := uint8(64)
				if tc.proto == 58 && tc.l4[0] == 135 {
					hop = 255
				}
				in := frame6(macA, dmac, tc.src, tc.dst, hop, nil, tc.proto, tc.l4)
				ret, out := f.run(t, ifA, in)
				if ret != tcActRedirect {
					d, _ := f.views.Drops()
					t.Fatalf("verdict = %d, want TC_ACT_REDIRECT (drops %v)", ret, d)
				}
				if want := withDstMAC(in, macB); !bytes.Equal(out, want) {
					t.Fatalf("frame:\n got %x\nwant %x", out, want)
				}
				if !l4OK6(out) {
					t.Fatalf("checksum broken: %x", out)
				}
				if got := f.verdict(t, loader.VerdictForward) - fwd; got != 1 {
					t.Fatalf("forward counter +%d, want +1", got)
				}
				if _, rx, err := f.views.EndpointCounters(ifB); err != nil || rx.Packets-rx0.Packets != 1 {
					t.Fatalf("B rx = %+v (%v), want 1 packet more than %+v", rx, err, rx0)
				}
			})
		}
	}
}

// expectedNA is the advertisement the program must answer A's solicitation
// from src for target with: built by gopacket, not by frame6.
func expectedNA(t *testing.T, src, target netip.Addr, mac net.HardwareAddr, router bool) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: mac, DstMAC: macA, EthernetType: layers.EthernetTypeIPv6}
	ip := &layers.IPv6{Version: 6, HopLimit: 255, NextHeader: layers.IPProtocolICMPv6, SrcIP: target.AsSlice(), DstIP: src.AsSlice()}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborAdvertisement, 0)}
	if err := icmp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	flags := uint8(0x60) // solicited, override
	if router {
		flags |= 0x80
	}
	na := &layers.ICMPv6NeighborAdvertisement{Flags: flags, TargetAddress: target.AsSlice(),
		Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptTargetAddress, Data: mac}}}
	return serialize(t, eth, ip, icmp, na)
}

func TestFromContainer6AnswersNeighbourSolicitation(t *testing.T) {
	f := newFixture6(t, world6{icc: true})
	for _, tc := range []struct {
		name        string
		src, target netip.Addr
		mac         net.HardwareAddr
		router      bool
		unicast     bool
	}{
		{"B's global, from A's global", ip6A, ip6B, macB, false, false},
		{"B's global, from A's link-local", llA, ip6B, macB, false, false},
		{"B's link-local", llA, llB, macB, false, false},
		{"B's global, unicast (unreachability detection)", ip6A, ip6B, macB, false, true},
		{"the gateway", ip6A, gw6N1, macGW, true, false},
		{"the gateway, from A's link-local", llA, gw6N1, macGW, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fwd := f.verdict(t, loader.VerdictForward)
			in := nsFrame(tc.src, tc.target)
			if tc.unicast {
				in = frame6(macA, tc.mac, tc.src, tc.target, 255, nil, 58, ns6(tc.target, lla6(1, macA)))
			}
			if len(in) != 86 {
				t.Fatalf("solicitation of %d bytes, want the common 86", len(in))
			}
			ret, out := f.run(t, ifA, in)
			if ret != tcActRedirect {
				d, _ := f.views.Drops()
				t.Fatalf("verdict = %d, want TC_ACT_REDIRECT (back into A; drops %v)", ret, d)
			}
			want := expectedNA(t, tc.src, tc.target, tc.mac, tc.router)
			if !bytes.Equal(out, want) {
				t.Fatalf("advertisement:\n got %x\nwant %x", out, want)
			}
			// The checksum once more, by the tests' own sum.
			if !l4OK6(out) {
				t.Fatalf("ICMPv6 checksum wrong: %x", out)
			}
			p := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
			na, ok := p.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
			if !ok || !na.Solicited() || !na.Override() || na.Router() != tc.router || !net.IP(na.TargetAddress).Equal(tc.target.AsSlice()) {
				t.Fatalf("decoded as %v", p)
			}
			if got := f.verdict(t, loader.VerdictForward) - fwd; got != 1 {
				t.Fatalf("forward counter +%d, want +1", got)
			}
		})
	}
}

// Solicitations that are not answered go to the bridge (the host, or the
// peer itself, answers), as ARP requests do.
func TestFromContainer6Passes(t *testing.T) {
	fixture := fixtures6(t)
	solB, solMACB := solicited(ip6B)
	for _, tc := range []struct {
		name  string
		world world6
		frame []byte
	}{
		// --icc=false: the program does not answer for a peer; the bridge
		// floods the solicitation and B may answer it, as it answers
		// ARP, but every unicast that follows is dropped (icc_disabled).
		{"NS for B with --icc=false", world6{}, nsFrame(ip6A, ip6B)},
		{"NS for C (another network: nobody on this bridge answers)", world6{icc: true}, nsFrame(ip6A, ip6C)},
		{"NS for the bridge's link-local", world6{icc: true}, nsFrame(llA, netip.MustParseAddr("fe80::1"))},
		{"NS for B without a source option", world6{icc: true}, frame6(macA, solMACB, llA, solB, 255, nil, 58, ns6(ip6B))},
		{"NS for B from A's link-local with trailing bytes", world6{icc: true}, append(nsFrame(llA, ip6B), 0, 0)},
		{"NS for A itself (DAD)", world6{icc: true}, func() []byte {
			dst, dmac := solicited(ip6A)
			return frame6(macA, dmac, netip.IPv6Unspecified(), dst, 255, nil, 58, ns6(ip6A, []byte{14, 1, 1, 2, 3, 4, 5, 6}))
		}()},
		{"NA for A's own address", world6{icc: true}, frame6(macA, macGW, ip6A, gw6N1, 255, nil, 58, na6(0x60, ip6A, lla6(2, macA)))},
		{"unsolicited NA for A's link-local to all nodes", world6{icc: true}, frame6(macA, net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}, llA, allNodes, 255, nil, 58, na6(0x20, llA, lla6(2, macA)))},
		{"MLDv2 report behind a hop-by-hop header", world6{icc: true}, mld2Report(llA, netip.MustParseAddr("ff02::1:ff00:2"))},
		{"MLDv2 report from ::", world6{icc: true}, mld2Report(netip.IPv6Unspecified(), netip.MustParseAddr("ff02::1:ff00:2"))},
		{"router solicitation", world6{icc: true}, frame6(macA, net.HardwareAddr{0x33, 0x33, 0, 0, 0, 2}, llA, netip.MustParseAddr("ff02::2"), 255, nil, 58,
			append([]byte{133, 0, 0, 0, 0, 0, 0, 0}, lla6(1, macA)...))},
		{"UDP to all nodes", world6{icc: true}, frame6(macA, net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}, ip6A, allNodes, 1, nil, 17, udp6(1, 2, "x"))},
		{"the gateway", world6{icc: true}, frame6(macA, macGW, ip6A, gw6N1, 64, nil, 6, tcpSyn6(40000, 22))},
		{"the host's link-local", world6{icc: true}, frame6(macA, macGW, llA, netip.MustParseAddr("fe80::1"), 64, nil, 17, udp6(1, 2, "x"))},
		{"an unassigned address of the own subnet", world6{icc: true}, frame6(macA, macGW, ip6A, netip.MustParseAddr("fd00:1::99"), 64, nil, 17, udp6(1, 2, "x"))},
		{"another network's gateway", world6{icc: true}, frame6(macA, macGW, ip6A, gw6N2, 64, nil, 17, udp6(1, 2, "x"))},
		{"A itself", world6{icc: true}, frame6(macA, macA, ip6A, ip6A, 64, nil, 17, udp6(1, 2, "x"))},
		{"internal network: another network's gateway", world6{icc: true, internal: true}, frame6(macA, macGW, ip6A, gw6N2, 64, nil, 17, udp6(1, 2, "x"))},
		{"a later fragment to B's subnet", world6{icc: true}, frame6(macA, macGW, ip6A, netip.MustParseAddr("fd00:1::99"), 64,
			[]ext6{{44, []byte{0, 8, 0, 0, 0, 1}}}, 17, []byte("12345678"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := fixture(tc.world)
			pass := f.verdict(t, loader.VerdictPass)
			ret, out := f.run(t, ifA, tc.frame)
			if ret != tcActOK {
				d, _ := f.views.Drops()
				t.Fatalf("verdict = %d, want TC_ACT_OK (drops %v)", ret, d)
			}
			if !bytes.Equal(out, tc.frame) {
				t.Fatalf("passed frame changed:\n got %x\nwant %x", out, tc.frame)
			}
			if got := f.verdict(t, loader.VerdictPass) - pass; got != 1 {
				t.Fatalf("pass counter +%d, want +1", got)
			}
		})
	}
}

func TestFromContainer6Drops(t *testing.T) {
	fixture := fixtures6(t)
	solB, solMACB := solicited(ip6B)
	udp := func(src, dst netip.Addr) []byte {
		return frame6(macA, macGW, src, dst, 64, nil, 17, udp6(40000, 53, "hello"))
	}
	mcast := net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
	withBytes := func(f []byte, set func([]byte)) []byte {
		f = append([]byte{}, f...)
		set(f)
		return f
	}
	dopt := ext6{60, padN6}
	for _, tc := range []struct {
		name   string
		world  world6
		frame  []byte
		reason string
	}{
		// Anti-spoofing.
		{"B's global source", world6{icc: true}, udp(ip6B, ip6C), "spoofed_ip"},
		{"B's link-local source", world6{icc: true}, udp(llB, llA), "spoofed_ip"},
		{"another link-local source", world6{icc: true}, udp(netip.MustParseAddr("fe80::99"), llB), "spoofed_ip"},
		{"A's IPv4-mapped address", world6{icc: true}, udp(netip.AddrFrom16(ipA.As16()), ip6B), "spoofed_ip"},
		{":: source, UDP to multicast", world6{icc: true}, frame6(macA, mcast, netip.IPv6Unspecified(), allNodes, 1, nil, 17, udp6(1, 2, "x")), "spoofed_ip"},
		{":: source, echo to multicast", world6{icc: true}, frame6(macA, mcast, netip.IPv6Unspecified(), allNodes, 1, nil, 58, echo6(1, 1)), "spoofed_ip"},
		{":: source, DAD NS to unicast", world6{icc: true}, frame6(macA, macB, netip.IPv6Unspecified(), ip6B, 255, nil, 58, ns6(ip6B)), "spoofed_ip"},
		{":: source, NA", world6{icc: true}, frame6(macA, mcast, netip.IPv6Unspecified(), allNodes, 255, nil, 58, na6(0x20, ip6A)), "spoofed_ip"},
		// Neighbour discovery.
		{"NS with another MAC in its source option", world6{icc: true}, frame6(macA, solMACB, llA, solB, 255, nil, 58, ns6(ip6B, lla6(1, macC))), "spoofed_nd"},
		{"NS with a target option of another MAC", world6{icc: true}, frame6(macA, solMACB, llA, solB, 255, nil, 58, ns6(ip6B, lla6(1, macA), lla6(2, macB))), "spoofed_nd"},
		{"NS with a link-layer option of 16 bytes", world6{icc: true}, frame6(macA, solMACB, llA, solB, 255, nil, 58,
			ns6(ip6B, append(append([]byte{1, 2}, macA...), make([]byte, 8)...))), "spoofed_nd"},
		{"NS with more options than the walk reads", world6{icc: true}, frame6(macA, solMACB, llA, solB, 255, nil, 58,
			ns6(ip6B, lla6(1, macA), []byte{14, 1, 0, 0, 0, 0, 0, 0}, []byte{14, 1, 0, 0, 0, 0, 0, 0}, []byte{14, 1, 0, 0, 0, 0, 0, 0}, lla6(1, macC))), "spoofed_nd"},
		{"NA for B's target", world6{icc: true}, frame6(macA, mcast, llA, allNodes, 255, nil, 58, na6(0x20, ip6B, lla6(2, macA))), "spoofed_nd"},
		{"NA for the gateway", world6{icc: true}, frame6(macA, macGW, ip6A, gw6N1, 255, nil, 58, na6(0x60, gw6N1, lla6(2, macA))), "spoofed_nd"},
		{"NA for A with B's MAC", world6{icc: true}, frame6(macA, mcast, llA, allNodes, 255, nil, 58, na6(0x20, ip6A, lla6(2, macB))), "spoofed_nd"},
		{"router advertisement", world6{icc: true}, frame6(macA, mcast, llA, allNodes, 255, nil, 58,
			[]byte{134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0}), "router_nd"},
		{"redirect", world6{icc: true}, frame6(macA, macB, llA, llB, 255, nil, 58, func() []byte {
			a, b := gw6N1.As16(), ip6C.As16()
			return append(append([]byte{137, 0, 0, 0, 0, 0, 0, 0}, a[:]...), b[:]...)
		}()), "router_nd"},
		{"NS with hop limit 64", world6{icc: true}, frame6(macA, solMACB, llA, solB, 64, nil, 58, ns6(ip6B, lla6(1, macA))), "malformed"},
		{"NA with hop limit 254", world6{icc: true}, frame6(macA, mcast, llA, allNodes, 254, nil, 58, na6(0x20, ip6A)), "malformed"},
		{"NS of 20 bytes", world6{icc: true}, frame6(macA, solMACB, llA, solB, 255, nil, 58, ns6(ip6B)[:20]), "malformed"},
		{"NS with an option of length 0", world6{icc: true}, frame6(macA, solMACB, llA, solB, 255, nil, 58, ns6(ip6B, []byte{1, 0, 0, 0, 0, 0, 0, 0})), "malformed"},
		{"NS with code 1", world6{icc: true}, withBytes(nsFrame(llA, ip6B), func(f []byte) { f[55] = 1 }), "malformed"},
		{"DAD NS with a source option", world6{icc: true}, frame6(macA, solMACB, netip.IPv6Unspecified(), solB, 255, nil, 58, ns6(ip6B, lla6(1, macA))), "malformed"},
		{"fragmented NS", world6{icc: true}, frame6(macA, solMACB, llA, solB, 255, []ext6{{44, []byte{0, 1, 0, 0, 0, 1}}}, 58, ns6(ip6B, lla6(1, macA))), "malformed"},
		// Isolation and --icc.
		{"C's global", world6{icc: true}, udp(ip6A, ip6C), "network_isolation"},
		{"C's link-local", world6{icc: true}, udp(llA, llC), "network_isolation"},
		{"an unassigned address of network 2", world6{icc: true}, udp(ip6A, netip.MustParseAddr("fd00:2::99")), "network_isolation"},
		{"B with --icc=false", world6{}, udp(ip6A, ip6B), "icc_disabled"},
		{"B's link-local with --icc=false", world6{}, udp(llA, llB), "icc_disabled"},
		{"unicast NS to B with --icc=false", world6{}, frame6(macA, macB, ip6A, ip6B, 255, nil, 58, ns6(ip6B, lla6(1, macA))), "icc_disabled"},
		{"internal network to outside", world6{icc: true, internal: true}, udp(ip6A, srvD6), "internal_network"},
		// Extension headers.
		{"five destination options headers", world6{icc: true}, frame6(macA, macB, ip6A, ip6B, 64, []ext6{dopt, dopt, dopt, dopt, dopt}, 17, udp6(1, 2, "x")), "ipv6_ext_hdr"},
		{"an experimental extension header (253)", world6{icc: true}, frame6(macA, macB, ip6A, ip6B, 64, []ext6{{253, padN6}}, 17, udp6(1, 2, "x")), "ipv6_ext_hdr"},
		{"ESP", world6{icc: true}, frame6(macA, macB, ip6A, ip6B, 64, nil, 50, make([]byte, 24)), "ipv6_ext_hdr"},
		{"AH after a destination options header", world6{icc: true}, frame6(macA, macB, ip6A, ip6B, 64, []ext6{dopt, {51, make([]byte, 14)}}, 17, udp6(1, 2, "x")), "ipv6_ext_hdr"},
		{"hop-by-hop not first", world6{icc: true}, frame6(macA, macB, ip6A, ip6B, 64, []ext6{dopt, {0, padN6}}, 17, udp6(1, 2, "x")), "ipv6_ext_hdr"},
		{"two fragment headers", world6{icc: true}, frame6(macA, macB, ip6A, ip6B, 64, []ext6{{44, []byte{0, 0, 0, 0, 0, 1}}, {44, []byte{0, 0, 0, 0, 0, 1}}}, 17, udp6(1, 2, "x")), "ipv6_ext_hdr"},
		// Malformed.
		{"payload length beyond the frame", world6{icc: true}, withBytes(udp(ip6A, ip6B), func(f []byte) { f[19]++ }), "malformed"},
		{"payload length 0 (a jumbogram)", world6{icc: true}, withBytes(udp(ip6A, ip6B), func(f []byte) { f[18], f[19] = 0, 0 }), "malformed"},
		{"version 4", world6{icc: true}, withBytes(udp(ip6A, ip6B), func(f []byte) { f[14] = 0x40 }), "malformed"},
		{"extension header beyond the payload", world6{icc: true}, withBytes(frame6(macA, macB, ip6A, ip6B, 64, []ext6{dopt}, 59, nil),
			func(f []byte) { f[55] = 1 }), "malformed"},
		{"truncated extension header", world6{icc: true}, frame6(macA, macB, ip6A, ip6B, 64, nil, 60, []byte{59, 0, 1, 2}), "malformed"},
		{"ICMPv6 of 3 bytes", world6{icc: true}, frame6(macA, macB, ip6A, ip6B, 64, nil, 58, []byte{128, 0, 0}), "malformed"},
		{"a fragment not a multiple of 8", world6{icc: true}, frame6(macA, macB, ip6A, ip6B, 64, []ext6{{44, []byte{0, 1, 0, 0, 0, 1}}}, 17, udp6(1, 2, "x")), "malformed"},
		{"a fragment past 65535", world6{icc: true}, frame6(macA, macB, ip6A, ip6B, 64, []ext6{{44, []byte{0xff, 0xf8, 0, 0, 0, 1}}}, 17, []byte("12345678")), "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := fixture(tc.world)
			before := f.drops(t, tc.reason)
			ret, _ := f.run(t, ifA, tc.frame)
			if ret != tcActShot {
				t.Fatalf("verdict = %d, want TC_ACT_SHOT", ret)
			}
			if got := f.drops(t, tc.reason) - before; got != 1 {
				d, _ := f.views.Drops()
				t.Fatalf("drops[%s] +%d, want +1 (%v)", tc.reason, got, d)
			}
		})
	}
}

// A network without IPv6 takes none, whatever it is.
func TestFromContainer6NetworkWithoutIPv6(t *testing.T) {
	f := newFixture(t, true) // IPv4 only
	for _, in := range [][]byte{
		frame6(macA, macB, llA, llB, 64, nil, 17, udp6(1, 2, "x")),
		nsFrame(llA, llB),
		mld2Report(netip.IPv6Unspecified(), mldv2Addr),
		withDstMAC(frame6(macA, macB, llA, llB, 64, nil, 17, udp6(1, 2, "x"))[:60], macB), // malformed too
	} {
		if ret, _ := f.run(t, ifA, in); ret != tcActShot {
			t.Fatalf("verdict = %d, want TC_ACT_SHOT for %x", ret, in)
		}
	}
	if got := f.drops(t, "ipv6"); got != 4 {
		t.Fatalf("drops[ipv6] = %d, want 4", got)
	}
}

// setupNetns6 gives the NAT tests' namespace (setupNetns, the calling
// thread's) IPv6: forwarding on (off, forwarding is false), the host's
// address hostH6 on the uplink and a default route via rtR6.
func setupNetns6(t testing.TB, ifUp int, forwarding bool) {
	t.Helper()
	v := []byte("0")
	if forwarding {
		v = []byte("1")
	}
	if err := os.WriteFile("/proc/sys/net/ipv6/conf/all/forwarding", v, 0o644); err != nil {
		t.Fatal(err)
	}
	up, err := netlink.LinkByIndex(ifUp)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.AddrAdd(up, &netlink.Addr{IPNet: &net.IPNet{IP: hostH6.AsSlice(), Mask: net.CIDRMask(64, 128)},
		Flags: 0x02 /* IFA_F_NODAD */}); err != nil {
		t.Fatal(err)
	}
	// The kernel adds the address's local route from a work queue, even
	// without DAD: until then the FIB routes hostH6 out of the uplink.
	for deadline := time.Now().Add(5 * time.Second); ; {
		rs, err := netlink.RouteGet(hostH6.AsSlice())
		if err == nil && len(rs) > 0 && rs[0].Type == unix.RTN_LOCAL {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no local route for %s: %v %v", hostH6, rs, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := netlink.NeighAdd(&netlink.Neigh{LinkIndex: ifUp, Family: netlink.FAMILY_V6,
		State: netlink.NUD_PERMANENT, IP: rtR6.AsSlice(), HardwareAddr: macRt}); err != nil {
		t.Fatal(err)
	}
	if err := netlink.RouteAdd(&netlink.Route{LinkIndex: ifUp, Gw: rtR6.AsSlice()}); err != nil {
		t.Fatal(err)
	}
}

// addIPv6 makes the NAT tests' network 1 dual stack, A and B with it.
func addIPv6(t testing.TB, e *natEnv) {
	t.Helper()
	if err := e.views.PutNetwork(maps.Network{ID: 1, Subnet: netip.MustParsePrefix("172.30.0.0/16"), Gateway: gw1, GatewayMAC: macGW,
		BridgeIfindex: 50, ICC: true, Masquerade: true, Subnet6: subnet6N1, Gateway6: gw6N1}); err != nil {
		t.Fatal(err)
	}
	for _, ep := range []maps.Endpoint{
		{IP: ipA, MAC: macA, NetID: 1, Ifindex: e.ifA, IP6: ip6A},
		{IP: ipB, MAC: macB, NetID: 1, Ifindex: e.ifB, IP6: ip6B},
	} {
		if err := e.views.DeleteEndpoint(ep.Ifindex, ep.IP); err != nil {
			t.Fatal(err)
		}
		if err := e.views.PutEndpoint(ep); err != nil {
			t.Fatal(err)
		}
	}
}

// Beyond the container subnets IPv6 reaches the host, which the FIB says
// are its own addresses, and, masqueraded, what the FIB routes out of the
// uplink.
func TestFromContainer6Outside(t *testing.T) {
	for _, tc := range []struct {
		name       string
		forwarding bool
		dst        netip.Addr
		want       uint32
		reason     string
	}{
		// Masqueraded (NAT66, nat66_test.go): the network masquerades.
		{"an outside address", true, srvD6, tcActRedirect, ""},
		{"the router", true, rtR6, tcActRedirect, ""},
		{"a ULA of no network", true, netip.MustParseAddr("fd99::1"), tcActRedirect, ""},
		{"the host's address", true, hostH6, tcActOK, ""},
		{"loopback (the stack drops it)", true, netip.IPv6Loopback(), tcActOK, ""},
		// The kernel answers FWD_DISABLED before it looks at the
		// destination: with IPv6 forwarding off, the host's addresses are
		// refused too.
		{"the host's address, forwarding off", false, hostH6, tcActShot, "ipv6_not_routed"},
		{"an outside address, forwarding off", false, srvD6, tcActShot, "ipv6_not_routed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newNATEnv(t, envOpts{netns: true})
			setupNetns6(t, e.ifUp, tc.forwarding)
			addIPv6(t, e)
			in := frame6(macA, macGW, ip6A, tc.dst, 64, nil, 6, tcpSyn6(40000, 443))
			ret, out := e.fromContainer(t, e.ifA, in)
			if ret != tc.want {
				d, _ := e.views.Drops()
				t.Fatalf("verdict = %d, want %d (drops %v)", ret, tc.want, d)
			}
			if tc.reason != "" {
				if got := e.drops(t, tc.reason); got != 1 {
					t.Fatalf("drops[%s] = %d, want 1", tc.reason, got)
				}
				return
			}
			if ret == tcActRedirect {
				if addr6(out[22:38]) != hostH6 {
					t.Fatalf("redirected without NAT66:\n got %x", out)
				}
				return
			}
			if !bytes.Equal(out, in) {
				t.Fatalf("passed frame changed:\n got %x\nwant %x", out, in)
			}
		})
	}
}

func TestFromUplink6(t *testing.T) {
	envs := map[bool]*natEnv{}
	for _, unprotected := range []bool{false, true} {
		e := newNATEnv(t, envOpts{})
		addIPv6(t, e)
		if err := e.views.PutNetwork(maps.Network{ID: 1, Subnet: netip.MustParsePrefix("172.30.0.0/16"), Gateway: gw1, GatewayMAC: macGW,
			BridgeIfindex: 50, ICC: true, Unprotected: unprotected, Subnet6: subnet6N1, Gateway6: gw6N1}); err != nil {
			t.Fatal(err)
		}
		envs[unprotected] = e
	}
	from := func(dst netip.Addr) []byte {
		return frame6(macRt, macUp, srvD6, dst, 64, nil, 6, tcpSyn6(5555, 80))
	}
	for _, tc := range []struct {
		name        string
		unprotected bool
		frame       []byte
		want        uint32
	}{
		{"container A", false, from(ip6A), tcActShot},
		{"an unassigned address of the subnet", false, from(netip.MustParseAddr("fd00:1::99")), tcActShot},
		{"the gateway", false, from(gw6N1), tcActOK},
		{"the host", false, from(hostH6), tcActOK},
		{"elsewhere", false, from(netip.MustParseAddr("2001:db8:5::5")), tcActOK},
		{"A's link-local", false, from(llA), tcActOK},
		{"neighbour solicitation", false, func() []byte {
			dst, dmac := solicited(hostH6)
			return frame6(macRt, dmac, rtR6, dst, 255, nil, 58, ns6(hostH6, lla6(1, macRt)))
		}(), tcActOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := envs[tc.unprotected]
			before := e.drops(t, "direct_routing")
			ret, out := e.fromUplink(t, tc.frame)
			if ret != tc.want {
				t.Fatalf("verdict = %d, want %d", ret, tc.want)
			}
			if ret == tcActShot {
				if got := e.drops(t, "direct_routing") - before; got != 1 {
					t.Fatalf("drops[direct_routing] +%d, want +1", got)
				}
				return
			}
			if !bytes.Equal(out, tc.frame) {
				t.Fatalf("passed frame changed:\n got %x\nwant %x", out, tc.frame)
			}
		})
	}
}

// dualStack makes the fuzz environment's network 1 dual stack, with the
// IPv6 side of the uplink (forwarding on), from the namespace's goroutine.
func (fe *fuzzEnv) dualStack(f *testing.F) {
	done := make(chan struct{})
	fe.reqs <- func() {
		defer close(done)
		setupNetns6(f, fe.ifUp, true)
	}
	<-done
	addIPv6(f, fe.natEnv)
}

// seedFrames6 are valid IPv6 frames from A for FuzzFromContainer.
func seedFrames6() [][]byte {
	dopt := ext6{60, padN6}
	return [][]byte{
		frame6(macA, macB, ip6A, ip6B, 64, nil, 17, udp6(40000, 53, "hello")),
		frame6(macA, macGW, llA, llB, 64, nil, 6, tcpSyn6(40000, 80)),
		frame6(macA, macGW, ip6A, gw6N1, 64, nil, 58, echo6(7, 1)),
		frame6(macA, macGW, ip6A, srvD6, 64, []ext6{dopt}, 6, tcpSyn6(40000, 443)),
		frame6(macA, macGW, ip6A, hostH6, 64, []ext6{{44, []byte{0, 1, 0, 0, 0, 9}}}, 17, udp6(1, 2, "1234567890123456")[:16]),
		nsFrame(ip6A, ip6B),
		nsFrame(llA, gw6N1),
		mld2Report(llA, netip.MustParseAddr("ff02::1:ff00:2")),
		func() []byte {
			dst, dmac := solicited(ip6A)
			return frame6(macA, dmac, netip.IPv6Unspecified(), dst, 255, nil, 58, ns6(ip6A))
		}(),
		frame6(macA, net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}, llA, allNodes, 255, nil, 58, na6(0x20, llA, lla6(2, macA))),
	}
}

// parsed6 is parse_ipv6's contract (bpf/lib/ipv6.h), written again from
// RFC 8200 for the fuzz target.
type parsed6 struct {
	reason      string // "malformed", "ipv6_ext_hdr" or ""
	proto       byte
	l4          []byte // the upper-layer bytes, a later fragment's none
	frag, later bool
}

func parse6(f []byte) parsed6 {
	ip := f[14:]
	if len(ip) < 40 || ip[0]>>4 != 6 {
		return parsed6{reason: "malformed"}
	}
	plen := int(binary.BigEndian.Uint16(ip[4:]))
	if plen == 0 || plen > len(ip)-40 {
		return parsed6{reason: "malformed"}
	}
	pl := ip[40 : 40+plen]
	p := parsed6{}
	nh, off, seenFrag := ip[6], 0, false
	opaque := func(nh byte) bool {
		switch nh {
		case 50, 51, 135, 139, 140, 253, 254:
			return true
		}
		return false
	}
walk:
	for i := 0; ; i++ {
		switch nh {
		case 0, 43, 44, 60:
			if i == 4 {
				return parsed6{reason: "ipv6_ext_hdr"}
			}
			if off+8 > len(pl) {
				return parsed6{reason: "malformed"}
			}
			if nh == 44 {
				if seenFrag {
					return parsed6{reason: "ipv6_ext_hdr"}
				}
				seenFrag = true
				fo := binary.BigEndian.Uint16(pl[off+2:])
				nh = pl[off]
				off += 8
				offset, m, rest := int(fo>>3)*8, fo&1 == 1, len(pl)-off
				if offset != 0 || m {
					if offset+rest > 65535 || (m && (rest == 0 || rest%8 != 0)) {
						return parsed6{reason: "malformed"}
					}
					p.frag = true
					if offset != 0 {
						p.later = true
						break walk
					}
				}
				continue
			}
			if nh == 0 && i > 0 {
				return parsed6{reason: "ipv6_ext_hdr"}
			}
			nh = pl[off]
			off += (int(pl[off+1]) + 1) * 8
			if off > len(pl) {
				return parsed6{reason: "malformed"}
			}
		default:
			break walk
		}
	}
	if opaque(nh) {
		return parsed6{reason: "ipv6_ext_hdr"}
	}
	p.proto = nh
	if p.later {
		return p
	}
	p.l4 = pl[off:]
	if nh == 58 && len(p.l4) < 4 {
		return parsed6{reason: "malformed"}
	}
	return p
}

func addr6(b []byte) netip.Addr { return netip.AddrFrom16([16]byte(b)) }

// checkFuzz6 holds from_container's answer to the IPv6 frame in, from A's
// MAC, to its contract: parse6's verdicts, the source addresses A may use,
// no router ND; a redirect is a delivery to B unchanged but its MAC, the
// advertisement answering a solicitation, or NAT66 (checkNAT66); nothing
// outside the container subnets but the host's own address passes; IPv6
// is never tracked in IPv4's tables.
func checkFuzz6(t *testing.T, e *fuzzEnv, in, out []byte, ret uint32, before map[string]maps.Counter) {
	t.Helper()
	after, err := e.views.Drops()
	if err != nil {
		t.Fatal(err)
	}
	reason := ""
	for r, c := range after {
		if c.Packets != before[r].Packets {
			reason = r
		}
	}
	if n := len(e.flows(t)); n != 0 {
		t.Fatalf("IPv6 made %d conntrack entries\n%x", n, in)
	}
	want := ""
	p := parse6(in)
	var src, dst netip.Addr
	if p.reason != "" {
		want = p.reason
	} else {
		src, dst = addr6(in[22:38]), addr6(in[38:54])
		var typ byte
		if p.proto == 58 && !p.later {
			typ = p.l4[0]
		}
		unspecOK := src == netip.IPv6Unspecified() && dst.IsMulticast() && p.proto == 58 && !p.frag &&
			(typ == 135 || typ == 131 || typ == 132 || typ == 143)
		switch {
		case src != ip6A && src != llA && !unspecOK:
			want = "spoofed_ip"
		case typ == 134 || typ == 137:
			want = "router_nd"
		}
	}
	if want != "" {
		if ret != tcActShot || reason != want {
			t.Fatalf("verdict %d, drop reason %q, want dropped as %q\n%x", ret, reason, want, in)
		}
		return
	}
	switch ret {
	case tcActRedirect:
		if len(out) == 86 && out[54] == 136 && len(in) == 86 && in[54] == 135 {
			checkAnswer(t, in, out)
			return
		}
		if len(out) >= 54 && addr6(out[22:38]) == hostH6 && src != hostH6 {
			checkNAT66(t, e, in, out, p)
			return
		}
		if len(out) >= 62 && addr6(out[22:38]) == gw6N1 && out[20] == 58 && (out[54] == 2 || out[54] == 3) {
			checkError6(t, in, out, p)
			return
		}
		if dst != ip6B && dst != llB || !bytes.Equal(out, withDstMAC(in, macB)) {
			t.Fatalf("redirected, but no delivery to B:\n in %x\nout %x", in, out)
		}
	case tcActOK:
		if !bytes.Equal(out, in) {
			t.Fatalf("passed frame changed:\n in %x\nout %x", in, out)
		}
		if dst == ip6B || dst == llB {
			t.Fatalf("a packet to B passed to the stack\n%x", in)
		}
		// The host's: its address, and the subnet-router anycast
		// address of the uplink's prefix, which forwarding joins. From a
		// link-local source (the FIB's NOT_FWDED) the stack forwards
		// nothing either (RFC 4291 2.5.6).
		if netip.MustParsePrefix("2000::/3").Contains(dst) && dst != hostH6 && dst != netip.MustParseAddr("2001:db8:ff::") && src != llA {
			t.Fatalf("a packet to %s, outside, passed to the stack\n%x", dst, in)
		}
	case tcActShot:
		switch reason {
		case "malformed", "spoofed_nd":
			if p.proto != 58 || (p.l4 != nil && p.l4[0] != 135 && p.l4[0] != 136) {
				t.Fatalf("dropped as %s, but no ND\n%x", reason, in)
			}
		case "network_isolation", "icc_disabled", "internal_network", "ipv6_not_routed":
		// NAT66 refuses fragments, and starts no flow with what answers one.
		case "fragment":
			if !p.frag {
				t.Fatalf("dropped as a fragment, but none\n%x", in)
			}
		case "no_flow":
			if p.proto != 6 && p.proto != 58 {
				t.Fatalf("dropped as no_flow, protocol %d\n%x", p.proto, in)
			}
		default:
			t.Fatalf("dropped as %q\n%x", reason, in)
		}
	default:
		t.Fatalf("verdict %d\n%x", ret, in)
	}
}

// checkNAT66 holds a frame from_container sent out of the uplink to
// NAT66's contract (bpf/lib/nat6.h): a whole TCP or UDP packet, or an
// echo request, to an address beyond the container subnets, from hostH6
// with its hop limit decremented, its destination, payload and
// everything else kept but the source port (echo id); its checksum as
// right as the container's was; and a flow tracked for it.
func checkNAT66(t *testing.T, e *fuzzEnv, in, out []byte, p parsed6) {
	t.Helper()
	src, dst := addr6(in[22:38]), addr6(in[38:54])
	if src != ip6A || dst.IsLinkLocalUnicast() || dst.IsMulticast() || subnet6N1.Contains(dst) || p.frag || dst == hostH6 {
		t.Fatalf("NAT66 of a packet from %s to %s (fragment %v)\n in %x\nout %x", src, dst, p.frag, in, out)
	}
	portOff := 0 // of the port or id NAT66 may change, in the upper-layer header
	switch {
	case p.proto == 6 && len(p.l4) >= 20, p.proto == 17 && len(p.l4) >= 8:
	case p.proto == 58 && len(p.l4) >= 8 && p.l4[0] == 128:
		portOff = 4
	default:
		t.Fatalf("NAT66 of protocol %d (%d bytes)\n in %x\nout %x", p.proto, len(p.l4), in, out)
	}
	if len(out) != len(in) || addr6(out[22:38]) != hostH6 || out[21] != in[21]-1 {
		t.Fatalf("NAT66: want the same frame from %s with hop limit %d\n in %x\nout %x", hostH6, in[21]-1, in, out)
	}
	// To the router by its MAC, or to a neighbour on the uplink's link,
	// which bpf_redirect_neigh addresses as it sends (not in a test run).
	if !bytes.Equal(out[:12], append(append([]byte{}, macRt...), macUp...)) && !bytes.Equal(out[:12], in[:12]) {
		t.Fatalf("NAT66: MACs %x\n in %x\nout %x", out[:12], in, out)
	}
	l4Off := 14 + 40 + int(binary.BigEndian.Uint16(in[18:])) - len(p.l4) // trailing bytes may follow the payload
	csOff := map[byte]int{6: 16, 17: 6, 58: 2}[p.proto]
	masked := func(f []byte) []byte {
		c := append([]byte{}, f...)
		copy(c[6:12], macUp) // the MACs: checked above
		copy(c[0:6], macRt)
		copy(c[22:38], make([]byte, 16))
		c[21] = 0
		for _, o := range []int{portOff, portOff + 1, csOff, csOff + 1} {
			c[l4Off+o] = 0
		}
		return c
	}
	if !bytes.Equal(masked(in), masked(out)) {
		t.Fatalf("NAT66 changed more than the source, hop limit, port and checksum\n in %x\nout %x", in, out)
	}
	okSum := func(f []byte) bool {
		n := len(p.l4)
		if p.proto == 17 && binary.BigEndian.Uint16(f[l4Off+6:]) == 0 {
			return false
		}
		return onesSum(pseudo6(addr6(f[22:38]), addr6(f[38:54]), p.proto, n), f[l4Off:l4Off+n]) == 0xffff
	}
	if okSum(in) != okSum(out) {
		t.Fatalf("NAT66: checksum right before %v, after %v\n in %x\nout %x", okSum(in), okSum(out), in, out)
	}
	if flows, err := e.views.Flows6(); err != nil || len(flows) != 2 {
		t.Fatalf("NAT66 tracks %d entries (%v), want the flow's 2\n%x", len(flows), err, in)
	}
}

// checkError6 holds an ICMPv6 error from_container answered a packet
// that could not leave with (error6 in bpf/from_container.c): time exceeded
// for hop limit 1, else Packet Too Big with the uplink's MTU, from the
// gateway to the sender, quoting the packet's first 128 bytes, checksum
// right; never for what NAT66 would not translate.
func checkError6(t *testing.T, in, out []byte, p parsed6) {
	t.Helper()
	typ, w := byte(3), uint32(0)
	if in[21] > 1 {
		typ, w = 2, 1500
	}
	plen := int(binary.BigEndian.Uint16(in[18:]))
	q := in[14 : 14+40+plen]
	if len(q) > 128 {
		q = q[:128]
	}
	want := frame6(macGW, macA, gw6N1, addr6(in[22:38]), 255, nil, 58, icmp6Err(typ, 0, w, q))
	if !bytes.Equal(out, want) {
		t.Fatalf("ICMPv6 error:\n in %x\nout %x\nwant %x", in, out, want)
	}
	if p.frag || (p.proto != 6 && p.proto != 17 && p.proto != 58) {
		t.Fatalf("an ICMPv6 error answers a fragment or protocol %d\n%x", p.proto, in)
	}
}

// checkAnswer holds an advertisement out, answering the solicitation in,
// to RFC 4861: the target's MAC (B's or the gateway's) from it, to A.
func checkAnswer(t *testing.T, in, out []byte) {
	t.Helper()
	target := addr6(in[62:78])
	mac, flags := macB, byte(0x60)
	if target == gw6N1 {
		mac, flags = macGW, 0xe0
	} else if target != ip6B && target != llB {
		t.Fatalf("answered a solicitation for %s:\n in %x\nout %x", target, in, out)
	}
	if in[14+7] != 255 || !bytes.Equal(in[86-8:], lla6(1, macA)) {
		t.Fatalf("answered a solicitation that is not A's own (hop limit %d, option %x)", in[21], in[78:])
	}
	want := expectedNA(t, addr6(in[22:38]), target, mac, flags&0x80 != 0)
	if !bytes.Equal(out, want) || !l4OK6(out) {
		t.Fatalf("advertisement:\n got %x\nwant %x", out, want)
	}
}

// A container of an IPv6-only network (its endpoint without an IPv4
// address) sends IPv6 as any, but neither IPv4, not even from 0.0.0.0
// (DHCP), nor ARP: dropped as no_ipv4, with no endpoint_ips entry at 0.
func TestFromContainerIPv6Only(t *testing.T) {
	e := newNATEnv(t, envOpts{})
	if err := e.views.DeleteNetwork(1, subnet4N1); err != nil {
		t.Fatal(err)
	}
	if err := e.views.PutNetwork(maps.Network{ID: 1, GatewayMAC: macGW, BridgeIfindex: 50, ICC: true, Masquerade: true,
		Subnet6: subnet6N1, Gateway6: gw6N1}); err != nil {
		t.Fatal(err)
	}
	for _, ep := range []maps.Endpoint{
		{MAC: macA, NetID: 1, Ifindex: e.ifA, IP6: ip6A},
		{MAC: macB, NetID: 1, Ifindex: e.ifB, IP6: ip6B},
	} {
		if err := e.views.DeleteEndpoint(ep.Ifindex, ipA); err != nil {
			t.Fatal(err)
		}
		if err := e.views.DeleteEndpoint(ep.Ifindex, ipB); err != nil {
			t.Fatal(err)
		}
		if err := e.views.PutEndpoint(ep); err != nil {
			t.Fatal(err)
		}
	}
	if byIP, err := e.views.EndpointsByIP(); err != nil || len(byIP) != 0 {
		t.Fatalf("endpoint_ips holds %v (%v), want nothing for IPv6-only endpoints", byIP, err)
	}
	if subnets, err := e.views.Subnets(); err != nil || len(subnets) != 0 {
		t.Fatalf("subnets holds %v (%v), want no IPv4 prefix", subnets, err)
	}
	if ep, err := e.views.LookupEndpoint(e.ifA); err != nil || ep.IP.IsValid() {
		t.Fatalf("endpoint A reads back as %+v (%v), want no IPv4 address", ep, err)
	}
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"IPv4 to a peer's old address", udpFrame(t, macA, macB, ipA, ipB)},
		{"IPv4 from 0.0.0.0", udpFrame(t, macA, macGW, netip.IPv4Unspecified(), netip.MustParseAddr("255.255.255.255"))},
		{"ARP probe", arpFrame(t, macA, layers.ARPRequest, macA, netip.IPv4Unspecified(), gw1)},
	} {
		before := e.drops(t, "no_ipv4")
		if ret, _ := e.fromContainer(t, e.ifA, tc.frame); ret != tcActShot || e.drops(t, "no_ipv4") != before+1 {
			t.Errorf("%s: verdict %d, drops[no_ipv4] +%d, want dropped", tc.name, ret, e.drops(t, "no_ipv4")-before)
		}
	}
	// IPv6 to the peer goes straight into it.
	ret, got := e.fromContainer(t, e.ifA, frame6(macA, macB, ip6A, ip6B, 64, nil, 17, udp6(4000, 53, "q")))
	if ret != tcActRedirect {
		t.Fatalf("IPv6 to B: verdict %d, want TC_ACT_REDIRECT", ret)
	}
	expectFrame6(t, "IPv6 to B", got, frame6(macA, macB, ip6A, ip6B, 64, nil, 17, udp6(4000, 53, "q")))
}
