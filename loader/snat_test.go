package loader_test

import (
	"testing"

	"github.com/google/gopacket/layers"

	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

func TestSNATNewFlow(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    pkt
	}{
		{"TCP", pkt{proto: layers.IPProtocolTCP, sport: 40000, dport: 443, tcpFlags: "S"}},
		{"UDP", pkt{proto: layers.IPProtocolUDP, sport: 40000, dport: 9053}},
		{"UDP without checksum", pkt{proto: layers.IPProtocolUDP, sport: 40000, dport: 9053, zeroUDPCsum: true}},
		{"ICMP echo", pkt{proto: layers.IPProtocolICMPv4, sport: 7777}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newNATEnv(t, envOpts{netns: true})
			p := tc.p
			p.srcMAC, p.dstMAC, p.src, p.dst = macA, macGW, ipA, srvD
			ret, out := e.fromContainer(t, e.ifA, p.build(t))
			if ret != tcActRedirect {
				t.Fatalf("verdict = %d, want TC_ACT_REDIRECT", ret)
			}
			verifyChecksums(t, out)
			d := decode(t, out)
			// The original port is free: masquerade keeps it.
			dport := p.dport
			if p.proto == layers.IPProtocolICMPv4 {
				dport = p.sport
			}
			d.expect(t, macUp, macRt, ap(hostH, p.sport), ap(srvD, dport), 63)
			if p.zeroUDPCsum && d.udpCsum != 0 {
				t.Errorf("UDP checksum %#x, want 0 (none) kept", d.udpCsum)
			}
			if got := e.verdictIn(t, loader.DirFromContainer, loader.VerdictSNAT); got != 1 {
				t.Errorf("snat verdicts = %d, want 1", got)
			}

			flows := e.flows(t)
			if len(flows) != 2 {
				t.Fatalf("%d conntrack entries, want 2: %v", len(flows), flows)
			}
			proto := uint8(p.proto)
			fwdKey := maps.Tuple{Proto: proto, Src: ap(ipA, p.sport), Dst: ap(srvD, p.dport)}
			repKey := maps.Tuple{Proto: proto, Src: ap(srvD, p.dport), Dst: ap(hostH, p.sport)}
			if p.proto == layers.IPProtocolICMPv4 {
				// Request keyed (id, 0), reply (0, id).
				fwdKey = maps.Tuple{Proto: proto, Src: ap(ipA, p.sport), Dst: ap(srvD, 0)}
				repKey = maps.Tuple{Proto: proto, Src: ap(srvD, 0), Dst: ap(hostH, p.sport)}
			}
			fwd, ok := flows[fwdKey]
			if !ok {
				t.Fatalf("no forward entry %v in %v", fwdKey, flows)
			}
			rep, ok := flows[repKey]
			if !ok {
				t.Fatalf("no reply entry %v in %v", repKey, flows)
			}
			if fwd.Kind != maps.FlowSNAT || rep.Kind != maps.FlowSNAT || fwd.Reply || !rep.Reply {
				t.Errorf("kinds/directions: fwd %v reply=%v, rep %v reply=%v", fwd.Kind, fwd.Reply, rep.Kind, rep.Reply)
			}
			if fwd.Peer != repKey || rep.Peer != fwdKey {
				t.Errorf("peers: fwd -> %v, rep -> %v", fwd.Peer, rep.Peer)
			}
			if fwd.Translated != (maps.Tuple{Proto: proto, Src: ap(hostH, fwdKey.Src.Port()), Dst: fwdKey.Dst}) {
				t.Errorf("forward rewrite %v", fwd.Translated)
			}
			if rep.Translated != (maps.Tuple{Proto: proto, Src: repKey.Src, Dst: fwdKey.Src}) {
				t.Errorf("reply rewrite %v", rep.Translated)
			}
			if fwd.Ifindex != 0 || rep.Ifindex != e.ifA {
				t.Errorf("delivery: fwd ifindex %d (want 0: FIB), rep %d (want %d)", fwd.Ifindex, rep.Ifindex, e.ifA)
			}
			now := maps.Monotonic()
			if age := fwd.Age(now); age < 0 || age > 10e9 {
				t.Errorf("forward entry age %v: timestamps not CLOCK_MONOTONIC?", age)
			}
			if p.proto == layers.IPProtocolTCP && fwd.State != maps.StateSYN {
				t.Errorf("TCP state %v, want syn", fwd.State)
			}
			st, err := e.views.NATStats()
			if err != nil {
				t.Fatal(err)
			}
			if st.Retries[0] != 1 || st.AllocFailures != 0 {
				t.Errorf("NAT stats %+v, want one first-try allocation", st)
			}
		})
	}
}

// The checksum checker itself must catch a wrong checksum anywhere.
func TestChecksumCheckerCatchesCorruption(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    pkt
		off  int // byte to corrupt
	}{
		{"IPv4 header", pkt{proto: layers.IPProtocolUDP, sport: 1, dport: 2}, 14 + 8},
		{"UDP pseudo header", pkt{proto: layers.IPProtocolUDP, sport: 1, dport: 2}, 14 + 12},
		{"TCP port", pkt{proto: layers.IPProtocolTCP, sport: 1, dport: 2, tcpFlags: "S"}, 14 + 20 + 1},
		{"ICMP id", pkt{proto: layers.IPProtocolICMPv4, sport: 5}, 14 + 20 + 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p
			p.srcMAC, p.dstMAC, p.src, p.dst = macA, macGW, ipA, srvD
			f := p.build(t)
			if errs := checksumErrors(f); len(errs) != 0 {
				t.Fatalf("valid frame rejected: %v", errs)
			}
			f[tc.off] ^= 0x10
			if errs := checksumErrors(f); len(errs) == 0 {
				t.Fatal("corrupted frame accepted")
			}
		})
	}
}
