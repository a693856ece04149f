package loader_test

import (
	"net/netip"
	"testing"

	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

// IPv6's embryonic table (bpf/lib/nat6.h's ct6_embryonic): a TCP flow to
// a port published over IPv6 (newDNAT6Env: B publishes 8080/tcp) starts
// there and moves into conntrack6 only once its client acknowledges B's
// SYN-ACK, as IPv4's (flood_test.go).

// embryonic6 and conntrack6 list the two tables apart.
func embryonic6(t *testing.T, e *natEnv) map[maps.Tuple]maps.Flow {
	t.Helper()
	out := map[maps.Tuple]maps.Flow{}
	for tu, f := range flows6(t, e) {
		if f.Embryonic {
			out[tu] = f
		}
	}
	return out
}

func conntrack6(t *testing.T, e *natEnv) map[maps.Tuple]maps.Flow {
	t.Helper()
	out := map[maps.Tuple]maps.Flow{}
	for tu, f := range flows6(t, e) {
		if !f.Embryonic {
			out[tu] = f
		}
	}
	return out
}

// ackRange6 is the range ct6_ack_ranges holds for the container's half.
func ackRange6(t *testing.T, e *natEnv, containerHalf maps.Tuple) (lo, hi uint32, ok bool) {
	t.Helper()
	k := loader.CT6Key{Saddr: loader.IP6Key{Addr: maps.BE128(containerHalf.Src.Addr())}, Daddr: loader.IP6Key{Addr: maps.BE128(containerHalf.Dst.Addr())},
		Sport: maps.BE16(containerHalf.Src.Port()), Dport: maps.BE16(containerHalf.Dst.Port()), Proto: containerHalf.Proto}
	var r struct {
		Created uint64
		Lo, Hi  uint32
	}
	if err := e.dp.Maps.CT6AckRanges.Lookup(&k, &r); err != nil {
		return 0, 0, false
	}
	return r.Lo, r.Hi, true
}

// The SYN makes both halves in ct6_embryonic and none in conntrack6; B's
// SYN-ACK (ISN 1) leaves translated and sets the ack the client must send
// (2); a blind ACK (another ack number), the client's SYN again, or B's
// own ACK promote nothing; the client's ACK of the SYN-ACK moves both
// halves into conntrack6, empties the embryonic table and the range, and
// the flow goes on. Every frame checked byte for byte.
func TestEmbryonic6Promotion(t *testing.T) {
	e := newDNAT6Env(t)
	fwd := maps.Tuple{Proto: 6, Src: netip.AddrPortFrom(srvD6, 5555), Dst: netip.AddrPortFrom(hostH6, 8080)}
	rep := maps.Tuple{Proto: 6, Src: netip.AddrPortFrom(ip6B, 80), Dst: netip.AddrPortFrom(srvD6, 5555)}
	in := func(what string, flags byte, ack uint32) {
		t.Helper()
		ret, got := e.fromUplink(t, frame6(macRt, macUp, srvD6, hostH6, 60, nil, 6, tcp6(5555, 8080, flags, ack)))
		if ret != tcActRedirect {
			d, _ := e.views.Drops()
			t.Fatalf("%s: verdict %d, want TC_ACT_REDIRECT (drops %v)", what, ret, d)
		}
		expectFrame6(t, what, got, frame6(macGW, macB, srvD6, ip6B, 59, nil, 6, tcp6(5555, 80, flags, ack)))
	}
	out := func(what string, flags byte, ack uint32) {
		t.Helper()
		ret, got := e.fromContainer(t, e.ifB, frame6(macB, macGW, ip6B, srvD6, 64, nil, 6, tcp6(80, 5555, flags, ack)))
		if ret != tcActRedirect {
			t.Fatalf("%s: verdict %d, want TC_ACT_REDIRECT", what, ret)
		}
		expectFrame6(t, what, got, frame6(macUp, macRt, hostH6, srvD6, 63, nil, 6, tcp6(8080, 5555, flags, ack)))
	}
	stillEmbryonic := func(step string) {
		t.Helper()
		emb, ct := embryonic6(t, e), conntrack6(t, e)
		f, r := emb[fwd], emb[rep]
		if len(emb) != 2 || len(ct) != 0 || f.Kind != maps.FlowDNAT || r.Kind != maps.FlowDNAT || f.Ifindex != e.ifB ||
			r.Ifindex != 0 || f.Reply || !r.Reply || f.Peer != rep || r.Peer != fwd ||
			f.Translated.Dst != netip.AddrPortFrom(ip6B, 80) || r.Translated.Src != netip.AddrPortFrom(hostH6, 8080) {
			t.Fatalf("%s: embryonic %v, conntrack6 %v; want the flow's two halves embryonic only", step, emb, ct)
		}
	}

	in("SYN", tcpSYN, 0)
	stillEmbryonic("after the SYN")
	if _, _, ok := ackRange6(t, e, rep); ok {
		t.Fatal("an ack range before B answered")
	}
	out("SYN-ACK", tcpSYNACK, 2)
	if lo, hi, ok := ackRange6(t, e, rep); !ok || lo != 2 || hi != 2 {
		t.Fatalf("ack range [%d, %d] (%v), want [2, 2]: B's ISN 1 + 1", lo, hi, ok)
	}
	stillEmbryonic("after the SYN-ACK")
	in("blind ACK", tcpACK, 999)
	stillEmbryonic("after a blind ACK")
	in("SYN again", tcpSYN, 0)
	stillEmbryonic("after a retransmitted SYN")
	out("B's ACK", tcpACK, 2)
	stillEmbryonic("after B's own ACK")

	in("the client's ACK", tcpACK, 2)
	ct := conntrack6(t, e)
	f, r := ct[fwd], ct[rep]
	if n := len(embryonic6(t, e)); n != 0 || len(ct) != 2 || f.Peer != rep || r.Peer != fwd || f.Ifindex != e.ifB || !r.Reply ||
		f.State != maps.StateSYN|maps.StateEstablished {
		t.Fatalf("after the ACK: %d embryonic, conntrack6 %v; want both halves promoted, established", n, ct)
	}
	if _, _, ok := ackRange6(t, e, rep); ok {
		t.Error("the ack range outlived the promotion")
	}
	out("B's data", tcpACK, 2)
	in("the client's data", tcpACK, 2)
	if len(e.flows(t)) != 0 || len(e.embryonic(t)) != 0 {
		t.Error("IPv4's tables written")
	}
}

// B's RST ends the embryonic flow's chances: the client's ACK that would
// have promoted it does not (ct6_promote refuses a half marked RST).
func TestEmbryonic6RSTIsNotPromoted(t *testing.T) {
	e := newDNAT6Env(t)
	if ret, _ := e.fromUplink(t, frame6(macRt, macUp, srvD6, hostH6, 60, nil, 6, tcp6(5555, 8080, tcpSYN, 0))); ret != tcActRedirect {
		t.Fatalf("SYN: verdict %d", ret)
	}
	if ret, _ := e.fromContainer(t, e.ifB, frame6(macB, macGW, ip6B, srvD6, 64, nil, 6, tcp6(80, 5555, tcpSYNACK, 2))); ret != tcActRedirect {
		t.Fatalf("SYN-ACK: verdict %d", ret)
	}
	if ret, _ := e.fromContainer(t, e.ifB, frame6(macB, macGW, ip6B, srvD6, 64, nil, 6, tcp6(80, 5555, tcpRST, 0))); ret != tcActRedirect {
		t.Fatalf("RST: verdict %d", ret)
	}
	e.fromUplink(t, frame6(macRt, macUp, srvD6, hostH6, 60, nil, 6, tcp6(5555, 8080, tcpACK, 2)))
	if ct := conntrack6(t, e); len(ct) != 0 {
		t.Fatalf("a flow B reset was promoted: %v", ct)
	}
}

// spoofed6 is the i-th address of an IPv6 flood.
func spoofed6(i int) netip.Addr {
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x66, 0, 0, 0, 0, 0, 0, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)})
}

// A SYN flood over IPv6, each SYN from a spoofed source answered by B's
// SYN-ACK as a listening socket does, more flows than the embryonic table
// holds: conntrack6 gets not one entry of it, so it can evict no
// established IPv6 flow (the client's and a masqueraded one of A's, both
// idle through the flood, still translate both ways); the flood churns
// ct6_embryonic only. Before, each SYN wrote both halves into conntrack6.
func TestSYNFlood6KeepsEstablishedFlows(t *testing.T) {
	e := newDNAT6Env(t)
	cli := netip.MustParseAddr("2001:db8:77::1")
	// The established flows: cli -> hostH6:8080 -> B:80, A -> srvD6:443.
	steps := []struct {
		uplink  bool
		ifindex int
		frame   []byte
	}{
		{true, 0, frame6(macRt, macUp, cli, hostH6, 60, nil, 6, tcp6(5555, 8080, tcpSYN, 0))},
		{false, e.ifB, frame6(macB, macGW, ip6B, cli, 64, nil, 6, tcp6(80, 5555, tcpSYNACK, 2))},
		{true, 0, frame6(macRt, macUp, cli, hostH6, 60, nil, 6, tcp6(5555, 8080, tcpACK, 2))},
	}
	for i, s := range steps {
		ret := uint32(0)
		if s.uplink {
			ret, _ = e.fromUplink(t, s.frame)
		} else {
			ret, _ = e.fromContainer(t, s.ifindex, s.frame)
		}
		if ret != tcActRedirect {
			t.Fatalf("handshake step %d: verdict %d", i, ret)
		}
	}
	ret, synOut := e.fromContainer(t, e.ifA, frame6(macA, macGW, ip6A, srvD6, 64, nil, 6, tcp6(40000, 443, tcpSYN, 0)))
	if ret != tcActRedirect {
		t.Fatalf("A's SYN: verdict %d", ret)
	}
	natPort := uint16(synOut[54])<<8 | uint16(synOut[55])
	before := conntrack6(t, e)
	if len(before) != 4 {
		t.Fatalf("conntrack6 before the flood: %v", before)
	}

	n := loader.CTEmbryonicSize/2 + loader.CTEmbryonicSize/8 // flows: the table's worth and a quarter more
	if testing.Short() {
		n = 2000
	}
	for i := range n {
		src, sport := spoofed6(i), uint16(1024+i%60000)
		if ret, _ := e.fromUplink(t, frame6(macRt, macUp, src, hostH6, 60, nil, 6, tcp6(sport, 8080, tcpSYN, 0))); ret != tcActRedirect {
			t.Fatalf("flood SYN %d: verdict %d", i, ret)
		}
		if ret, _ := e.fromContainer(t, e.ifB, frame6(macB, macGW, ip6B, src, 64, nil, 6, tcp6(80, sport, tcpSYNACK, 2))); ret != tcActRedirect {
			t.Fatalf("flood SYN-ACK %d: verdict %d", i, ret)
		}
	}
	if after := conntrack6(t, e); len(after) != 4 {
		t.Fatalf("conntrack6 after the flood holds %d entries, want the established flows' 4", len(after))
	}
	if emb := len(embryonic6(t, e)); emb == 0 || emb > loader.CTEmbryonicSize {
		t.Errorf("ct6_embryonic holds %d entries", emb)
	}
	// Both established flows still translate both ways.
	ret, got := e.fromContainer(t, e.ifB, frame6(macB, macGW, ip6B, cli, 64, nil, 6, tcp6(80, 5555, tcpACK, 2)))
	if ret != tcActRedirect {
		t.Fatalf("B's segment after the flood: verdict %d", ret)
	}
	expectFrame6(t, "B's segment after the flood", got, frame6(macUp, macRt, hostH6, cli, 63, nil, 6, tcp6(8080, 5555, tcpACK, 2)))
	ret, got = e.fromUplink(t, frame6(macRt, macUp, cli, hostH6, 60, nil, 6, tcp6(5555, 8080, tcpACK, 2)))
	if ret != tcActRedirect {
		t.Fatalf("the client's segment after the flood: verdict %d", ret)
	}
	expectFrame6(t, "the client's segment after the flood", got, frame6(macGW, macB, cli, ip6B, 59, nil, 6, tcp6(5555, 80, tcpACK, 2)))
	ret, got = e.fromUplink(t, frame6(macRt, macUp, srvD6, hostH6, 50, nil, 6, tcp6(443, natPort, tcpSYNACK, 2)))
	if ret != tcActRedirect {
		t.Fatalf("D's SYN-ACK to A after the flood: verdict %d", ret)
	}
	expectFrame6(t, "D's SYN-ACK to A after the flood", got, frame6(macGW, macA, srvD6, ip6A, 49, nil, 6, tcp6(443, 40000, tcpSYNACK, 2)))
}
