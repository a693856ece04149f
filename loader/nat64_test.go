package loader_test

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/ebpfnet/ebpfnet/maps"
)

// Stateful NAT64 (bpf/lib/nat64.h): the published-port tests' namespace
// (newDNAT6Env) with B on IPv4 only, so an IPv6 client of hostH6:8080 and
// :5353 reaches B through NAT64, seen as from the gateway gw1.

func newNAT64Env(t *testing.T) *natEnv {
	t.Helper()
	e := newDNAT6Env(t)
	if err := e.views.DeleteEndpoint(e.ifB, ipB); err != nil {
		t.Fatal(err)
	}
	if err := e.views.PutEndpoint(maps.Endpoint{IP: ipB, MAC: macB, NetID: 1, Ifindex: e.ifB}); err != nil {
		t.Fatal(err)
	}
	return e
}

// frame4 builds an Ethernet frame holding IPv4 (ID 0, DF, TOS 0) from
// src to dst with the TCP or UDP message l4, both checksums computed here.
func frame4(srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr, ttl uint8, proto byte, l4 []byte) []byte {
	l4 = append([]byte{}, l4...)
	off := map[byte]int{6: 16, 17: 6}[proto]
	l4[off], l4[off+1] = 0, 0
	s, d := src.As4(), dst.As4()
	pseudo := append(append(append([]byte{}, s[:]...), d[:]...), 0, proto)
	pseudo = binary.BigEndian.AppendUint16(pseudo, uint16(len(l4)))
	binary.BigEndian.PutUint16(l4[off:], ^uint16(onesSum(onesSum(0, pseudo), l4)))
	ip := []byte{0x45, 0, 0, 0, 0, 0, 0x40, 0, ttl, proto, 0, 0}
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
	ip = append(append(ip, s[:]...), d[:]...)
	binary.BigEndian.PutUint16(ip[10:], ^uint16(onesSum(0, ip)))
	f := append(append(append([]byte{}, dstMAC...), srcMAC...), 0x08, 0x00)
	return append(append(f, ip...), l4...)
}

// TCP: the client's SYN enters B as IPv4 from the gateway (its source port
// kept, free), B's SYN-ACK to the gateway leaves as IPv6 from hostH6:8080,
// the client's ACK follows; every byte and checksum checked apart from the
// program, both entries in conntrack6.
func TestNAT64TCP(t *testing.T) {
	e := newNAT64Env(t)
	ret, got := e.fromUplink(t, frame6(macRt, macUp, srvD6, hostH6, 60, nil, 6, tcp6(5555, 8080, tcpSYN, 0)))
	if ret != tcActRedirect {
		d, _ := e.views.Drops()
		t.Fatalf("SYN: verdict %d, want TC_ACT_REDIRECT (drops %v)", ret, d)
	}
	want := frame4(macGW, macB, gw1, ipB, 59, 6, tcp6(5555, 80, tcpSYN, 0))
	expectBytes(t, "SYN in", got, want)
	verifyChecksums(t, got)
	if n := e.rx(t, e.ifB); n != 1 {
		t.Errorf("B received %d packets, want 1", n)
	}

	flows := flows6(t, e)
	fwdKey := maps.Tuple{Proto: 6, Src: netip.AddrPortFrom(srvD6, 5555), Dst: netip.AddrPortFrom(hostH6, 8080)}
	repKey := maps.Tuple{Proto: 6, Src: netip.AddrPortFrom(ipB, 80), Dst: netip.AddrPortFrom(gw1, 5555)}
	fwd, rep := flows[fwdKey], flows[repKey]
	if len(flows) != 2 || fwd.Kind != maps.FlowNAT64 || rep.Kind != maps.FlowNAT64 || fwd.Ifindex != e.ifB || rep.Ifindex != 0 ||
		fwd.Reply || !rep.Reply {
		t.Fatalf("conntrack6 entries %v", flows)
	}
	if fwd.Translated.Src != netip.AddrPortFrom(gw1, 5555) || fwd.Translated.Dst != netip.AddrPortFrom(ipB, 80) ||
		rep.Translated.Src != netip.AddrPortFrom(hostH6, 8080) || rep.Translated.Dst != netip.AddrPortFrom(srvD6, 5555) {
		t.Errorf("rewrites: fwd %v rep %v", fwd.Translated, rep.Translated)
	}
	if len(e.flows(t)) != 0 || len(e.embryonic(t)) != 0 {
		t.Errorf("IPv4's tables written")
	}

	ret, got = e.fromContainer(t, e.ifB, frame4(macB, macGW, ipB, gw1, 64, 6, tcp6(80, 5555, tcpSYNACK, 2)))
	if ret != tcActRedirect {
		d, _ := e.views.Drops()
		t.Fatalf("SYN-ACK: verdict %d, want TC_ACT_REDIRECT (drops %v)", ret, d)
	}
	expectFrame6(t, "SYN-ACK out", got, frame6(macUp, macRt, hostH6, srvD6, 63, nil, 6, tcp6(8080, 5555, tcpSYNACK, 2)))

	ret, got = e.fromUplink(t, frame6(macRt, macUp, srvD6, hostH6, 60, nil, 6, tcp6(5555, 8080, tcpACK, 2)))
	if ret != tcActRedirect {
		t.Fatalf("ACK: verdict %d, want TC_ACT_REDIRECT", ret)
	}
	expectBytes(t, "ACK in", got, frame4(macGW, macB, gw1, ipB, 59, 6, tcp6(5555, 80, tcpACK, 2)))
	if f := flows6(t, e)[fwdKey]; f.State != maps.StateSYN|maps.StateEstablished {
		t.Errorf("forward entry state %v, want syn,established", f.State)
	}
	// A second client on the same port gets its own gateway port.
	other := netip.MustParseAddr("2001:db8::2")
	ret, got = e.fromUplink(t, frame6(macRt, macUp, other, hostH6, 60, nil, 6, tcp6(5555, 8080, tcpSYN, 0)))
	if ret != tcActRedirect {
		t.Fatalf("second SYN: verdict %d", ret)
	}
	if sport := binary.BigEndian.Uint16(got[34:]); sport == 5555 || binary.BigEndian.Uint32(got[26:]) != binary.BigEndian.Uint32(gw1.AsSlice()) {
		t.Errorf("second client's flow: source %x port %d, want the gateway with another port", got[26:30], sport)
	}
	verifyChecksums(t, got)
}

// UDP, with a payload, and what NAT64 refuses: a datagram too big for
// the uplink once IPv6, mapped addresses from a wire; a container's IPv4
// to its gateway that is no NAT64 flow stays IPv4.
func TestNAT64UDP(t *testing.T) {
	e := newNAT64Env(t)
	ret, got := e.fromUplink(t, frame6(macRt, macUp, srvD6, hostH6, 60, nil, 17, udp6(40000, 5353, "query")))
	if ret != tcActRedirect {
		d, _ := e.views.Drops()
		t.Fatalf("datagram: verdict %d, want TC_ACT_REDIRECT (drops %v)", ret, d)
	}
	expectBytes(t, "datagram in", got, frame4(macGW, macB, gw1, ipB, 59, 17, udp6(40000, 53, "query")))
	verifyChecksums(t, got)
	ret, got = e.fromContainer(t, e.ifB, frame4(macB, macGW, ipB, gw1, 64, 17, udp6(53, 40000, "answer")))
	if ret != tcActRedirect {
		d, _ := e.views.Drops()
		t.Fatalf("answer: verdict %d, want TC_ACT_REDIRECT (drops %v)", ret, d)
	}
	expectFrame6(t, "answer out", got, frame6(macUp, macRt, hostH6, srvD6, 63, nil, 17, udp6(5353, 40000, "answer")))

	big := make([]byte, 1500-20-8)
	before := e.drops(t, "frag_needed")
	if ret, _ := e.fromContainer(t, e.ifB, frame4(macB, macGW, ipB, gw1, 64, 17, udp6(53, 40000, string(big)))); ret != tcActShot || e.drops(t, "frag_needed") != before+1 {
		t.Errorf("a full-size datagram: verdict %d, want dropped as frag_needed (IPv6 is 20 bytes longer)", ret)
	}
	mapped := netip.AddrFrom16(netip.MustParseAddr("172.30.0.3").As16())
	before = e.drops(t, "martian")
	if ret, _ := e.fromUplink(t, frame6(macRt, macUp, srvD6, mapped, 60, nil, 17, udp6(40000, 53, "x"))); ret != tcActShot || e.drops(t, "martian") != before+1 {
		t.Errorf("an IPv4-mapped destination from a wire: verdict %d, want dropped as martian", ret)
	}
	// Not a flow's reply: left to the IPv4 path (here, without the
	// gateway on a bridge, the FIB sends it out masqueraded), not made IPv6.
	if _, got := e.fromContainer(t, e.ifB, frame4(macB, macGW, ipB, gw1, 64, 17, udp6(53, 40001, "answer"))); binary.BigEndian.Uint16(got[12:]) != 0x0800 {
		t.Errorf("an IPv4 datagram to the gateway of no NAT64 flow was translated: %x", got)
	}
	if n := len(flows6(t, e)); n != 2 {
		t.Errorf("%d conntrack6 entries, want 2", n)
	}
}

// expectBytes checks a frame byte for byte.
func expectBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if string(got) != string(want) {
		t.Fatalf("%s:\n got %x\nwant %x", what, got, want)
	}
}
