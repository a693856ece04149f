package loader_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket/layers"

	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

// floodEnv is a datapath with a small conntrack, a TCP and a UDP port
// published to B, and two idle established flows a flood must not evict:
// C -> H:8080 -> B:80 inbound, A -> D:443 masqueraded as H:natPort.
type floodEnv struct {
	*natEnv
	natPort uint16
}

const floodCTSize = 1024

func newFloodEnv(t *testing.T) *floodEnv {
	e := newNATEnv(t, envOpts{netns: true, loader: loader.Options{CTMapSize: floodCTSize}})
	publish(t, e, maps.PortEntry{Proto: maps.ProtoTCP, HostPort: 8080, ContainerIP: ipB, ContainerPort: 80, Ifindex: e.ifB})
	publish(t, e, maps.PortEntry{Proto: maps.ProtoUDP, HostPort: 5353, ContainerIP: ipB, ContainerPort: 9053, Ifindex: e.ifB})
	f := &floodEnv{natEnv: e}
	f.in(t, "SYN", pkt{src: cliC, sport: 5555, dport: 8080, tcpFlags: "S"})
	f.back(t, e.ifB, "SYN-ACK", pkt{src: ipB, dst: cliC, sport: 80, dport: 5555, tcpFlags: "SA"})
	f.in(t, "ACK", pkt{src: cliC, sport: 5555, dport: 8080, tcpFlags: "A"})
	out := f.back(t, e.ifA, "A's SYN", pkt{src: ipA, dst: srvD, sport: 40000, dport: 443, tcpFlags: "S"})
	f.natPort = decode(t, out).sport
	f.in(t, "D's SYN-ACK", pkt{src: srvD, sport: 443, dport: f.natPort, tcpFlags: "SA"})
	f.back(t, e.ifA, "A's ACK", pkt{src: ipA, dst: srvD, sport: 40000, dport: 443, tcpFlags: "A"})
	return f
}

// in sends p from outside to the host (TCP unless p says otherwise) and
// wants it redirected into a container.
func (f *floodEnv) in(t *testing.T, what string, p pkt) []byte {
	t.Helper()
	p.srcMAC, p.dstMAC, p.dst = macRt, macUp, hostH
	if p.proto == 0 {
		p.proto = layers.IPProtocolTCP
	}
	ret, out := f.fromUplink(t, p.build(t))
	if ret != tcActRedirect {
		t.Fatalf("%s: verdict %d, want TC_ACT_REDIRECT", what, ret)
	}
	return out
}

// back sends p from the container behind host-side veth ifindex and wants
// it redirected.
func (f *floodEnv) back(t *testing.T, ifindex int, what string, p pkt) []byte {
	t.Helper()
	p.srcMAC, p.dstMAC = macB, macGW
	if ifindex == f.ifA {
		p.srcMAC = macA
	}
	if p.proto == 0 {
		p.proto = layers.IPProtocolTCP
	}
	ret, out := f.fromContainer(t, ifindex, p.build(t))
	if ret != tcActRedirect {
		t.Fatalf("%s: verdict %d, want TC_ACT_REDIRECT", what, ret)
	}
	return out
}

// expectSurvivors checks that both idle flows still translate both ways as
// before the flood, and that conntrack holds nothing else.
func (f *floodEnv) expectSurvivors(t *testing.T) {
	t.Helper()
	// B's next segment still leaves as H:8080, C's still reaches B.
	out := f.back(t, f.ifB, "B's segment after the flood", pkt{src: ipB, dst: cliC, sport: 80, dport: 5555, tcpFlags: "A"})
	decode(t, out).expect(t, macUp, macRt, ap(hostH, 8080), ap(cliC, 5555), 63)
	out = f.in(t, "C's segment after the flood", pkt{src: cliC, sport: 5555, dport: 8080, tcpFlags: "A", ttl: 60})
	decode(t, out).expect(t, macGW, macB, ap(cliC, 5555), ap(ipB, 80), 59)
	// A's flow keeps its port both ways.
	out = f.back(t, f.ifA, "A's segment after the flood", pkt{src: ipA, dst: srvD, sport: 40000, dport: 443, tcpFlags: "A"})
	if d := decode(t, out); ap(d.src, d.sport) != ap(hostH, f.natPort) {
		t.Errorf("A's segment after the flood left as %v:%d, want %v", d.src, d.sport, ap(hostH, f.natPort))
	}
	f.in(t, "D's segment after the flood", pkt{src: srvD, sport: 443, dport: f.natPort, tcpFlags: "A"})
	if n := len(f.conntrack(t)); n != 4 {
		t.Errorf("conntrack holds %d entries after the flood, want the 4 of the two flows", n)
	}
}

// conntrack lists the conntrack table proper: neither embryonic nor
// inbound datagram flows.
func (f *floodEnv) conntrack(t *testing.T) []maps.Flow {
	t.Helper()
	var out []maps.Flow
	for _, fl := range f.flows(t) {
		if !fl.Inbound {
			out = append(out, fl)
		}
	}
	return out
}

// spoofed is the i-th address of a flood: 198.19.0.0/16 and up.
func spoofed(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 19 + byte(i>>16), byte(i >> 8), byte(i)})
}

// Issue 9 item 8: spoofed SYNs to a published port, four times as many as
// conntrack holds, must evict neither an idle established inbound flow nor
// a container's own masqueraded flow. On the datapath before the embryonic
// table each SYN wrote two conntrack entries, the LRU evicted both halves
// of the idle flows, and the server's next segment left masqueraded from
// another port (the client resets it).
func TestIssue9SYNFloodKeepsEstablishedFlows(t *testing.T) {
	f := newFloodEnv(t)
	// The flood: spoofed sources, each SYN a new flow, and B answers each
	// with a SYN-ACK as a listening socket does (its lookups mark the
	// flood's entries recently used, as in a real flood).
	for i := 0; i < 4*floodCTSize; i++ {
		sport := uint16(1024 + i)
		f.in(t, "flood SYN", pkt{src: spoofed(i), sport: sport, dport: 8080, tcpFlags: "S"})
		f.back(t, f.ifB, "flood SYN-ACK", pkt{src: ipB, dst: spoofed(i), sport: 80, dport: sport, tcpFlags: "SA"})
	}
	f.expectSurvivors(t)
}

// Issue 21 item 1: a spoofed SYN then a blind ACK (any ack number: the
// attacker never saw B's SYN-ACK) per source, four times as many as
// conntrack holds. Before, the ACK promoted every such flow into conntrack
// and the flood evicted the idle established flows. B answers each SYN
// with a SYN-ACK of its own ISN and each blind ACK with a RST, as a
// listening socket does.
func TestBlindACKFloodKeepsEstablishedFlows(t *testing.T) {
	f := newFloodEnv(t)
	for i := 0; i < 4*floodCTSize; i++ {
		sport := uint16(1024 + i)
		isn := uint32(0x9e3779b9 * uint32(i+1))
		f.in(t, "flood SYN", pkt{src: spoofed(i), sport: sport, dport: 8080, tcpFlags: "S"})
		f.back(t, f.ifB, "flood SYN-ACK", pkt{src: ipB, dst: spoofed(i), sport: 80, dport: sport, tcpFlags: "SA", seq: isn})
		f.in(t, "flood blind ACK", pkt{src: spoofed(i), sport: sport, dport: 8080, tcpFlags: "A", seq: 1001, ack: 12345})
		f.back(t, f.ifB, "B's RST", pkt{src: ipB, dst: spoofed(i), sport: 80, dport: sport, tcpFlags: "R", seq: 12345})
	}
	f.expectSurvivors(t)
	if n := len(f.embryonic(t)); n != 0 {
		t.Errorf("%d embryonic entries after B reset every blind flow, want 0", n)
	}
}

// Issue 21 item 2: spoofed sources sending two datagrams each to a
// published UDP port whose container answers each one, four times as many
// as conntrack holds. Before, each such flow went into conntrack and B's
// answers kept it warm, so the flood evicted the idle established flows.
// Now datagram flows from outside live in ct_inbound: the flood churns
// only that table.
func TestSpoofedUDPFloodKeepsEstablishedFlows(t *testing.T) {
	f := newFloodEnv(t)
	udp := layers.IPProtocolUDP
	for i := 0; i < 4*floodCTSize; i++ {
		for range 2 {
			f.in(t, "flood datagram", pkt{proto: udp, src: spoofed(i), sport: 7777, dport: 5353})
			f.back(t, f.ifB, "B's answer", pkt{proto: udp, src: ipB, dst: spoofed(i), sport: 9053, dport: 7777})
		}
	}
	f.expectSurvivors(t)
	inbound := len(f.flows(t)) - len(f.conntrack(t))
	if inbound == 0 || inbound > loader.CTInboundSize {
		t.Errorf("ct_inbound holds %d entries, want the flood's latest, at most %d", inbound, loader.CTInboundSize)
	}
}

// A published UDP port's flow from outside is an inbound flow both ways:
// translated like any DNAT flow, listed with Inbound, expired by the GC.
func TestInboundDatagramFlow(t *testing.T) {
	f := newFloodEnv(t)
	udp := layers.IPProtocolUDP
	out := f.in(t, "C's datagram", pkt{proto: udp, src: cliC, sport: 7777, dport: 5353, ttl: 60})
	decode(t, out).expect(t, macGW, macB, ap(cliC, 7777), ap(ipB, 9053), 59)
	out = f.back(t, f.ifB, "B's answer", pkt{proto: udp, src: ipB, dst: cliC, sport: 9053, dport: 7777})
	decode(t, out).expect(t, macUp, macRt, ap(hostH, 5353), ap(cliC, 7777), 63)
	fl, ok := f.flows(t)[maps.Tuple{Proto: maps.ProtoUDP, Src: ap(cliC, 7777), Dst: ap(hostH, 5353)}]
	if !ok || !fl.Inbound || fl.Kind != maps.FlowDNAT {
		t.Fatalf("C's flow %+v (found %v), want an inbound DNAT flow", fl, ok)
	}
	n, err := f.views.GC(maps.Monotonic()+time.Hour, maps.DefaultTimeouts)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 { // the two TCP flows and C's
		t.Errorf("GC an hour later expired %d flows, want 3", n)
	}
	if left := len(f.flows(t)); left != 0 {
		t.Errorf("%d entries left after GC", left)
	}
}

// Issue 21 item 1: the client's ACK promotes an embryonic flow only if it
// acknowledges B's SYN-ACK (ISN + 1); B's RST ends the flow at once.
func TestEmbryonicPromotionChecksTheAck(t *testing.T) {
	f := newFloodEnv(t)
	key := maps.Tuple{Proto: maps.ProtoTCP, Src: ap(cliC, 6100), Dst: ap(hostH, 8080)}
	promoted := func() bool { _, ok := f.flows(t)[key]; return ok }
	f.in(t, "SYN", pkt{src: cliC, sport: 6100, dport: 8080, tcpFlags: "S"})
	f.back(t, f.ifB, "SYN-ACK", pkt{src: ipB, dst: cliC, sport: 80, dport: 6100, tcpFlags: "SA", seq: 70000, payload: []byte{}})
	for _, ack := range []uint32{12345, 70000, 70002, 69999 + 1<<31} {
		f.in(t, "wrong ACK", pkt{src: cliC, sport: 6100, dport: 8080, tcpFlags: "A", ack: ack, payload: []byte{}})
		if promoted() {
			t.Fatalf("an ACK of %d promoted a flow whose SYN-ACK had seq 70000", ack)
		}
	}
	f.in(t, "right ACK", pkt{src: cliC, sport: 6100, dport: 8080, tcpFlags: "A", ack: 70001, payload: []byte{}})
	if !promoted() {
		t.Fatalf("the ACK of ISN+1 did not promote the flow: %v", f.flows(t))
	}

	// A second handshake that B resets: no entry left anywhere.
	f.in(t, "SYN", pkt{src: cliC, sport: 6101, dport: 8080, tcpFlags: "S"})
	f.back(t, f.ifB, "RST", pkt{src: ipB, dst: cliC, sport: 80, dport: 6101, tcpFlags: "RA"})
	if emb := f.embryonic(t); len(emb) != 0 {
		t.Errorf("B's RST left embryonic entries: %v", emb)
	}
}

// A spoofed SYN then a blind ACK (the attacker never saw B's SYN-ACK, here
// B answers the ACK with a RST) is not promoted; a flow picked up mid-stream
// (C's ACK, B's ACK, C's next ACK) is.
func TestEmbryonicPromotion(t *testing.T) {
	e := newNATEnv(t, envOpts{netns: true})
	publish(t, e, maps.PortEntry{Proto: maps.ProtoTCP, HostPort: 8080, ContainerIP: ipB, ContainerPort: 80, Ifindex: e.ifB})
	tcp := layers.IPProtocolTCP
	in := func(sport uint16, flags string) {
		t.Helper()
		if ret, _ := e.fromUplink(t, pkt{srcMAC: macRt, dstMAC: macUp, src: cliC, dst: hostH, proto: tcp, sport: sport, dport: 8080, tcpFlags: flags}.build(t)); ret != tcActRedirect {
			t.Fatalf("C:%d %s: verdict %d", sport, flags, ret)
		}
	}
	back := func(dport uint16, flags string) {
		t.Helper()
		if ret, _ := e.fromContainer(t, e.ifB, pkt{srcMAC: macB, dstMAC: macGW, src: ipB, dst: cliC, proto: tcp, sport: 80, dport: dport, tcpFlags: flags}.build(t)); ret != tcActRedirect {
			t.Fatalf("B -> C:%d %s: verdict %d", dport, flags, ret)
		}
	}
	// Blind: B resets the ACK it never expected.
	in(6000, "A")
	back(6000, "R")
	in(6000, "A")
	if n := len(e.flows(t)); n != 0 {
		t.Fatalf("an ACK answered by a RST was promoted: %v", e.flows(t))
	}
	// Mid-stream: C's ACK alone is not enough, B's answer then C's is.
	in(6001, "A")
	if n := len(e.flows(t)); n != 0 {
		t.Fatalf("promoted before B answered: %v", e.flows(t))
	}
	back(6001, "A")
	in(6001, "A")
	if _, ok := e.flows(t)[maps.Tuple{Proto: maps.ProtoTCP, Src: ap(cliC, 6001), Dst: ap(hostH, 8080)}]; !ok {
		t.Fatalf("a flow picked up mid-stream was not promoted: %v", e.flows(t))
	}
	if n := len(e.embryonic(t)); n != 2 {
		t.Errorf("%d embryonic entries, want the blind flow's 2", n)
	}
}

// A container's SYN-ACK or RST whose flow conntrack no longer holds (the
// flood churned its embryonic entries out) starts no flow: else the
// container's answers to a flood would fill conntrack after all.
func TestAnswerWithoutFlowStartsNoFlow(t *testing.T) {
	for _, flags := range []string{"SA", "R", "RA"} {
		t.Run(flags, func(t *testing.T) {
			e := newNATEnv(t, envOpts{netns: true})
			p := pkt{srcMAC: macB, dstMAC: macGW, src: ipB, dst: cliC, proto: layers.IPProtocolTCP, sport: 80, dport: 5555, tcpFlags: flags}
			ret, _ := e.fromContainer(t, e.ifB, p.build(t))
			expectRefused(t, e, ret, "no_flow")
		})
	}
}
