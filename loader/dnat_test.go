package loader_test

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

func publish(t *testing.T, e *natEnv, b maps.PortEntry) {
	t.Helper()
	if err := e.views.PutPortEntry(b); err != nil {
		t.Fatal(err)
	}
}

// Outside client C -> H:8080 published to B:80, and B's replies back out.
// A TCP flow is embryonic until the client acknowledges B's SYN-ACK, then
// both its entries are in conntrack.
func TestDNATNewFlowAndReply(t *testing.T) {
	for _, proto := range []layers.IPProtocol{layers.IPProtocolTCP, layers.IPProtocolUDP} {
		t.Run(proto.String(), func(t *testing.T) {
			e := newNATEnv(t, envOpts{netns: true})
			publish(t, e, maps.PortEntry{Proto: uint8(proto), HostPort: 8080, ContainerIP: ipB, ContainerPort: 80, Ifindex: e.ifB})
			in := pkt{srcMAC: macRt, dstMAC: macUp, src: cliC, dst: hostH, proto: proto, sport: 5555, dport: 8080, tcpFlags: "S", ttl: 60}
			ret, got := e.fromUplink(t, in.build(t))
			if ret != tcActRedirect {
				t.Fatalf("verdict %d, want TC_ACT_REDIRECT", ret)
			}
			verifyChecksums(t, got)
			decode(t, got).expect(t, macGW, macB, ap(cliC, 5555), ap(ipB, 80), 59)
			if n := e.rx(t, e.ifB); n != 1 {
				t.Errorf("B received %d, want 1", n)
			}
			tcp := proto == layers.IPProtocolTCP
			flows := e.flows(t)
			if tcp {
				if len(flows) != 0 {
					t.Fatalf("a SYN wrote conntrack: %v", flows)
				}
				flows = e.embryonic(t)
			}
			fwdKey := maps.Tuple{Proto: uint8(proto), Src: ap(cliC, 5555), Dst: ap(hostH, 8080)}
			repKey := maps.Tuple{Proto: uint8(proto), Src: ap(ipB, 80), Dst: ap(cliC, 5555)}
			fwd, rep := flows[fwdKey], flows[repKey]
			if len(flows) != 2 || fwd.Kind != maps.FlowDNAT || rep.Kind != maps.FlowDNAT || fwd.Ifindex != e.ifB || rep.Ifindex != 0 {
				t.Fatalf("entries %v", flows)
			}
			if fwd.Translated.Dst != ap(ipB, 80) || rep.Translated.Src != ap(hostH, 8080) {
				t.Errorf("rewrites: fwd %v rep %v", fwd.Translated, rep.Translated)
			}

			// B answers: out through the FIB with H:8080 as the source.
			r := pkt{srcMAC: macB, dstMAC: macGW, src: ipB, dst: cliC, proto: proto, sport: 80, dport: 5555, tcpFlags: "SA"}
			ret, got = e.fromContainer(t, e.ifB, r.build(t))
			if ret != tcActRedirect {
				t.Fatalf("reply verdict %d, want TC_ACT_REDIRECT", ret)
			}
			verifyChecksums(t, got)
			decode(t, got).expect(t, macUp, macRt, ap(hostH, 8080), ap(cliC, 5555), 63)
			if n := e.verdictIn(t, loader.DirFromContainer, loader.VerdictSNAT); n != 1 {
				t.Errorf("snat verdicts %d", n)
			}
			main, emb := len(e.flows(t)), len(e.embryonic(t))
			if !tcp && (main != 2 || emb != 0) || tcp && (main != 0 || emb != 2) {
				t.Errorf("%d conntrack and %d embryonic entries after the reply", main, emb)
			}
			if !tcp {
				return
			}
			// The client's ACK completes the handshake: promoted.
			ack := pkt{srcMAC: macRt, dstMAC: macUp, src: cliC, dst: hostH, proto: proto, sport: 5555, dport: 8080, tcpFlags: "A", ttl: 60}
			if ret, _ := e.fromUplink(t, ack.build(t)); ret != tcActRedirect {
				t.Fatalf("ACK verdict %d, want TC_ACT_REDIRECT", ret)
			}
			flows = e.flows(t)
			if len(flows) != 2 || flows[fwdKey].Kind != maps.FlowDNAT || flows[repKey].Translated.Src != ap(hostH, 8080) {
				t.Errorf("conntrack after the ACK: %v", flows)
			}
			if n := len(e.embryonic(t)); n != 0 {
				t.Errorf("%d embryonic entries left after the promotion", n)
			}
		})
	}
}

func TestDNATBindings(t *testing.T) {
	specific := netip.MustParseAddr("198.18.0.9") // a second address of the host
	e := newNATEnv(t, envOpts{})
	publish(t, e, maps.PortEntry{Proto: maps.ProtoTCP, HostIP: specific, HostPort: 9090, ContainerIP: ipA, ContainerPort: 90, Ifindex: e.ifA})
	publish(t, e, maps.PortEntry{Proto: maps.ProtoTCP, HostPort: 8080, ContainerIP: ipB, ContainerPort: 80, Ifindex: e.ifB})
	if err := e.views.PutPortEntry(maps.PortEntry{Proto: maps.ProtoTCP, HostPort: 8080, ContainerIP: ipA, ContainerPort: 80, Ifindex: e.ifA}); err == nil {
		t.Error("publishing a taken port succeeded")
	}
	for _, tc := range []struct {
		name   string
		dst    netip.Addr
		dport  uint16
		proto  layers.IPProtocol
		want   uint32
		target netip.AddrPort
	}{
		{"specific host IP", specific, 9090, layers.IPProtocolTCP, tcActRedirect, ap(ipA, 90)},
		{"specific binding not on the uplink IP", hostH, 9090, layers.IPProtocolTCP, tcActOK, netip.AddrPort{}},
		{"any-address binding on the uplink IP", hostH, 8080, layers.IPProtocolTCP, tcActRedirect, ap(ipB, 80)},
		{"any-address binding on another address", netip.MustParseAddr("198.18.0.10"), 8080, layers.IPProtocolTCP, tcActOK, netip.AddrPort{}},
		{"other protocol", hostH, 8080, layers.IPProtocolUDP, tcActOK, netip.AddrPort{}},
		{"unpublished port", hostH, 8081, layers.IPProtocolTCP, tcActOK, netip.AddrPort{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := pkt{srcMAC: macRt, dstMAC: macUp, src: cliC, dst: tc.dst, proto: tc.proto, sport: 6000, dport: tc.dport, tcpFlags: "S"}.build(t)
			ret, got := e.fromUplink(t, in)
			if ret != tc.want {
				t.Fatalf("verdict %d, want %d", ret, tc.want)
			}
			if ret == tcActOK {
				if string(got) != string(in) {
					t.Error("passed packet changed")
				}
				return
			}
			verifyChecksums(t, got)
			d := decode(t, got)
			if ap(d.dst, d.dport) != tc.target {
				t.Errorf("delivered to %v:%d, want %v", d.dst, d.dport, tc.target)
			}
		})
	}
	bs, err := e.views.PortEntries()
	if err != nil || len(bs) != 2 {
		t.Fatalf("PortEntries = %v, %v", bs, err)
	}
	if err := e.views.DeletePortEntry(maps.PortEntry{Proto: maps.ProtoTCP, HostPort: 8080}); err != nil {
		t.Fatal(err)
	}
	in := pkt{srcMAC: macRt, dstMAC: macUp, src: cliC, dst: hostH, proto: layers.IPProtocolTCP, sport: 6001, dport: 8080, tcpFlags: "S"}
	if ret, _ := e.fromUplink(t, in.build(t)); ret != tcActOK {
		t.Errorf("after unpublishing: verdict %d, want TC_ACT_OK", ret)
	}
}

// A container reaches a published port through the host IP: DNAT to the
// target and SNAT to the gateway, and the reply goes back the same way.
func TestHairpin(t *testing.T) {
	for _, tc := range []struct {
		name string
		dst  netip.Addr
	}{
		{"uplink IP", hostH},
		{"own gateway", gw1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newNATEnv(t, envOpts{})
			publish(t, e, maps.PortEntry{Proto: maps.ProtoTCP, HostPort: 8080, ContainerIP: ipB, ContainerPort: 80, Ifindex: e.ifB})
			p := pkt{srcMAC: macA, dstMAC: macGW, src: ipA, dst: tc.dst, proto: layers.IPProtocolTCP, sport: 33000, dport: 8080, tcpFlags: "S"}
			ret, got := e.fromContainer(t, e.ifA, p.build(t))
			if ret != tcActRedirect {
				t.Fatalf("verdict %d, want TC_ACT_REDIRECT", ret)
			}
			verifyChecksums(t, got)
			d := decode(t, got)
			d.expect(t, macGW, macB, ap(gw1, d.sport), ap(ipB, 80), 63)
			if n := e.rx(t, e.ifB); n != 1 {
				t.Errorf("B received %d, want 1", n)
			}
			flows := e.flows(t)
			if len(flows) != 2 {
				t.Fatalf("entries %v", flows)
			}
			for _, f := range flows {
				if f.Kind != maps.FlowHairpin {
					t.Errorf("kind %v, want hairpin", f.Kind)
				}
			}

			// B replies to the gateway address it saw; A gets it from tc.dst:8080.
			r := pkt{srcMAC: macB, dstMAC: macGW, src: ipB, dst: gw1, proto: layers.IPProtocolTCP, sport: 80, dport: d.sport, tcpFlags: "SA"}
			ret, got = e.fromContainer(t, e.ifB, r.build(t))
			if ret != tcActRedirect {
				t.Fatalf("reply verdict %d", ret)
			}
			verifyChecksums(t, got)
			decode(t, got).expect(t, macGW, macA, ap(tc.dst, 8080), ap(ipA, 33000), 63)
			if n := e.rx(t, e.ifA); n != 1 {
				t.Errorf("A received %d, want 1", n)
			}
			if n := e.verdictIn(t, loader.DirFromContainer, loader.VerdictDNAT); n != 2 {
				t.Errorf("dnat verdicts %d, want 2", n)
			}
		})
	}
	t.Run("not reachable from outside", func(t *testing.T) {
		e := newNATEnv(t, envOpts{})
		publish(t, e, maps.PortEntry{Proto: maps.ProtoTCP, HostPort: 8080, ContainerIP: ipB, ContainerPort: 80, Ifindex: e.ifB})
		p := pkt{srcMAC: macA, dstMAC: macGW, src: ipA, dst: hostH, proto: layers.IPProtocolTCP, sport: 33000, dport: 8080, tcpFlags: "S"}
		if ret, _ := e.fromContainer(t, e.ifA, p.build(t)); ret != tcActRedirect {
			t.Fatal(ret)
		}
		// The same tuple spoofed from outside must not enter the hairpin flow.
		p.srcMAC, p.dstMAC = macRt, macUp
		if ret, _ := e.fromUplink(t, p.build(t)); ret != tcActOK {
			t.Fatalf("verdict %d, want TC_ACT_OK", ret)
		}
	})
}

// icmpError builds an ICMP error from src to dst quoting the first 8 bytes
// of L4 of the packet q (as a router does: RFC 792's minimum).
func icmpError(t *testing.T, srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr, typ, code uint8, q pkt) []byte {
	t.Helper()
	quoted := q.build(t)[14:]
	ihl := int(quoted[0]&0xf) * 4
	quoted = quoted[:ihl+8]
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Id: 99, Protocol: layers.IPProtocolICMPv4, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	// For frag-needed, Seq carries the next-hop MTU.
	ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, code), Seq: 1400}
	return serialize(t, eth, ip, ic, gopacket.Payload(quoted))
}

type quote struct {
	src, dst netip.AddrPort
	ttl      uint8
}

func decodeQuote(t *testing.T, frame []byte) quote {
	t.Helper()
	inner := frame[14+20+8:]
	ihl := int(inner[0]&0xf) * 4
	a, _ := netip.AddrFromSlice(inner[12:16])
	b, _ := netip.AddrFromSlice(inner[16:20])
	l4 := inner[ihl:]
	var sp, dp uint16
	if inner[9] == 1 {
		id := uint16(l4[4])<<8 | uint16(l4[5])
		sp, dp = id, id
	} else {
		sp, dp = uint16(l4[0])<<8|uint16(l4[1]), uint16(l4[2])<<8|uint16(l4[3])
	}
	return quote{netip.AddrPortFrom(a, sp), netip.AddrPortFrom(b, dp), inner[8]}
}

func TestICMPErrors(t *testing.T) {
	t.Run("router's frag-needed for a masqueraded flow", func(t *testing.T) {
		// A one-port range: the source port is translated too.
		e := newNATEnv(t, envOpts{netns: true, loader: loader.Options{NATPortMin: 2001, NATPortMax: 2001}})
		out := pkt{srcMAC: macA, dstMAC: macGW, src: ipA, dst: srvD, proto: layers.IPProtocolUDP, sport: 40000, dport: 9053}
		if ret, _ := e.fromContainer(t, e.ifA, out.build(t)); ret != tcActRedirect {
			t.Fatal(ret)
		}
		// What left: H:2001 -> D:9053, TTL 63.
		sent := out
		sent.src, sent.sport, sent.ttl = hostH, 2001, 63
		in := icmpError(t, macRt, macUp, rtR, hostH, layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded, sent)
		ret, got := e.fromUplink(t, in)
		if ret != tcActRedirect {
			t.Fatalf("verdict %d, want TC_ACT_REDIRECT", ret)
		}
		verifyChecksums(t, got)
		d := decode(t, got)
		if d.src != rtR || d.dst != ipA || d.ttl != 63 || d.dstMAC.String() != macA.String() {
			t.Errorf("outer %v -> %v ttl %d mac %v; want R -> A ttl 63 to A's MAC", d.src, d.dst, d.ttl, d.dstMAC)
		}
		if q := decodeQuote(t, got); q.src != ap(ipA, 40000) || q.dst != ap(srvD, 9053) {
			t.Errorf("quoted %v -> %v, want A:40000 -> D:9053", q.src, q.dst)
		}
		if n := e.rx(t, e.ifA); n != 1 {
			t.Errorf("A received %d", n)
		}
		// The MTU field is untouched.
		if got[14+20+6] != 0x05 || got[14+20+7] != 0x78 {
			t.Errorf("next-hop MTU changed: %x", got[14+20+4:14+20+8])
		}
	})
	t.Run("time exceeded for a masqueraded ping", func(t *testing.T) {
		e := newNATEnv(t, envOpts{netns: true, loader: loader.Options{NATPortMin: 2000, NATPortMax: 2000}})
		out := pkt{srcMAC: macA, dstMAC: macGW, src: ipA, dst: srvD, proto: layers.IPProtocolICMPv4, sport: 7}
		ret, sentFrame := e.fromContainer(t, e.ifA, out.build(t))
		if ret != tcActRedirect {
			t.Fatal(ret)
		}
		if id := decode(t, sentFrame).sport; id != 2000 {
			t.Fatalf("echo id %d, want 2000 (the only one in range)", id)
		}
		sent := out
		sent.src, sent.sport, sent.ttl = hostH, 2000, 1
		in := icmpError(t, macRt, macUp, rtR, hostH, layers.ICMPv4TypeTimeExceeded, 0, sent)
		ret, got := e.fromUplink(t, in)
		if ret != tcActRedirect {
			t.Fatalf("verdict %d, want TC_ACT_REDIRECT", ret)
		}
		verifyChecksums(t, got)
		if q := decodeQuote(t, got); q.src != ap(ipA, 7) || q.dst != ap(srvD, 7) {
			t.Errorf("quoted %v -> %v, want A id 7 -> D", q.src, q.dst)
		}
		// And the echo reply itself.
		reply := pkt{srcMAC: macRt, dstMAC: macUp, src: srvD, dst: hostH, proto: layers.IPProtocolICMPv4, icmpType: layers.ICMPv4TypeEchoReply, dport: 2000}
		ret, got = e.fromUplink(t, reply.build(t))
		if ret != tcActRedirect {
			t.Fatalf("echo reply verdict %d", ret)
		}
		verifyChecksums(t, got)
		decode(t, got).expect(t, macGW, macA, ap(srvD, 7), ap(ipA, 7), 63)
	})
	t.Run("container's port unreachable for a published port", func(t *testing.T) {
		e := newNATEnv(t, envOpts{netns: true})
		publish(t, e, maps.PortEntry{Proto: maps.ProtoUDP, HostPort: 8053, ContainerIP: ipB, ContainerPort: 53, Ifindex: e.ifB})
		in := pkt{srcMAC: macRt, dstMAC: macUp, src: cliC, dst: hostH, proto: layers.IPProtocolUDP, sport: 5555, dport: 8053}
		if ret, _ := e.fromUplink(t, in.build(t)); ret != tcActRedirect {
			t.Fatal(ret)
		}
		// What B received: C:5555 -> B:53; B has nothing listening.
		recv := in
		recv.dst, recv.dport, recv.ttl = ipB, 53, 63
		errFrame := icmpError(t, macB, macGW, ipB, cliC, layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodePort, recv)
		ret, got := e.fromContainer(t, e.ifB, errFrame)
		if ret != tcActRedirect {
			t.Fatalf("verdict %d, want TC_ACT_REDIRECT", ret)
		}
		verifyChecksums(t, got)
		d := decode(t, got)
		if d.src != hostH || d.dst != cliC || d.dstMAC.String() != macRt.String() {
			t.Errorf("outer %v -> %v via %v; want H -> C via R", d.src, d.dst, d.dstMAC)
		}
		if q := decodeQuote(t, got); q.src != ap(cliC, 5555) || q.dst != ap(hostH, 8053) {
			t.Errorf("quoted %v -> %v, want C:5555 -> H:8053", q.src, q.dst)
		}
	})
	t.Run("error for an unknown flow goes to the stack", func(t *testing.T) {
		e := newNATEnv(t, envOpts{})
		q := pkt{srcMAC: macUp, dstMAC: macRt, src: hostH, dst: srvD, proto: layers.IPProtocolUDP, sport: 1234, dport: 9053}
		in := icmpError(t, macRt, macUp, rtR, hostH, layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodePort, q)
		if ret, got := e.fromUplink(t, in); ret != tcActOK || string(got) != string(in) {
			t.Fatalf("verdict %d; want TC_ACT_OK unchanged", ret)
		}
	})
}

// A half-open inbound flow is listed (flagged embryonic) and goes with its
// endpoint's flows: a new endpoint given the address must not inherit a
// handshake in flight to the old one.
func TestEmbryonicFlowsListedAndDeletedWithTheEndpoint(t *testing.T) {
	e := newNATEnv(t, envOpts{netns: true})
	publish(t, e, maps.PortEntry{Proto: maps.ProtoTCP, HostPort: 8080, ContainerIP: ipB, ContainerPort: 80, Ifindex: e.ifB})
	publish(t, e, maps.PortEntry{Proto: maps.ProtoTCP, HostPort: 9090, ContainerIP: ipA, ContainerPort: 90, Ifindex: e.ifA})
	for _, dport := range []uint16{8080, 9090} {
		syn := pkt{srcMAC: macRt, dstMAC: macUp, src: cliC, dst: hostH, proto: layers.IPProtocolTCP, sport: 5555, dport: dport, tcpFlags: "S", ttl: 60}
		if ret, _ := e.fromUplink(t, syn.build(t)); ret != tcActRedirect {
			t.Fatalf("SYN to %d: verdict %d", dport, ret)
		}
	}
	emb, err := e.views.EmbryonicFlows()
	if err != nil || len(emb) != 4 || !emb[0].Embryonic {
		t.Fatalf("embryonic flows %+v, %v: want 4 entries flagged embryonic", emb, err)
	}
	n, err := e.views.DeleteEndpointFlows(ipB)
	if err != nil || n != 2 {
		t.Fatalf("DeleteEndpointFlows(B) = %d, %v; want B's 2 embryonic entries", n, err)
	}
	emb, _ = e.views.EmbryonicFlows()
	if len(emb) != 2 {
		t.Fatalf("%d embryonic entries left, want A's 2", len(emb))
	}
	for _, f := range emb {
		if f.Translated.Dst.Addr() != ipA && f.Tuple.Src.Addr() != ipA {
			t.Errorf("left entry %v is not A's", f.Tuple)
		}
	}
}
