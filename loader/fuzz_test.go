package loader_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"runtime"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket/layers"

	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

// Property-based fuzzing of from_container and from_uplink through
// BPF_PROG_TEST_RUN (issue 15). Every input frame, whatever the fuzzer
// makes of it, must satisfy:
//
//  1. malformed (by wellFormed below, written apart from parse.h): dropped,
//     no conntrack entry;
//  2. spoofed source MAC/IP (from a container), an unpublished port, a
//     loopback destination or a container address (from the uplink): never
//     translated, no conntrack entry;
//  3. checksums: valid in, valid out; invalid in (IPv4 header or L4, a UDP
//     checksum 0 aside), invalid out: never laundered;
//  4. a translated packet is exactly reversible: its reply, run through
//     the other program, comes back as the original with addresses and
//     ports swapped, every other byte (payload, options, flags, IP id)
//     untouched but the TTL and the checksums;
//  5. conntrack stays consistent: every entry's peer exists, names it back
//     and undoes its rewrite.
//
// make test runs the seeds (testdata/fuzz and the f.Add calls); make fuzz
// explores for FUZZTIME per target.

// fuzzEnv runs the programs from one goroutine locked in the NAT test
// namespace (bpf_fib_lookup uses the caller's): fuzz inputs run on
// goroutines of their own.
type fuzzEnv struct {
	*natEnv
	reqs chan func()
}

func newFuzzEnv(f *testing.F, o envOpts) *fuzzEnv {
	fe := &fuzzEnv{reqs: make(chan func())}
	ready := make(chan *natEnv)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		ready <- newNATEnv(f, o)
		for fn := range fe.reqs {
			fn()
		}
	}()
	fe.natEnv = <-ready
	f.Cleanup(func() { close(fe.reqs) })
	return fe
}

func (fe *fuzzEnv) run(t *testing.T, prog *ebpf.Program, ifindex int, frame []byte) (uint32, []byte) {
	t.Helper()
	var ret uint32
	var out []byte
	var err error
	done := make(chan struct{})
	fe.reqs <- func() {
		defer close(done)
		buf := make([]byte, len(frame)+256)
		opts := ebpf.RunOptions{Data: frame, DataOut: buf, Context: loader.SkBuff{IngressIfindex: uint32(ifindex)}, Repeat: 1}
		ret, err = prog.Run(&opts)
		out = buf[:len(opts.DataOut)]
	}
	<-done
	if err != nil {
		// The kernel refuses frames shorter than an Ethernet header,
		// IPv4/IPv6 ones shorter than the fixed network header, and
		// frames beyond a page less its head and tail room.
		if len(frame) < 14+40 || len(frame) > 3000 {
			t.Skip("frame refused by BPF_PROG_TEST_RUN")
		}
		t.Fatalf("BPF_PROG_TEST_RUN: %v", err)
	}
	return ret, out
}

func (fe *fuzzEnv) reset(t *testing.T) {
	t.Helper()
	if _, err := fe.views.DeleteFlows(func(maps.Flow) bool { return true }); err != nil {
		t.Fatal(err)
	}
	if _, err := fe.views.DeleteFlows6(func(maps.Flow) bool { return true }); err != nil {
		t.Fatal(err)
	}
}

// wellFormed is parse.h's contract, written again from the RFCs.
func wellFormed(f []byte) bool {
	if len(f) < 14 {
		return false
	}
	if binary.BigEndian.Uint16(f[12:]) != 0x0800 {
		return true // not IPv4: the ethertype policy decides
	}
	ip := f[14:]
	if len(ip) < 20 || ip[0]>>4 != 4 {
		return false
	}
	ihl := int(ip[0]&0xf) * 4
	tot := int(binary.BigEndian.Uint16(ip[2:]))
	if ihl < 20 || ihl > len(ip) || tot < ihl || tot > len(ip) {
		return false
	}
	frag := binary.BigEndian.Uint16(ip[6:])
	off, mf := int(frag&0x1fff)*8, frag&0x2000 != 0
	plen := tot - ihl
	if frag&0x8000 != 0 || off+plen > 65535 || (mf && (plen == 0 || plen%8 != 0)) {
		return false
	}
	if off != 0 {
		return true
	}
	l4 := ip[ihl:tot]
	switch ip[9] {
	case 6:
		return len(l4) >= 20 && l4[12]>>4 >= 5 && int(l4[12]>>4)*4 <= len(l4)
	case 17:
		if len(l4) < 8 {
			return false
		}
		ulen := int(binary.BigEndian.Uint16(l4[4:]))
		return ulen == len(l4) || (mf && ulen >= len(l4))
	case 1:
		return len(l4) >= 8
	}
	return true
}

// csumState says whether a whole IPv4 packet's checksums are right: ip for
// the header, l4 for TCP/UDP/ICMP (true when there is none to check).
func csumState(f []byte) (ip, l4 bool) {
	hdr := f[14:]
	ihl := int(hdr[0]&0xf) * 4
	tot := int(binary.BigEndian.Uint16(hdr[2:]))
	ip = onesSum(0, hdr[:ihl]) == 0xffff
	seg := hdr[ihl:tot]
	proto := hdr[9]
	pseudo := func() uint32 {
		p := make([]byte, 12)
		copy(p, hdr[12:20])
		p[9] = proto
		binary.BigEndian.PutUint16(p[10:], uint16(len(seg)))
		return onesSum(0, p)
	}
	switch proto {
	case 6:
		return ip, onesSum(pseudo(), seg) == 0xffff
	case 17:
		return ip, binary.BigEndian.Uint16(seg[6:]) == 0 || onesSum(pseudo(), seg) == 0xffff
	case 1:
		return ip, onesSum(0, seg) == 0xffff
	}
	return ip, true
}

type tuple struct {
	src, dst     netip.Addr
	sport, dport uint16
	proto        uint8
}

// tupleOf reads a whole IPv4 TCP/UDP/ICMP echo packet's tuple (the echo
// id in sport).
func tupleOf(f []byte) (tuple, bool) {
	if len(f) < 34 || binary.BigEndian.Uint16(f[12:]) != 0x0800 {
		return tuple{}, false
	}
	ip := f[14:]
	ihl := int(ip[0]&0xf) * 4
	tp := tuple{src: netip.AddrFrom4([4]byte(ip[12:16])), dst: netip.AddrFrom4([4]byte(ip[16:20])), proto: ip[9]}
	if len(ip) < ihl+8 {
		return tp, false
	}
	l4 := ip[ihl:]
	switch tp.proto {
	case 6, 17:
		tp.sport, tp.dport = binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
	case 1:
		tp.sport = binary.BigEndian.Uint16(l4[4:])
	}
	return tp, true
}

// l4CsumOff is the offset of the L4 checksum in the frame, or -1.
func l4CsumOff(f []byte) int {
	ihl := int(f[14]&0xf) * 4
	switch f[14+9] {
	case 6:
		return 14 + ihl + 16
	case 17:
		return 14 + ihl + 6
	case 1:
		return 14 + ihl + 2
	}
	return -1
}

// sameBut compares two frames' IPv4 packets byte by byte, ignoring the
// TTL, the checksums and the bytes of addresses and ports (compared by the
// caller through their tuples).
func sameBut(a, b []byte) error {
	if len(a) != len(b) {
		return fmt.Errorf("length %d vs %d", len(a), len(b))
	}
	ihl := int(a[14]&0xf) * 4
	skip := map[int]bool{14 + 8: true, 14 + 10: true, 14 + 11: true}
	for i := 14 + 12; i < 14+20; i++ {
		skip[i] = true
	}
	if off := l4CsumOff(a); off >= 0 {
		skip[off], skip[off+1] = true, true
	}
	switch a[14+9] {
	case 6, 17:
		for i := 14 + ihl; i < 14+ihl+4; i++ {
			skip[i] = true
		}
	case 1:
		skip[14+ihl+4], skip[14+ihl+5] = true, true
		skip[14+ihl] = true // echo type: request one way, reply the other
	}
	for i := 14; i < len(a); i++ {
		if !skip[i] && a[i] != b[i] {
			return fmt.Errorf("byte %d differs: %#x vs %#x", i, a[i], b[i])
		}
	}
	return nil
}

// replyTo turns a translated frame into the packet its peer would answer
// with: addresses and ports swapped in place (which keeps every checksum
// as right or wrong as it was), an echo request made a reply (checksum
// patched incrementally).
func replyTo(out []byte, srcMAC, dstMAC []byte) []byte {
	r := append([]byte{}, out...)
	copy(r[0:6], dstMAC)
	copy(r[6:12], srcMAC)
	ip := r[14:]
	var a [4]byte
	copy(a[:], ip[12:16])
	copy(ip[12:16], ip[16:20])
	copy(ip[16:20], a[:])
	// A fresh TTL: the peer's own packet. Patched like the type below.
	ttlWord := binary.BigEndian.Uint16(ip[8:])
	ip[8] = 64
	patch16(ip[10:], ttlWord, binary.BigEndian.Uint16(ip[8:]))
	ihl := int(ip[0]&0xf) * 4
	l4 := ip[ihl:]
	switch ip[9] {
	case 6, 17:
		var p [2]byte
		copy(p[:], l4[0:2])
		copy(l4[0:2], l4[2:4])
		copy(l4[2:4], p[:])
	case 1:
		if l4[0] == 8 {
			old := binary.BigEndian.Uint16(l4)
			l4[0] = 0
			patch16(l4[2:], old, binary.BigEndian.Uint16(l4))
		}
	}
	return r
}

// patch16 updates the checksum at csum for a 16-bit word changed from old
// to new, RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'). A wrong checksum stays
// wrong.
func patch16(csum []byte, old, new uint16) {
	sum := uint32(^binary.BigEndian.Uint16(csum)) + uint32(^old) + uint32(new)
	sum = sum&0xffff + sum>>16
	sum = sum&0xffff + sum>>16
	binary.BigEndian.PutUint16(csum, ^uint16(sum))
}

func checkConntrack(t *testing.T, e *natEnv) {
	t.Helper()
	flows := e.flows(t)
	for k, f := range flows {
		p, ok := flows[f.Peer]
		if !ok {
			t.Fatalf("entry %v: peer %v missing", k, f.Peer)
		}
		if p.Peer != k || p.Kind != f.Kind || p.Reply == f.Reply {
			t.Fatalf("entry %v and its peer %v disagree: %+v / %+v", k, f.Peer, f, p)
		}
		// The peer's rewrite restores this direction's tuple, reversed.
		if p.Translated.Src != k.Dst || p.Translated.Dst != k.Src || f.Translated.Src != p.Tuple.Dst || f.Translated.Dst != p.Tuple.Src {
			t.Fatalf("rewrites of %v and %v do not undo each other: %+v / %+v", k, f.Peer, f, p)
		}
	}
}

// checkCsums asserts property 3 for an input and its translated output.
func checkCsums(t *testing.T, in, out []byte) {
	t.Helper()
	ipIn, l4In := csumState(in)
	ipOut, l4Out := csumState(out)
	if ipIn != ipOut {
		t.Fatalf("IPv4 header checksum valid %v in, %v out:\n in %x\nout %x", ipIn, ipOut, in, out)
	}
	if l4In != l4Out {
		t.Fatalf("L4 checksum valid %v in, %v out:\n in %x\nout %x", l4In, l4Out, in, out)
	}
}

func whole(f []byte) bool {
	return binary.BigEndian.Uint16(f[14+6:])&0x3fff == 0
}

func seedFrames(t testing.TB, fromContainer bool) [][]byte {
	var seeds []pkt
	if fromContainer {
		for _, p := range []pkt{
			{proto: layers.IPProtocolTCP, sport: 40000, dport: 443, tcpFlags: "S"},
			{proto: layers.IPProtocolTCP, sport: 40001, dport: 80, tcpFlags: "A", payload: []byte("GET / HTTP/1.1\r\n\r\n")},
			{proto: layers.IPProtocolUDP, sport: 40000, dport: 53},
			{proto: layers.IPProtocolUDP, sport: 40002, dport: 53, zeroUDPCsum: true},
			{proto: layers.IPProtocolICMPv4, sport: 77},
			{proto: layers.IPProtocolUDP, sport: 40000, dport: 53, flags: layers.IPv4MoreFragments},
			{proto: layers.IPProtocolUDP, sport: 40000, dport: 53, ttl: 1},
		} {
			p.srcMAC, p.dstMAC, p.src, p.dst = macA, macGW, ipA, srvD
			seeds = append(seeds, p)
		}
		// To B directly and to B's published port via the host.
		seeds = append(seeds, pkt{srcMAC: macA, dstMAC: macB, src: ipA, dst: ipB, proto: layers.IPProtocolUDP, sport: 1, dport: 2},
			pkt{srcMAC: macA, dstMAC: macGW, src: ipA, dst: hostH, proto: layers.IPProtocolTCP, sport: 33000, dport: 8080, tcpFlags: "S"})
	} else {
		for _, p := range []pkt{
			{proto: layers.IPProtocolTCP, sport: 5555, dport: 8080, tcpFlags: "S"},
			{proto: layers.IPProtocolTCP, sport: 5556, dport: 8080, tcpFlags: "A", payload: []byte("hello")},
			{proto: layers.IPProtocolUDP, sport: 5555, dport: 5353},
			{proto: layers.IPProtocolUDP, sport: 5555, dport: 5353, zeroUDPCsum: true},
			{proto: layers.IPProtocolTCP, sport: 5555, dport: 8081, tcpFlags: "S"},
			{proto: layers.IPProtocolICMPv4, sport: 9},
		} {
			p.srcMAC, p.dstMAC, p.src, p.dst = macRt, macUp, cliC, hostH
			seeds = append(seeds, p)
		}
		seeds = append(seeds,
			pkt{srcMAC: macRt, dstMAC: macUp, src: cliC, dst: netip.MustParseAddr("127.0.0.1"), proto: layers.IPProtocolTCP, sport: 5555, dport: 9000, tcpFlags: "S"},
			pkt{srcMAC: macRt, dstMAC: macUp, src: cliC, dst: ipB, proto: layers.IPProtocolUDP, sport: 5555, dport: 53})
	}
	var out [][]byte
	for _, p := range seeds {
		out = append(out, p.build(t))
	}
	return out
}

func publishFuzzPorts(t testing.TB, e *natEnv) {
	for _, b := range []maps.PortEntry{
		{Proto: maps.ProtoTCP, HostPort: 8080, ContainerIP: ipB, ContainerPort: 80, Ifindex: e.ifB},
		{Proto: maps.ProtoUDP, HostPort: 5353, ContainerIP: ipB, ContainerPort: 53, Ifindex: e.ifB},
		{Proto: maps.ProtoTCP, HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 9000, ContainerIP: ipB, ContainerPort: 90, Ifindex: e.ifB},
	} {
		if err := e.views.PutPortEntry(b); err != nil {
			t.Fatal(err)
		}
	}
}

// published reports the binding a frame from outside may be DNATed by.
func publishedFor(tp tuple) (netip.AddrPort, bool) {
	if tp.dst != hostH {
		return netip.AddrPort{}, false
	}
	switch {
	case tp.proto == 6 && tp.dport == 8080:
		return netip.AddrPortFrom(ipB, 80), true
	case tp.proto == 17 && tp.dport == 5353:
		return netip.AddrPortFrom(ipB, 53), true
	}
	return netip.AddrPort{}, false
}

func FuzzFromContainer(f *testing.F) {
	e := newFuzzEnv(f, envOpts{netns: true})
	publishFuzzPorts(f, e.natEnv)
	e.dualStack(f) // IPv6: checkFuzz6
	for _, s := range append(seedFrames(f, true), seedFrames6()...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		e.reset(t)
		in = append([]byte{}, in...)
		drops, err := e.views.Drops()
		if err != nil {
			t.Fatal(err)
		}
		ret, out := e.run(t, e.prog, e.ifA, in)
		flows := e.flows(t)
		tin, okIn := tupleOf(in)
		spoofed := len(in) < 14 || !bytes.Equal(in[6:12], macA) || (okIn && binary.BigEndian.Uint16(in[12:]) == 0x0800 && tin.src != ipA)
		if !wellFormed(in) || spoofed {
			if ret != tcActShot || len(flows) != 0 {
				t.Fatalf("malformed %v / spoofed %v frame: verdict %d, %d conntrack entries, want dropped and none\n%x",
					!wellFormed(in), spoofed, ret, len(flows), in)
			}
			return
		}
		if binary.BigEndian.Uint16(in[12:]) == 0x86dd {
			checkFuzz6(t, e, in, out, ret, drops)
			return
		}
		if binary.BigEndian.Uint16(in[12:]) != 0x0800 || ret != tcActRedirect {
			if len(flows) != 0 && ret != tcActRedirect {
				t.Fatalf("verdict %d but %d conntrack entries", ret, len(flows))
			}
			return
		}
		checkConntrack(t, e.natEnv)
		tout, _ := tupleOf(out)
		if tout == tin {
			// Forwarded to B untranslated: not one IP byte changed.
			if !bytes.Equal(out[14:], in[14:]) {
				t.Fatalf("forwarded frame changed:\n in %x\nout %x", in, out)
			}
			return
		}
		if whole(in) {
			checkCsums(t, in, out)
		}
		if err := sameBut(in, out); err != nil {
			t.Fatalf("translation changed more than addresses, ports, TTL and checksums: %v\n in %x\nout %x", err, in, out)
		}
		if tin.proto == 1 && in[14+int(in[14]&0xf)*4] != 8 {
			return // an echo reply has no reply to round-trip
		}
		if tout.dst == ipB { // hairpin: B answers through from_container
			reply := replyTo(out, macB, macGW)
			ret, back := e.run(t, e.prog, e.ifB, reply)
			expectReversed(t, ret, in, back, tin)
			return
		}
		if tout.src != hostH || tout.dst != tin.dst {
			t.Fatalf("SNAT output %v for %v", tout, tin)
		}
		reply := replyTo(out, macRt, macUp)
		ret, back := e.run(t, e.up, e.ifUp, reply)
		expectReversed(t, ret, in, back, tin)
		checkConntrack(t, e.natEnv)
	})
}

// expectReversed checks that back, the translated reply to the
// translation of in, is in reversed, byte for byte but TTL and checksums.
func expectReversed(t *testing.T, ret uint32, in, back []byte, tin tuple) {
	t.Helper()
	if ret != tcActRedirect {
		t.Fatalf("reply verdict %d, want TC_ACT_REDIRECT\n in %x", ret, in)
	}
	tb, _ := tupleOf(back)
	want := tuple{src: tin.dst, dst: tin.src, sport: tin.dport, dport: tin.sport, proto: tin.proto}
	if tin.proto == 1 {
		want.sport, want.dport = tin.sport, 0
	}
	if tb != want {
		t.Fatalf("reply arrives as %v, want %v", tb, want)
	}
	if whole(in) {
		checkCsums(t, in, back)
	}
	if err := sameBut(in, back); err != nil {
		t.Fatalf("round trip changed the packet: %v\n in %x\nback %x", err, in, back)
	}
}

func FuzzFromUplink(f *testing.F) {
	e := newFuzzEnv(f, envOpts{netns: true})
	publishFuzzPorts(f, e.natEnv)
	for _, s := range seedFrames(f, false) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		e.reset(t)
		in = append([]byte{}, in...)
		ret, out := e.run(t, e.up, e.ifUp, in)
		flows := e.flows(t)
		if !wellFormed(in) {
			if ret != tcActShot || len(flows) != 0 {
				t.Fatalf("malformed frame: verdict %d, %d conntrack entries, want dropped and none\n%x", ret, len(flows), in)
			}
			return
		}
		tin, ok := tupleOf(in)
		if !ok || binary.BigEndian.Uint16(in[12:]) != 0x0800 {
			if ret == tcActRedirect || len(flows) != 0 {
				t.Fatalf("verdict %d, %d entries for %x", ret, len(flows), in)
			}
			return
		}
		target, pub := publishedFor(tin)
		if ret != tcActRedirect {
			if len(flows) != 0 {
				t.Fatalf("verdict %d but %d conntrack entries", ret, len(flows))
			}
			return
		}
		// Nothing is tracked before the frame: a redirect is a DNAT to a
		// published port, of a whole first packet.
		if !pub || !whole(in) {
			t.Fatalf("translated a frame for an unpublished port %v (whole %v):\n in %x\nout %x", tin, whole(in), in, out)
		}
		checkConntrack(t, e.natEnv)
		tout, _ := tupleOf(out)
		if tout.src != tin.src || tout.sport != tin.sport || netip.AddrPortFrom(tout.dst, tout.dport) != target {
			t.Fatalf("DNAT output %v for %v, want to %v", tout, tin, target)
		}
		checkCsums(t, in, out)
		if err := sameBut(in, out); err != nil {
			t.Fatalf("translation changed more than addresses, ports, TTL and checksums: %v\n in %x\nout %x", err, in, out)
		}
		if len(out) > 14+1500 {
			return // the reply would exceed the uplink's MTU (trailing bytes past the IP total length)
		}
		if tin.src == netip.MustParseAddr("198.18.0.255") {
			return // the uplink subnet's broadcast: the FIB will not route the reply (the stack gets it)
		}
		reply := replyTo(out, macB, macGW)
		ret, back := e.run(t, e.prog, e.ifB, reply)
		if ret != tcActRedirect {
			d, _ := e.views.Drops()
			t.Fatalf("reply verdict %d (drops %v)\n in %x\nreply %x", ret, d, in, reply)
		}
		tb, _ := tupleOf(back)
		if want := (tuple{src: tin.dst, dst: tin.src, sport: tin.dport, dport: tin.sport, proto: tin.proto}); tb != want {
			t.Fatalf("reply leaves as %v, want %v", tb, want)
		}
		checkCsums(t, in, back)
		if err := sameBut(in, back); err != nil {
			t.Fatalf("round trip changed the packet: %v\n in %x\nback %x", err, in, back)
		}
		checkConntrack(t, e.natEnv)
	})
}
