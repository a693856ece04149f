package loader_test

import (
	"flag"
	"fmt"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

// BenchmarkPacketPath is the program side of issue 25's cost account
// (bench/README.md, "Profile"), without the rest of the kernel path: the
// ns our programs spend on the packets of one new TCP connection through a
// published port, and on one packet of the other common shapes, measured
// by the kernel's own BPF run-time statistics (so the test run's syscall
// and the packets' construction are not counted). Run:
//
//	go test -run - -bench PacketPath -benchtime 20000x ./loader/
//
// It reports prog-ns per unit (connection or packet) and runs per unit.
// It is no test: nothing here asserts a time, only the verdicts.
func BenchmarkPacketPath(b *testing.B) {
	for _, shape := range []string{"tcp-connection-dnat", "udp-dnat-in", "udp-dnat-reply-out", "tcp-masquerade-out", "tcp-masquerade-reply-in"} {
		// Each shape on a datapath of its own, set up on the goroutine that
		// runs it: the FIB lookups need its network namespace.
		b.Run(shape, func(b *testing.B) { perUnit(b, pathShapes(b)[shape]) })
	}
}

// pathShapes loads a datapath publishing 8080/tcp and 8080/udp on B:80
// (the default conntrack size) and returns the units of work of each shape.
func pathShapes(b *testing.B) map[string]func(i int) []step {
	// The default table size, as a host runs it: an LRU map full of
	// evictions costs what no benchmark flow meets.
	e := newNATEnv(b, envOpts{netns: true, loader: loader.Options{CTMapSize: loader.DefaultCTMapSize}})
	for _, proto := range []layers.IPProtocol{layers.IPProtocolTCP, layers.IPProtocolUDP} {
		if err := e.views.PutPortEntry(maps.PortEntry{Proto: uint8(proto), HostPort: 8080, ContainerIP: ipB, ContainerPort: 80, Ifindex: e.ifB}); err != nil {
			b.Fatal(err)
		}
	}
	in := func(p pkt) step {
		p.srcMAC, p.dstMAC, p.ttl = macRt, macUp, 60
		return step{e.up, e.ifUp, p.build(b)}
	}
	out := func(ifindex int, p pkt) step {
		p.srcMAC, p.dstMAC = macB, macGW
		if ifindex == e.ifA {
			p.srcMAC = macA
		}
		return step{e.prog, ifindex, p.build(b)}
	}
	tcp, udp := layers.IPProtocolTCP, layers.IPProtocolUDP
	data := []byte("GET / HTTP/1.0\r\n\r\n....") // 24 bytes, as the default payload

	// One connection C:port -> H:8080 -> B:80 as connrate makes it: the
	// client sends a request, the server answers and closes first.
	conn := func(port uint16) []step {
		c := func(flags string, seq, ack uint32, payload []byte) pkt {
			return pkt{src: cliC, dst: hostH, proto: tcp, sport: port, dport: 8080, tcpFlags: flags, seq: seq, ack: ack, payload: payload}
		}
		s := func(flags string, seq, ack uint32, payload []byte) pkt {
			return pkt{src: ipB, dst: cliC, proto: tcp, sport: 80, dport: port, tcpFlags: flags, seq: seq, ack: ack, payload: payload}
		}
		return []step{
			in(c("S", 1000, 0, []byte{})),
			out(e.ifB, s("SA", 5000, 1001, []byte{})),
			in(c("A", 1001, 5001, []byte{})),
			in(c("A", 1001, 5001, data)),
			out(e.ifB, s("A", 5001, 1025, []byte{})),
			out(e.ifB, s("A", 5001, 1025, data)),
			out(e.ifB, s("FA", 5025, 1025, []byte{})),
			in(c("A", 1025, 5026, []byte{})),
			in(c("FA", 1025, 5026, []byte{})),
			out(e.ifB, s("A", 5026, 1026, []byte{})),
		}
	}
	// Steady-state packets of flows already tracked.
	udpIn := in(pkt{src: cliC, dst: hostH, proto: udp, sport: 6000, dport: 8080, payload: data})
	udpOut := out(e.ifB, pkt{src: ipB, dst: cliC, proto: udp, sport: 80, dport: 6000, payload: data})
	masqOut := out(e.ifA, pkt{src: ipA, dst: srvD, proto: tcp, sport: 7000, dport: 80, tcpFlags: "A", seq: 1, ack: 1, payload: data})
	masqSYN := out(e.ifA, pkt{src: ipA, dst: srvD, proto: tcp, sport: 7000, dport: 80, tcpFlags: "S", seq: 0, payload: []byte{}})
	for _, s := range []step{udpIn, udpOut, masqSYN} {
		s.run(b)
	}
	masqIn := in(pkt{src: srvD, dst: hostH, proto: tcp, sport: 80, dport: masqPort(b, e), tcpFlags: "A", seq: 1, ack: 1, payload: data})
	one := func(s step) func(int) []step { return func(int) []step { return []step{s} } }
	return map[string]func(int) []step{
		// Ports cycle so the table holds at most 20000 closed flows.
		"tcp-connection-dnat": func(i int) []step { return conn(uint16(20000 + i%20000)) },
		"udp-dnat-in":         one(udpIn), "udp-dnat-reply-out": one(udpOut),
		"tcp-masquerade-out": one(masqOut), "tcp-masquerade-reply-in": one(masqIn),
	}
}

type step struct {
	prog    *ebpf.Program
	ingress int
	frame   []byte
}

func (s step) run(tb testing.TB) {
	tb.Helper()
	out := make([]byte, len(s.frame)+256)
	ret, err := s.prog.Run(&ebpf.RunOptions{Data: s.frame, DataOut: out, Context: loader.SkBuff{IngressIfindex: uint32(s.ingress)}, Repeat: 1})
	if err != nil {
		tb.Fatalf("BPF_PROG_TEST_RUN: %v", err)
	}
	if ret != tcActRedirect {
		tb.Fatalf("verdict %d, want TC_ACT_REDIRECT (ingress %d)", ret, s.ingress)
	}
}

// perUnit runs b.N units of steps and reports what the programs spent on
// them, per unit.
func perUnit(b *testing.B, unit func(i int) []step) {
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Skipf("BPF statistics: %v", err)
	}
	defer stats.Close()
	progs := map[*ebpf.Program]bool{}
	for _, s := range unit(0) {
		progs[s.prog] = true
	}
	read := func() (ns, runs uint64) {
		for p := range progs {
			st, err := p.Stats()
			if err != nil {
				b.Fatal(err)
			}
			ns += uint64(st.Runtime)
			runs += st.RunCount
		}
		return ns, runs
	}
	b.ResetTimer()
	ns0, runs0 := read()
	var stepNS []uint64
	for i := 0; i < b.N; i++ {
		for j, s := range unit(i) {
			if !*perStep {
				s.run(b)
				continue
			}
			st0, _ := s.prog.Stats()
			s.run(b)
			st1, _ := s.prog.Stats()
			for len(stepNS) <= j {
				stepNS = append(stepNS, 0)
			}
			stepNS[j] += uint64(st1.Runtime - st0.Runtime)
		}
	}
	ns1, runs1 := read()
	b.ReportMetric(float64(ns1-ns0)/float64(b.N), "prog-ns/unit")
	b.ReportMetric(float64(runs1-runs0)/float64(b.N), "runs/unit")
	for j, ns := range stepNS {
		b.ReportMetric(float64(ns)/float64(b.N), fmt.Sprintf("step%d-ns", j))
	}
}

// perStep logs each step's ns too (two more syscalls per step).
var perStep = flag.Bool("per-step", false, "BenchmarkPacketPath: log each step's ns")

// masqPort is the source port the masquerade gave A's flow to D:80.
func masqPort(b *testing.B, e *natEnv) uint16 {
	fs, err := e.views.Flows()
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range fs {
		if f.Tuple.Src.Addr() == srvD && f.Tuple.Dst.Addr() == hostH {
			return f.Tuple.Dst.Port()
		}
	}
	b.Fatal("no masqueraded flow")
	return 0
}
