package loader_test

import (
	"net/netip"
	"testing"

	"github.com/google/gopacket/layers"

	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

// Issue 9 item 8: spoofed SYNs to a published port, four times as many as
// conntrack holds, must evict neither an idle established inbound flow nor
// a container's own masqueraded flow. On the datapath before the embryonic
// table each SYN wrote two conntrack entries, the LRU evicted both halves
// of the idle flows, and the server's next segment left masqueraded from
// another port (the client resets it).
func TestIssue9SYNFloodKeepsEstablishedFlows(t *testing.T) {
	const ctSize = 1024
	e := newNATEnv(t, envOpts{netns: true, loader: loader.Options{CTMapSize: ctSize}})
	publish(t, e, maps.PortBinding{Proto: maps.ProtoTCP, HostPort: 8080, ContainerIP: ipB, ContainerPort: 80, Ifindex: e.ifB})
	tcp := layers.IPProtocolTCP
	redirect := func(what string, ret uint32) {
		t.Helper()
		if ret != tcActRedirect {
			t.Fatalf("%s: verdict %d, want TC_ACT_REDIRECT", what, ret)
		}
	}

	// Inbound: C -> H:8080 -> B:80, handshake complete.
	ret, _ := e.fromUplink(t, pkt{srcMAC: macRt, dstMAC: macUp, src: cliC, dst: hostH, proto: tcp, sport: 5555, dport: 8080, tcpFlags: "S"}.build(t))
	redirect("SYN", ret)
	ret, _ = e.fromContainer(t, e.ifB, pkt{srcMAC: macB, dstMAC: macGW, src: ipB, dst: cliC, proto: tcp, sport: 80, dport: 5555, tcpFlags: "SA"}.build(t))
	redirect("SYN-ACK", ret)
	ret, _ = e.fromUplink(t, pkt{srcMAC: macRt, dstMAC: macUp, src: cliC, dst: hostH, proto: tcp, sport: 5555, dport: 8080, tcpFlags: "A"}.build(t))
	redirect("ACK", ret)
	// Outbound: A -> D:443 masqueraded, handshake complete.
	ret, out := e.fromContainer(t, e.ifA, pkt{srcMAC: macA, dstMAC: macGW, src: ipA, dst: srvD, proto: tcp, sport: 40000, dport: 443, tcpFlags: "S"}.build(t))
	redirect("A's SYN", ret)
	natPort := decode(t, out).sport
	ret, _ = e.fromUplink(t, pkt{srcMAC: macRt, dstMAC: macUp, src: srvD, dst: hostH, proto: tcp, sport: 443, dport: natPort, tcpFlags: "SA"}.build(t))
	redirect("D's SYN-ACK", ret)
	ret, _ = e.fromContainer(t, e.ifA, pkt{srcMAC: macA, dstMAC: macGW, src: ipA, dst: srvD, proto: tcp, sport: 40000, dport: 443, tcpFlags: "A"}.build(t))
	redirect("A's ACK", ret)

	// The flood: spoofed sources, each SYN a new flow, and B answers each
	// with a SYN-ACK as a listening socket does (its lookups mark the
	// flood's entries recently used, as in a real flood).
	for i := 0; i < 4*ctSize; i++ {
		src := netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)})
		sport := uint16(1024 + i)
		f := pkt{srcMAC: macRt, dstMAC: macUp, src: src, dst: hostH, proto: tcp, sport: sport, dport: 8080, tcpFlags: "S"}
		if ret, _ := e.fromUplink(t, f.build(t)); ret != tcActRedirect {
			t.Fatalf("flood SYN %d: verdict %d", i, ret)
		}
		r := pkt{srcMAC: macB, dstMAC: macGW, src: ipB, dst: src, proto: tcp, sport: 80, dport: sport, tcpFlags: "SA"}
		if ret, _ := e.fromContainer(t, e.ifB, r.build(t)); ret != tcActRedirect {
			t.Fatalf("flood SYN-ACK %d: verdict %d", i, ret)
		}
	}

	// B's next segment still leaves as H:8080, C's still reaches B.
	ret, out = e.fromContainer(t, e.ifB, pkt{srcMAC: macB, dstMAC: macGW, src: ipB, dst: cliC, proto: tcp, sport: 80, dport: 5555, tcpFlags: "A"}.build(t))
	redirect("B's segment after the flood", ret)
	decode(t, out).expect(t, macUp, macRt, ap(hostH, 8080), ap(cliC, 5555), 63)
	ret, out = e.fromUplink(t, pkt{srcMAC: macRt, dstMAC: macUp, src: cliC, dst: hostH, proto: tcp, sport: 5555, dport: 8080, tcpFlags: "A", ttl: 60}.build(t))
	redirect("C's segment after the flood", ret)
	decode(t, out).expect(t, macGW, macB, ap(cliC, 5555), ap(ipB, 80), 59)
	// A's flow keeps its port both ways.
	ret, out = e.fromContainer(t, e.ifA, pkt{srcMAC: macA, dstMAC: macGW, src: ipA, dst: srvD, proto: tcp, sport: 40000, dport: 443, tcpFlags: "A"}.build(t))
	redirect("A's segment after the flood", ret)
	if d := decode(t, out); ap(d.src, d.sport) != ap(hostH, natPort) {
		t.Errorf("A's segment after the flood left as %v:%d, want %v", d.src, d.sport, ap(hostH, natPort))
	}
	ret, _ = e.fromUplink(t, pkt{srcMAC: macRt, dstMAC: macUp, src: srvD, dst: hostH, proto: tcp, sport: 443, dport: natPort, tcpFlags: "A"}.build(t))
	redirect("D's segment after the flood", ret)
	if n := len(e.flows(t)); n != 4 {
		t.Errorf("conntrack holds %d entries after the flood, want the 4 of the two flows", n)
	}
}

// A spoofed SYN then a blind ACK (the attacker never saw B's SYN-ACK, here
// B answers the ACK with a RST) is not promoted; a flow picked up mid-stream
// (C's ACK, B's ACK, C's next ACK) is.
func TestEmbryonicPromotion(t *testing.T) {
	e := newNATEnv(t, envOpts{netns: true})
	publish(t, e, maps.PortBinding{Proto: maps.ProtoTCP, HostPort: 8080, ContainerIP: ipB, ContainerPort: 80, Ifindex: e.ifB})
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
