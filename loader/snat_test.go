package loader_test

import (
	"net/netip"
	"testing"
	"time"

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

// A TCP flow's life: SYN out, SYN-ACK back in, ACK, FIN; the reply comes in
// through from_uplink and is delivered to A.
func TestSNATFlowAndReply(t *testing.T) {
	e := newNATEnv(t, envOpts{netns: true})
	out := func(flags string) pkt {
		return pkt{srcMAC: macA, dstMAC: macGW, src: ipA, dst: srvD, proto: layers.IPProtocolTCP, sport: 40000, dport: 443, tcpFlags: flags}
	}
	reply := func(flags string) pkt {
		return pkt{srcMAC: macRt, dstMAC: macUp, src: srvD, dst: hostH, proto: layers.IPProtocolTCP, sport: 443, dport: 40000, tcpFlags: flags, ttl: 50}
	}
	fwdKey := maps.Tuple{Proto: 6, Src: ap(ipA, 40000), Dst: ap(srvD, 443)}
	repKey := maps.Tuple{Proto: 6, Src: ap(srvD, 443), Dst: ap(hostH, 40000)}

	if ret, _ := e.fromContainer(t, e.ifA, out("S").build(t)); ret != tcActRedirect {
		t.Fatalf("SYN: verdict %d", ret)
	}
	ret, got := e.fromUplink(t, reply("SA").build(t))
	if ret != tcActRedirect {
		t.Fatalf("SYN-ACK: verdict %d, want TC_ACT_REDIRECT", ret)
	}
	verifyChecksums(t, got)
	decode(t, got).expect(t, macGW, macA, ap(srvD, 443), ap(ipA, 40000), 49)
	if n := e.rx(t, e.ifA); n != 1 {
		t.Errorf("A received %d packets, want 1 (delivered into A's veth)", n)
	}
	if n := e.verdictIn(t, loader.DirFromUplink, loader.VerdictDNAT); n != 1 {
		t.Errorf("from_uplink dnat verdicts = %d, want 1", n)
	}

	// The existing flow keeps its translation and adds no entries.
	ret, got = e.fromContainer(t, e.ifA, out("A").build(t))
	if ret != tcActRedirect {
		t.Fatalf("ACK: verdict %d", ret)
	}
	verifyChecksums(t, got)
	decode(t, got).expect(t, macUp, macRt, ap(hostH, 40000), ap(srvD, 443), 63)
	flows := e.flows(t)
	if len(flows) != 2 {
		t.Fatalf("%d entries after the handshake, want 2", len(flows))
	}
	if s := flows[fwdKey].State; s != maps.StateSYN|maps.StateEstablished {
		t.Errorf("forward state %v, want syn,established", s)
	}
	if s := flows[repKey].State; s != maps.StateSYN {
		t.Errorf("reply state %v, want syn", s)
	}
	if ret, _ := e.fromUplink(t, reply("FA").build(t)); ret != tcActRedirect {
		t.Fatalf("FIN: verdict %d", ret)
	}
	if s := e.flows(t)[repKey].State; s != maps.StateSYN|maps.StateEstablished|maps.StateFIN {
		t.Errorf("reply state after FIN %v", s)
	}
	if n := e.verdictIn(t, loader.DirFromContainer, loader.VerdictSNAT); n != 2 {
		t.Errorf("snat verdicts = %d, want 2", n)
	}

	// Traffic for the host itself is not touched.
	hostPkt := reply("S")
	hostPkt.dport = 22
	in := hostPkt.build(t)
	if ret, got := e.fromUplink(t, in); ret != tcActOK || string(got) != string(in) {
		t.Errorf("host-bound packet: verdict %d, changed %v", ret, string(got) != string(in))
	}
}

// The LRU may evict one half of a flow: the next packet of the other half
// that refreshes its last_seen (at most once a second) rebuilds it.
func TestSNATRepairsEvictedHalf(t *testing.T) {
	e := newNATEnv(t, envOpts{netns: true})
	p := pkt{srcMAC: macA, dstMAC: macGW, src: ipA, dst: srvD, proto: layers.IPProtocolUDP, sport: 41000, dport: 9053}
	if ret, _ := e.fromContainer(t, e.ifA, p.build(t)); ret != tcActRedirect {
		t.Fatalf("verdict %d", ret)
	}
	before := e.flows(t)
	repKey := maps.Tuple{Proto: 17, Src: ap(srvD, 9053), Dst: ap(hostH, 41000)}
	fwdKey := maps.Tuple{Proto: 17, Src: ap(ipA, 41000), Dst: ap(srvD, 9053)}
	for _, evict := range []maps.Tuple{repKey, fwdKey} {
		n, err := e.views.DeleteFlows(func(f maps.Flow) bool { return f.Tuple == evict && f.Peer != evict })
		if err != nil || n != 2 {
			t.Fatalf("DeleteFlows = %d, %v; want both halves deleted", n, err)
		}
		// Put back only the other half, as the LRU would leave it.
		keep := before[fwdKey]
		if evict == fwdKey {
			keep = before[repKey]
		}
		keep.LastSeen = maps.Monotonic() - 2*time.Second // due for its refresh
		putFlow(t, e, keep)
		var ret uint32
		if evict == repKey {
			ret, _ = e.fromContainer(t, e.ifA, p.build(t))
		} else {
			ret, _ = e.fromUplink(t, pkt{srcMAC: macRt, dstMAC: macUp, src: srvD, dst: hostH, proto: layers.IPProtocolUDP, sport: 9053, dport: 41000}.build(t))
		}
		if ret != tcActRedirect {
			t.Fatalf("verdict %d", ret)
		}
		after := e.flows(t)
		got, ok := after[evict]
		if !ok {
			t.Fatalf("evicted %v not rebuilt", evict)
		}
		want := before[evict]
		got.LastSeen, want.LastSeen, got.Created, want.Created = 0, 0, 0, 0
		if got != want {
			t.Errorf("rebuilt entry\n got %+v\nwant %+v", got, want)
		}
	}
}

// putFlow writes one conntrack entry as a Flow describes it.
func putFlow(t *testing.T, e *natEnv, f maps.Flow) {
	t.Helper()
	if err := e.views.PutFlow(f); err != nil {
		t.Fatal(err)
	}
}

// The original source port is taken for this destination: another one is
// allocated, and the reply entry is claimed for it.
func TestSNATPortCollision(t *testing.T) {
	e := newNATEnv(t, envOpts{netns: true, loader: loader.Options{NATPortMin: 40000, NATPortMax: 40063}})
	// Another flow already owns H:40000 <-> D:443.
	other := maps.Flow{Tuple: maps.Tuple{Proto: 6, Src: ap(srvD, 443), Dst: ap(hostH, 40000)},
		Translated: maps.Tuple{Proto: 6, Src: ap(srvD, 443), Dst: ap(ipB, 40000)},
		Peer:       maps.Tuple{Proto: 6, Src: ap(ipB, 40000), Dst: ap(srvD, 443)},
		Kind:       maps.FlowSNAT, Reply: true, Ifindex: e.ifB, PeerIfindex: 0, LastSeen: maps.Monotonic()}
	putFlow(t, e, other)
	p := pkt{srcMAC: macA, dstMAC: macGW, src: ipA, dst: srvD, proto: layers.IPProtocolTCP, sport: 40000, dport: 443, tcpFlags: "S"}
	ret, got := e.fromContainer(t, e.ifA, p.build(t))
	if ret != tcActRedirect {
		t.Fatalf("verdict %d", ret)
	}
	verifyChecksums(t, got)
	d := decode(t, got)
	if d.sport == 40000 || d.sport < 40000 || d.sport > 40063 || d.src != hostH {
		t.Fatalf("allocated %v:%d, want H with a port in 40001-40063", d.src, d.sport)
	}
	flows := e.flows(t)
	if f := flows[other.Tuple]; f.Translated != other.Translated {
		t.Errorf("the other flow's entry changed: %+v", f)
	}
	rep, ok := flows[maps.Tuple{Proto: 6, Src: ap(srvD, 443), Dst: ap(hostH, d.sport)}]
	if !ok || rep.Translated.Dst != ap(ipA, 40000) {
		t.Errorf("reply entry for the new port: %+v (found %v)", rep, ok)
	}
	st, err := e.views.NATStats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Retries[0] != 0 || st.Retries[1]+st.Retries[2]+st.Retries[3]+st.Retries[4]+st.Retries[5] != 1 {
		t.Errorf("retry histogram %v, want one allocation after retries", st.Retries)
	}
}

// Every candidate port is taken: the new flow is dropped and counted.
func TestSNATPortExhaustion(t *testing.T) {
	const min, max = 40000, 40015
	e := newNATEnv(t, envOpts{netns: true, loader: loader.Options{NATPortMin: min, NATPortMax: max}})
	for port := uint16(min); port <= max; port++ {
		putFlow(t, e, maps.Flow{Tuple: maps.Tuple{Proto: 17, Src: ap(srvD, 9053), Dst: ap(hostH, port)},
			Translated: maps.Tuple{Proto: 17, Src: ap(srvD, 9053), Dst: ap(ipB, port)},
			Peer:       maps.Tuple{Proto: 17, Src: ap(ipB, port), Dst: ap(srvD, 9053)},
			Kind:       maps.FlowSNAT, Reply: true, Ifindex: e.ifB, PeerIfindex: 0, LastSeen: maps.Monotonic()})
	}
	p := pkt{srcMAC: macA, dstMAC: macGW, src: ipA, dst: srvD, proto: layers.IPProtocolUDP, sport: 40005, dport: 9053}
	ret, _ := e.fromContainer(t, e.ifA, p.build(t))
	if ret != tcActShot {
		t.Fatalf("verdict %d, want TC_ACT_SHOT", ret)
	}
	if n := e.drops(t, "nat_exhausted"); n != 1 {
		t.Errorf("nat_exhausted drops = %d, want 1", n)
	}
	st, err := e.views.NATStats()
	if err != nil {
		t.Fatal(err)
	}
	if st.AllocFailures != 1 || st.Retries[loader.NATRetryBuckets-1] != 1 || st.Strained() != 1 {
		t.Errorf("NAT stats %+v, want one failure", st)
	}
	if n := len(e.flows(t)); n != max-min+1 {
		t.Errorf("%d entries, want only the %d pre-existing ones (no leaked reply entry)", n, max-min+1)
	}
	// Another destination port is a different tuple space: it still works.
	p.dport = 9054
	if ret, _ := e.fromContainer(t, e.ifA, p.build(t)); ret != tcActRedirect {
		t.Errorf("other destination: verdict %d, want TC_ACT_REDIRECT", ret)
	}
}

func TestSNATEdgeCases(t *testing.T) {
	base := pkt{srcMAC: macA, dstMAC: macGW, src: ipA, dst: srvD, proto: layers.IPProtocolUDP, sport: 40000, dport: 9053}
	t.Run("TTL 1 goes to the stack untranslated", func(t *testing.T) {
		e := newNATEnv(t, envOpts{netns: true})
		p := base
		p.ttl = 1
		in := p.build(t)
		ret, got := e.fromContainer(t, e.ifA, in)
		if ret != tcActOK || string(got) != string(in) {
			t.Fatalf("verdict %d, changed %v; want TC_ACT_OK unchanged", ret, string(got) != string(in))
		}
		if n := len(e.flows(t)); n != 0 {
			t.Errorf("%d conntrack entries, want 0", n)
		}
	})
	t.Run("reply with TTL 1 is dropped", func(t *testing.T) {
		e := newNATEnv(t, envOpts{netns: true})
		if ret, _ := e.fromContainer(t, e.ifA, base.build(t)); ret != tcActRedirect {
			t.Fatal(ret)
		}
		r := pkt{srcMAC: macRt, dstMAC: macUp, src: srvD, dst: hostH, proto: layers.IPProtocolUDP, sport: 9053, dport: 40000, ttl: 1}
		if ret, _ := e.fromUplink(t, r.build(t)); ret != tcActShot {
			t.Fatalf("verdict %d, want TC_ACT_SHOT", ret)
		}
		if n := e.drops(t, "ttl_exceeded"); n != 1 {
			t.Errorf("ttl_exceeded drops = %d", n)
		}
	})
	t.Run("fragment is dropped", func(t *testing.T) {
		e := newNATEnv(t, envOpts{netns: true})
		p := base
		p.flags = layers.IPv4MoreFragments
		if ret, _ := e.fromContainer(t, e.ifA, p.build(t)); ret != tcActShot {
			t.Fatalf("verdict %d, want TC_ACT_SHOT", ret)
		}
		if n := e.drops(t, "fragment"); n != 1 {
			t.Errorf("fragment drops = %d", n)
		}
	})
	t.Run("unknown neighbour uses redirect_neigh", func(t *testing.T) {
		e := newNATEnv(t, envOpts{netns: true})
		p := base
		p.dst = netip.MustParseAddr("198.18.0.77") // on-link, no neighbour entry
		ret, got := e.fromContainer(t, e.ifA, p.build(t))
		if ret != tcActRedirect {
			t.Fatalf("verdict %d", ret)
		}
		verifyChecksums(t, got)
		// MACs are left for the neighbour subsystem.
		decode(t, got).expect(t, macA, macGW, ap(hostH, 40000), ap(p.dst, 9053), 63)
	})
	t.Run("no masquerade: tracked, untranslated, replies let in", func(t *testing.T) {
		e := newNATEnv(t, envOpts{netns: true, noMasq: true})
		ret, got := e.fromContainer(t, e.ifA, base.build(t))
		if ret != tcActRedirect {
			t.Fatalf("verdict %d, want TC_ACT_REDIRECT", ret)
		}
		verifyChecksums(t, got)
		decode(t, got).expect(t, macUp, macRt, ap(ipA, 40000), ap(srvD, 9053), 63)
		flows := e.flows(t)
		if len(flows) != 2 {
			t.Fatalf("entries %v", flows)
		}
		for _, f := range flows {
			if f.Kind != maps.FlowRouted {
				t.Errorf("kind %v, want routed", f.Kind)
			}
		}
		r := pkt{srcMAC: macRt, dstMAC: macUp, src: srvD, dst: ipA, proto: layers.IPProtocolUDP, sport: 9053, dport: 40000}
		ret, got = e.fromUplink(t, r.build(t))
		if ret != tcActRedirect {
			t.Fatalf("reply verdict %d, want TC_ACT_REDIRECT", ret)
		}
		verifyChecksums(t, got)
		decode(t, got).expect(t, macGW, macA, ap(srvD, 9053), ap(ipA, 40000), 63)
	})
	t.Run("host address: to the stack", func(t *testing.T) {
		e := newNATEnv(t, envOpts{netns: true})
		p := base
		p.dst = hostH
		if ret, _ := e.fromContainer(t, e.ifA, p.build(t)); ret != tcActOK {
			t.Fatalf("verdict %d, want TC_ACT_OK", ret)
		}
		if n := len(e.flows(t)); n != 0 {
			t.Errorf("%d conntrack entries, want 0", n)
		}
	})
	t.Run("internal network", func(t *testing.T) {
		e := newNATEnv(t, envOpts{internal: true})
		if ret, _ := e.fromContainer(t, e.ifA, base.build(t)); ret != tcActShot {
			t.Fatalf("outside: verdict %d, want TC_ACT_SHOT", ret)
		}
		if n := e.drops(t, "internal_network"); n != 1 {
			t.Errorf("internal_network drops = %d", n)
		}
		p := base
		p.dst = gw1
		if ret, _ := e.fromContainer(t, e.ifA, p.build(t)); ret != tcActOK {
			t.Errorf("own gateway: verdict %d, want TC_ACT_OK", ret)
		}
	})
}
