package loader_test

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/vishvananda/netlink"

	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

// NAT66 masquerade (bpf/lib/nat6.h): the NAT tests' namespace with IPv6
// (setupNetns6: the uplink holds hostH6, the default route goes via rtR6),
// network 1 dual stack with masquerade, A and B on it; srvD6 outside.

func newNAT66Env(t *testing.T, masq bool) *natEnv {
	t.Helper()
	e := newNATEnv(t, envOpts{netns: true})
	setupNetns6(t, e.ifUp, true)
	addIPv6(t, e)
	if !masq {
		if err := e.views.PutNetwork(maps.Network{ID: 1, Subnet: subnet4N1, Gateway: gw1, GatewayMAC: macGW,
			BridgeIfindex: 50, ICC: true, Subnet6: subnet6N1, Gateway6: gw6N1}); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

var subnet4N1 = netip.MustParsePrefix("172.30.0.0/16")

// tcp6 is a TCP header without options: ports, seq 1, ack, flags.
func tcp6(sport, dport uint16, flags byte, ack uint32) []byte {
	h := binary.BigEndian.AppendUint16(nil, sport)
	h = binary.BigEndian.AppendUint16(h, dport)
	h = binary.BigEndian.AppendUint32(h, 1)
	h = binary.BigEndian.AppendUint32(h, ack)
	return append(h, 5<<4, flags, 0xfa, 0xf0, 0, 0, 0, 0)
}

func echoReply6(id, seq uint16) []byte {
	m := echo6(id, seq)
	m[0] = 129
	return m
}

const (
	tcpSYN    = 0x02
	tcpSYNACK = 0x12
	tcpACK    = 0x10
	tcpRST    = 0x04
)

// gopacketChecksumOK6 recomputes the upper-layer checksum of an IPv6
// frame with gopacket and compares it with the frame's.
func gopacketChecksumOK6(t *testing.T, f []byte) {
	t.Helper()
	pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	ip, ok := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	if !ok {
		t.Fatalf("no IPv6 in %x", f)
	}
	var got, want uint16
	var l4 gopacket.SerializableLayer
	var payload []byte
	switch l := pkt.TransportLayer().(type) {
	case *layers.TCP:
		got, payload = l.Checksum, l.LayerPayload()
		l.SetNetworkLayerForChecksum(ip)
		l4 = l
	case *layers.UDP:
		got, payload = l.Checksum, l.LayerPayload()
		l.SetNetworkLayerForChecksum(ip)
		l4 = l
	default:
		ic, ok := pkt.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
		if !ok {
			t.Fatalf("no TCP, UDP or ICMPv6 in %x", f)
		}
		got, payload = ic.Checksum, ic.LayerPayload()
		ic.SetNetworkLayerForChecksum(ip)
		l4 = ic
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, l4, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	switch pkt.TransportLayer().(type) {
	case *layers.TCP:
		want = binary.BigEndian.Uint16(b[16:])
	case *layers.UDP:
		want = binary.BigEndian.Uint16(b[6:])
	default:
		want = binary.BigEndian.Uint16(b[2:])
	}
	if got != want {
		t.Fatalf("checksum %#04x, gopacket computes %#04x: %x", got, want, f)
	}
}

// expectFrame6 checks a translated frame byte for byte against want (whose
// checksum frame6 computed) and its checksum with gopacket.
func expectFrame6(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s:\n got %x\nwant %x", what, got, want)
	}
	if !l4OK6(got) {
		t.Fatalf("%s: bad checksum", what)
	}
	gopacketChecksumOK6(t, got)
}

// TCP: the SYN leaves masqueraded, the SYN-ACK comes back into A, every
// byte and checksum as computed apart from the program.
func TestNAT66TCP(t *testing.T) {
	e := newNAT66Env(t, true)
	ret, got := e.fromContainer(t, e.ifA, frame6(macA, macGW, ip6A, srvD6, 64, nil, 6, tcp6(40000, 443, tcpSYN, 0)))
	if ret != tcActRedirect {
		d, _ := e.views.Drops()
		t.Fatalf("SYN: verdict %d, want TC_ACT_REDIRECT (drops %v)", ret, d)
	}
	expectFrame6(t, "SYN out", got, frame6(macUp, macRt, hostH6, srvD6, 63, nil, 6, tcp6(40000, 443, tcpSYN, 0)))

	ret, got = e.fromUplink(t, frame6(macRt, macUp, srvD6, hostH6, 50, nil, 6, tcp6(443, 40000, tcpSYNACK, 2)))
	if ret != tcActRedirect {
		t.Fatalf("SYN-ACK: verdict %d, want TC_ACT_REDIRECT", ret)
	}
	expectFrame6(t, "SYN-ACK in", got, frame6(macGW, macA, srvD6, ip6A, 49, nil, 6, tcp6(443, 40000, tcpSYNACK, 2)))
	if n := e.rx(t, e.ifA); n != 1 {
		t.Errorf("A received %d packets, want 1", n)
	}

	ret, got = e.fromContainer(t, e.ifA, frame6(macA, macGW, ip6A, srvD6, 64, nil, 6, tcp6(40000, 443, tcpACK, 2)))
	if ret != tcActRedirect {
		t.Fatalf("ACK: verdict %d", ret)
	}
	expectFrame6(t, "ACK out", got, frame6(macUp, macRt, hostH6, srvD6, 63, nil, 6, tcp6(40000, 443, tcpACK, 2)))

	flows, err := e.views.Flows6()
	if err != nil {
		t.Fatal(err)
	}
	if len(flows) != 2 {
		t.Fatalf("%d conntrack6 entries, want 2: %v", len(flows), flows)
	}
	for _, f := range flows {
		want := maps.Tuple{Proto: 6, Src: netip.AddrPortFrom(ip6A, 40000), Dst: netip.AddrPortFrom(srvD6, 443)}
		if f.Reply {
			want = maps.Tuple{Proto: 6, Src: netip.AddrPortFrom(srvD6, 443), Dst: netip.AddrPortFrom(hostH6, 40000)}
		}
		if f.Tuple != want || f.Kind != maps.FlowSNAT {
			t.Errorf("entry %v %v, want %v snat", f.Tuple, f.Kind, want)
		}
		if f.Reply && (f.Ifindex != e.ifA || f.State != maps.StateSYN) {
			t.Errorf("reply entry: ifindex %d state %v, want %d syn", f.Ifindex, f.State, e.ifA)
		}
		if !f.Reply && f.State != maps.StateSYN|maps.StateEstablished {
			t.Errorf("forward entry state %v, want syn,established", f.State)
		}
	}
	if s := flows[0].Tuple.String(); s != "tcp [fd00:1::2]:40000 -> [2001:db8::1]:443" && s != "tcp [2001:db8::1]:443 -> [2001:db8:ff::2]:40000" {
		t.Errorf("tuple written %q", s)
	}
	if n := e.verdictIn(t, loader.DirFromContainer, loader.VerdictSNAT); n != 2 {
		t.Errorf("snat verdicts %d, want 2", n)
	}
}

func TestNAT66UDPAndEcho(t *testing.T) {
	e := newNAT66Env(t, true)
	ret, got := e.fromContainer(t, e.ifA, frame6(macA, macGW, ip6A, srvD6, 64, nil, 17, udp6(5353, 53, "query")))
	if ret != tcActRedirect {
		t.Fatalf("UDP: verdict %d", ret)
	}
	expectFrame6(t, "UDP out", got, frame6(macUp, macRt, hostH6, srvD6, 63, nil, 17, udp6(5353, 53, "query")))
	ret, got = e.fromUplink(t, frame6(macRt, macUp, srvD6, hostH6, 64, nil, 17, udp6(53, 5353, "answer")))
	if ret != tcActRedirect {
		t.Fatalf("UDP reply: verdict %d", ret)
	}
	expectFrame6(t, "UDP in", got, frame6(macGW, macA, srvD6, ip6A, 63, nil, 17, udp6(53, 5353, "answer")))

	ret, got = e.fromContainer(t, e.ifA, frame6(macA, macGW, ip6A, srvD6, 64, nil, 58, echo6(0x1234, 1)))
	if ret != tcActRedirect {
		t.Fatalf("echo: verdict %d", ret)
	}
	expectFrame6(t, "echo out", got, frame6(macUp, macRt, hostH6, srvD6, 63, nil, 58, echo6(0x1234, 1)))
	ret, got = e.fromUplink(t, frame6(macRt, macUp, srvD6, hostH6, 64, nil, 58, echoReply6(0x1234, 1)))
	if ret != tcActRedirect {
		t.Fatalf("echo reply: verdict %d", ret)
	}
	expectFrame6(t, "echo reply in", got, frame6(macGW, macA, srvD6, ip6A, 63, nil, 58, echoReply6(0x1234, 1)))

	// B pings with the same id: another one outside, its reply to B.
	ret, got = e.fromContainer(t, e.ifB, frame6(macB, macGW, ip6B, srvD6, 64, nil, 58, echo6(0x1234, 1)))
	if ret != tcActRedirect {
		t.Fatalf("B's echo: verdict %d", ret)
	}
	id := binary.BigEndian.Uint16(got[54+4:])
	if id == 0x1234 {
		t.Fatal("B's echo kept the id A's flow holds")
	}
	expectFrame6(t, "B's echo out", got, frame6(macUp, macRt, hostH6, srvD6, 63, nil, 58, echo6(id, 1)))
	ret, got = e.fromUplink(t, frame6(macRt, macUp, srvD6, hostH6, 64, nil, 58, echoReply6(id, 1)))
	if ret != tcActRedirect {
		t.Fatalf("B's echo reply: verdict %d", ret)
	}
	expectFrame6(t, "B's echo reply in", got, frame6(macGW, macB, srvD6, ip6B, 63, nil, 58, echoReply6(0x1234, 1)))
}

// Two containers with the same source port to the same server get distinct
// ports outside, and each reply goes to its own container.
func TestNAT66DistinctPorts(t *testing.T) {
	e := newNAT66Env(t, true)
	ports := map[int]uint16{}
	for _, c := range []struct {
		ifindex int
		src     netip.Addr
	}{{e.ifA, ip6A}, {e.ifB, ip6B}} {
		mac := macA
		if c.ifindex == e.ifB {
			mac = macB
		}
		ret, got := e.fromContainer(t, c.ifindex, frame6(mac, macGW, c.src, srvD6, 64, nil, 6, tcp6(40000, 443, tcpSYN, 0)))
		if ret != tcActRedirect {
			t.Fatalf("SYN from %v: verdict %d", c.src, ret)
		}
		ports[c.ifindex] = binary.BigEndian.Uint16(got[54:])
		expectFrame6(t, "SYN out", got, frame6(macUp, macRt, hostH6, srvD6, 63, nil, 6, tcp6(ports[c.ifindex], 443, tcpSYN, 0)))
	}
	if ports[e.ifA] != 40000 || ports[e.ifB] == 40000 || ports[e.ifB] < loader.DefaultNATPortMin {
		t.Fatalf("ports A %d, B %d: want 40000 and another in range", ports[e.ifA], ports[e.ifB])
	}
	for _, c := range []struct {
		ifindex int
		mac     net.HardwareAddr
		ip      netip.Addr
	}{{e.ifA, macA, ip6A}, {e.ifB, macB, ip6B}} {
		ret, got := e.fromUplink(t, frame6(macRt, macUp, srvD6, hostH6, 64, nil, 6, tcp6(443, ports[c.ifindex], tcpSYNACK, 2)))
		if ret != tcActRedirect {
			t.Fatalf("SYN-ACK to port %d: verdict %d", ports[c.ifindex], ret)
		}
		expectFrame6(t, "SYN-ACK in", got, frame6(macGW, c.mac, srvD6, c.ip, 63, nil, 6, tcp6(443, 40000, tcpSYNACK, 2)))
	}
}

// What must not be translated, or not start a flow.
func TestNAT66Refuses(t *testing.T) {
	e := newNAT66Env(t, true)
	for _, tc := range []struct {
		name   string
		uplink bool
		frame  []byte
		want   uint32
		reason string
	}{
		{"a SYN-ACK without a flow", false, frame6(macA, macGW, ip6A, srvD6, 64, nil, 6, tcp6(40002, 443, tcpSYNACK, 9)), tcActShot, "no_flow"},
		{"an RST without a flow", false, frame6(macA, macGW, ip6A, srvD6, 64, nil, 6, tcp6(40003, 443, tcpRST, 0)), tcActShot, "no_flow"},
		{"an echo reply without a flow", false, frame6(macA, macGW, ip6A, srvD6, 64, nil, 58, echoReply6(7, 1)), tcActShot, "no_flow"},
		{"other ICMPv6 (no id to translate)", false, frame6(macA, macGW, ip6A, srvD6, 64, nil, 58, []byte{1, 4, 0, 0, 0, 0, 0, 0}), tcActShot, "ipv6_not_routed"},
		{"the host's own address", false, frame6(macA, macGW, ip6A, hostH6, 64, nil, 6, tcp6(40004, 22, tcpSYN, 0)), tcActOK, ""},
		{"unsolicited to a container", true, frame6(macRt, macUp, srvD6, ip6A, 64, nil, 6, tcp6(443, 40000, tcpSYN, 0)), tcActShot, "direct_routing"},
		{"unsolicited to the host", true, frame6(macRt, macUp, srvD6, hostH6, 64, nil, 6, tcp6(443, 40005, tcpSYNACK, 2)), tcActOK, ""},
	} {
		// No t.Run: the namespace is this goroutine's.
		var before uint64
		if tc.reason != "" {
			before = e.drops(t, tc.reason)
		}
		var ret uint32
		var got []byte
		if tc.uplink {
			ret, got = e.fromUplink(t, tc.frame)
		} else {
			ret, got = e.fromContainer(t, e.ifA, tc.frame)
		}
		if ret != tc.want {
			d, _ := e.views.Drops()
			t.Errorf("%s: verdict %d, want %d (drops %v)", tc.name, ret, tc.want, d)
			continue
		}
		if tc.reason != "" {
			if n := e.drops(t, tc.reason) - before; n != 1 {
				t.Errorf("%s: drops[%s] +%d, want +1", tc.name, tc.reason, n)
			}
		} else if !bytes.Equal(got, tc.frame) {
			t.Errorf("%s: passed frame changed:\n got %x\nwant %x", tc.name, got, tc.frame)
		}
	}
	if flows, err := e.views.Flows6(); err != nil || len(flows) != 0 {
		t.Fatalf("conntrack6 holds %v (%v), want nothing", flows, err)
	}
}

// Without masquerade (--ip-masquerade=false) IPv6 is routed as it is:
// TCP, UDP and echo leave with the container's own address and ports, hop
// limit decremented, tracked as routed so that their replies (and only
// those: direct routing protection) come back in.
func TestRouted6(t *testing.T) {
	e := newNAT66Env(t, false)
	out := []struct {
		name      string
		proto     byte
		l4, reply []byte
	}{
		{"tcp", 6, tcp6(40000, 443, tcpSYN, 0), tcp6(443, 40000, tcpSYNACK, 2)},
		{"udp", 17, udp6(40001, 53, "q"), udp6(53, 40001, "a")},
		{"echo", 58, echo6(7, 1), echoReply6(7, 1)},
	}
	for _, tc := range out {
		ret, got := e.fromContainer(t, e.ifA, frame6(macA, macGW, ip6A, srvD6, 64, nil, tc.proto, tc.l4))
		if ret != tcActRedirect {
			d, _ := e.views.Drops()
			t.Fatalf("%s out: verdict %d, want TC_ACT_REDIRECT (drops %v)", tc.name, ret, d)
		}
		expectFrame6(t, tc.name+" out", got, frame6(macUp, macRt, ip6A, srvD6, 63, nil, tc.proto, tc.l4))
		ret, got = e.fromUplink(t, frame6(macRt, macUp, srvD6, ip6A, 50, nil, tc.proto, tc.reply))
		if ret != tcActRedirect {
			d, _ := e.views.Drops()
			t.Fatalf("%s reply: verdict %d, want TC_ACT_REDIRECT (drops %v)", tc.name, ret, d)
		}
		expectFrame6(t, tc.name+" reply in", got, frame6(macGW, macA, srvD6, ip6A, 49, nil, tc.proto, tc.reply))
	}
	flows, err := e.views.Flows6()
	if err != nil {
		t.Fatal(err)
	}
	if len(flows) != 6 {
		t.Fatalf("%d conntrack6 entries, want 6: %v", len(flows), flows)
	}
	for _, f := range flows {
		if f.Kind != maps.FlowRouted {
			t.Errorf("entry %v: kind %v, want routed", f.Tuple, f.Kind)
		}
		if f.Reply != (f.Ifindex == e.ifA) {
			t.Errorf("entry %v (reply %v): ifindex %d, A is %d", f.Tuple, f.Reply, f.Ifindex, e.ifA)
		}
		if !f.Reply && f.Tuple.Src.Addr() != ip6A {
			t.Errorf("forward entry %v: source is not A's own address", f.Tuple)
		}
	}

	// What answers no flow of A's is still refused at the uplink.
	for _, f := range [][]byte{
		frame6(macRt, macUp, srvD6, ip6A, 64, nil, 6, tcp6(443, 40002, tcpSYN, 0)),
		frame6(macRt, macUp, srvD6, ip6A, 64, nil, 17, udp6(53, 40009, "x")),
	} {
		before := e.drops(t, "direct_routing")
		if ret, _ := e.fromUplink(t, f); ret != tcActShot || e.drops(t, "direct_routing") != before+1 {
			t.Fatalf("unsolicited: verdict %d, drops[direct_routing] %d, want +1", ret, e.drops(t, "direct_routing")-before)
		}
	}
	// Neither does a flow start with its answer, nor leave with hop limit 1
	// unanswered, nor leave in fragments.
	before := e.drops(t, "no_flow")
	if ret, _ := e.fromContainer(t, e.ifA, frame6(macA, macGW, ip6A, srvD6, 64, nil, 6, tcp6(40003, 443, tcpSYNACK, 2))); ret != tcActShot || e.drops(t, "no_flow") != before+1 {
		t.Fatalf("SYN-ACK out of nothing: verdict %d, want dropped as no_flow", ret)
	}
	if flows, _ := e.views.Flows6(); len(flows) != 6 {
		t.Fatalf("%d conntrack6 entries after the refusals, want 6", len(flows))
	}
}

// On a nat-unprotected network new IPv6 flows from outside reach the
// container's own address (Docker's gateway mode): tracked as routed, so
// its answers leave untranslated; what starts no flow is still dropped.
func TestUnprotected6(t *testing.T) {
	e := newNAT66Env(t, false)
	if err := e.views.PutNetwork(maps.Network{ID: 1, Subnet: subnet4N1, Gateway: gw1, GatewayMAC: macGW,
		BridgeIfindex: 50, ICC: true, Unprotected: true, Subnet6: subnet6N1, Gateway6: gw6N1}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		proto     byte
		in, reply []byte
	}{
		{"tcp", 6, tcp6(5555, 80, tcpSYN, 0), tcp6(80, 5555, tcpSYNACK, 2)},
		{"udp", 17, udp6(5556, 53, "q"), udp6(53, 5556, "a")},
		{"echo", 58, echo6(9, 1), echoReply6(9, 1)},
	} {
		ret, got := e.fromUplink(t, frame6(macRt, macUp, srvD6, ip6A, 64, nil, tc.proto, tc.in))
		if ret != tcActRedirect {
			d, _ := e.views.Drops()
			t.Fatalf("%s in: verdict %d, want TC_ACT_REDIRECT (drops %v)", tc.name, ret, d)
		}
		expectFrame6(t, tc.name+" in", got, frame6(macGW, macA, srvD6, ip6A, 63, nil, tc.proto, tc.in))
		ret, got = e.fromContainer(t, e.ifA, frame6(macA, macGW, ip6A, srvD6, 64, nil, tc.proto, tc.reply))
		if ret != tcActRedirect {
			d, _ := e.views.Drops()
			t.Fatalf("%s reply: verdict %d, want TC_ACT_REDIRECT (drops %v)", tc.name, ret, d)
		}
		expectFrame6(t, tc.name+" reply out", got, frame6(macUp, macRt, ip6A, srvD6, 63, nil, tc.proto, tc.reply))
	}
	flows, err := e.views.Flows6()
	if err != nil {
		t.Fatal(err)
	}
	if len(flows) != 6 {
		t.Fatalf("%d conntrack6 entries, want 6: %v", len(flows), flows)
	}
	for _, f := range flows {
		if f.Kind != maps.FlowRouted || f.Reply == (f.Ifindex == e.ifA) {
			t.Errorf("entry %v (reply %v): kind %v ifindex %d, want routed and A's ifindex on the forward entry", f.Tuple, f.Reply, f.Kind, f.Ifindex)
		}
	}
	for _, tc := range []struct {
		name, reason string
		frame        []byte
	}{
		{"an ACK of no flow", "no_flow", frame6(macRt, macUp, srvD6, ip6A, 64, nil, 6, tcp6(5557, 80, tcpACK, 2))},
		{"an echo reply of no flow", "no_flow", frame6(macRt, macUp, srvD6, ip6A, 64, nil, 58, echoReply6(3, 1))},
		{"hop limit 1", "ttl_exceeded", frame6(macRt, macUp, srvD6, ip6A, 1, nil, 6, tcp6(5558, 80, tcpSYN, 0))},
		{"a link-local source", "martian", frame6(macRt, macUp, netip.MustParseAddr("fe80::1"), ip6A, 64, nil, 6, tcp6(5559, 80, tcpSYN, 0))},
	} {
		before := e.drops(t, tc.reason)
		if ret, _ := e.fromUplink(t, tc.frame); ret != tcActShot || e.drops(t, tc.reason) != before+1 {
			t.Errorf("%s: verdict %d, drops[%s] +%d, want dropped", tc.name, ret, tc.reason, e.drops(t, tc.reason)-before)
		}
	}
	// An address of the subnet that no endpoint holds: the stack's (which
	// forwards no IPv6), untouched.
	f := frame6(macRt, macUp, srvD6, netip.MustParseAddr("fd00:1::99"), 64, nil, 6, tcp6(5560, 80, tcpSYN, 0))
	if ret, got := e.fromUplink(t, f); ret != tcActOK || !bytes.Equal(got, f) {
		t.Errorf("to no endpoint: verdict %d, frame changed %v", ret, !bytes.Equal(got, f))
	}
	if flows, _ := e.views.Flows6(); len(flows) != 6 {
		t.Errorf("%d conntrack6 entries after the refusals, want 6", len(flows))
	}
}

// The daemon's GC expires conntrack6's flows with IPv4's timeouts.
func TestNAT66GC(t *testing.T) {
	e := newNAT66Env(t, true)
	for _, sport := range []uint16{40000, 40001} {
		if ret, _ := e.fromContainer(t, e.ifA, frame6(macA, macGW, ip6A, srvD6, 64, nil, 17, udp6(sport, 53, "q"))); ret != tcActRedirect {
			t.Fatalf("UDP: verdict %d", ret)
		}
	}
	now := maps.Monotonic()
	if n, err := e.views.GC(now, maps.DefaultTimeouts); err != nil || n != 0 {
		t.Fatalf("GC of fresh flows: expired %d (%v), want 0", n, err)
	}
	// Age one flow's halves past the UDP timeout.
	flows, err := e.views.Flows6()
	if err != nil {
		t.Fatal(err)
	}
	old := now - maps.DefaultTimeouts.UDP - time.Second
	for _, f := range flows {
		if f.Tuple.Src.Port() == 40000 || f.Tuple.Dst.Port() == 40000 {
			f.LastSeen = old
			if err := e.views.PutFlow6(f); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n, err := e.views.GC(now, maps.DefaultTimeouts); err != nil || n != 1 {
		t.Fatalf("GC: expired %d (%v), want 1", n, err)
	}
	flows, _ = e.views.Flows6()
	if len(flows) != 2 {
		t.Fatalf("%d entries left, want the live flow's 2", len(flows))
	}
	for _, f := range flows {
		if f.Tuple.Src.Port() == 40000 || f.Tuple.Dst.Port() == 40000 {
			t.Fatalf("expired flow's entry %v left", f.Tuple)
		}
	}
}

// icmp6Err is an ICMPv6 error message of type typ (code, and the MTU or
// pointer word w) quoting the IPv6 packet q.
func icmp6Err(typ, code byte, w uint32, q []byte) []byte {
	m := binary.BigEndian.AppendUint32([]byte{typ, code, 0, 0}, w)
	return append(m, q...)
}

// quoteAs is the IPv6 packet of frame f with its source address src and
// source port (or echo id) port, its checksums left as they are: what a
// translated quote must become.
func quoteAs(f []byte, src netip.Addr, port uint16) []byte {
	q := append([]byte{}, f[14:]...)
	a := src.As16()
	copy(q[8:24], a[:])
	off := 40
	if q[6] == 58 {
		off += 4
	}
	binary.BigEndian.PutUint16(q[off:], port)
	return q
}

// ICMPv6 errors about a flow go back into its container with the header
// they quote translated (path MTU discovery needs Packet Too Big).
func TestNAT66ICMPErrors(t *testing.T) {
	e := newNAT66Env(t, true)
	out := map[string][]byte{}
	for _, c := range []struct {
		name    string
		ifindex int
		frame   []byte
	}{
		{"A tcp", e.ifA, frame6(macA, macGW, ip6A, srvD6, 64, nil, 6, tcp6(40000, 443, tcpSYN, 0))},
		{"B tcp", e.ifB, frame6(macB, macGW, ip6B, srvD6, 64, nil, 6, tcp6(40000, 443, tcpSYN, 0))},
		{"A echo", e.ifA, frame6(macA, macGW, ip6A, srvD6, 64, nil, 58, echo6(0x1234, 1))},
		{"B echo", e.ifB, frame6(macB, macGW, ip6B, srvD6, 64, nil, 58, echo6(0x1234, 1))},
		{"B udp", e.ifB, frame6(macB, macGW, ip6B, srvD6, 64, nil, 17, udp6(5353, 53, "query"))},
	} {
		ret, got := e.fromContainer(t, c.ifindex, c.frame)
		if ret != tcActRedirect {
			t.Fatalf("%s: verdict %d", c.name, ret)
		}
		out[c.name] = got
	}
	if binary.BigEndian.Uint16(out["B tcp"][54:]) == 40000 || binary.BigEndian.Uint16(out["B echo"][58:]) == 0x1234 {
		t.Fatal("B's flows kept A's port and id: the test would not show the quoted port translated")
	}
	for _, tc := range []struct {
		name      string
		from      netip.Addr
		typ, code byte
		w         uint32
		quoted    string
		to        netip.Addr
		mac       net.HardwareAddr
		port      uint16
	}{
		{"packet too big", rtR6, 2, 0, 1280, "B tcp", ip6B, macB, 40000},
		{"packet too big, A", rtR6, 2, 0, 1280, "A tcp", ip6A, macA, 40000},
		{"time exceeded", rtR6, 3, 0, 0, "B echo", ip6B, macB, 0x1234},
		{"port unreachable from the server", srvD6, 1, 4, 0, "B udp", ip6B, macB, 5353},
	} {
		in := frame6(macRt, macUp, tc.from, hostH6, 64, nil, 58, icmp6Err(tc.typ, tc.code, tc.w, out[tc.quoted][14:]))
		ret, got := e.fromUplink(t, in)
		if ret != tcActRedirect {
			t.Errorf("%s: verdict %d, want TC_ACT_REDIRECT", tc.name, ret)
			continue
		}
		want := frame6(macGW, tc.mac, tc.from, tc.to, 63, nil, 58, icmp6Err(tc.typ, tc.code, tc.w, quoteAs(out[tc.quoted], tc.to, tc.port)))
		if !bytes.Equal(got, want) || !l4OK6(got) {
			t.Errorf("%s (checksum right %v):\n got %x\nwant %x", tc.name, l4OK6(got), got, want)
		}
	}
	// About no flow: the host's, untouched.
	unknown := frame6(macUp, macRt, hostH6, srvD6, 63, nil, 6, tcp6(40999, 443, tcpSYN, 0))
	in := frame6(macRt, macUp, rtR6, hostH6, 64, nil, 58, icmp6Err(2, 0, 1280, unknown[14:]))
	if ret, got := e.fromUplink(t, in); ret != tcActOK || !bytes.Equal(got, in) {
		t.Errorf("an error about no flow: verdict %d, changed %v", ret, !bytes.Equal(got, in))
	}
}

// What cannot leave is answered by the container's gateway, as a router
// would, since the host does not forward IPv6 itself: time exceeded for
// hop limit 1, Packet Too Big past the uplink's MTU (path MTU discovery),
// for a new flow and for a tracked one; the quote is the packet's first
// 128 bytes.
func TestNAT66ErrorsToContainer(t *testing.T) {
	e := newNAT66Env(t, true)
	up, err := netlink.LinkByIndex(e.ifUp)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetMTU(up, 1280); err != nil {
		t.Fatal(err)
	}
	big := func(sport uint16, hop uint8) []byte {
		return frame6(macA, macGW, ip6A, srvD6, hop, nil, 17, udp6(sport, 53, strings.Repeat("x", 1400)))
	}
	answer := func(in []byte, typ byte, w uint32) []byte {
		q := in[14:]
		if len(q) > 128 {
			q = q[:128]
		}
		return frame6(macGW, macA, gw6N1, ip6A, 255, nil, 58, icmp6Err(typ, 0, w, q))
	}
	// A tracked flow: its first packet fits.
	if ret, _ := e.fromContainer(t, e.ifA, frame6(macA, macGW, ip6A, srvD6, 64, nil, 17, udp6(5000, 53, "q"))); ret != tcActRedirect {
		t.Fatalf("UDP: verdict %d", ret)
	}
	short := frame6(macA, macGW, ip6A, srvD6, 1, nil, 6, tcp6(40001, 443, tcpSYN, 0))
	for _, tc := range []struct {
		name string
		in   []byte
		want []byte
	}{
		{"hop limit 1, new flow", short, answer(short, 3, 0)},
		{"hop limit 1, tracked flow", frame6(macA, macGW, ip6A, srvD6, 1, nil, 17, udp6(5000, 53, "q")),
			answer(frame6(macA, macGW, ip6A, srvD6, 1, nil, 17, udp6(5000, 53, "q")), 3, 0)},
		{"too big, new flow", big(6000, 64), answer(big(6000, 64), 2, 1280)},
		{"too big, tracked flow", big(5000, 64), answer(big(5000, 64), 2, 1280)},
	} {
		ret, got := e.fromContainer(t, e.ifA, tc.in)
		if ret != tcActRedirect {
			d, _ := e.views.Drops()
			t.Errorf("%s: verdict %d, want TC_ACT_REDIRECT (drops %v)", tc.name, ret, d)
			continue
		}
		if !bytes.Equal(got, tc.want) || !l4OK6(got) {
			t.Errorf("%s (checksum right %v):\n got %x\nwant %x", tc.name, l4OK6(got), got, tc.want)
		}
	}
	// No flow was started by what did not leave.
	flows, err := e.views.Flows6()
	if err != nil || len(flows) != 2 {
		t.Fatalf("conntrack6 holds %d entries (%v), want the tracked flow's 2", len(flows), err)
	}
}

// Detach forgets a container's NAT66 flows (DeleteEndpointFlows, after the
// endpoint is gone), and only its.
func TestNAT66DetachForgetsFlows(t *testing.T) {
	e := newNAT66Env(t, true)
	for _, c := range []struct {
		ifindex int
		frame   []byte
	}{
		{e.ifA, frame6(macA, macGW, ip6A, srvD6, 64, nil, 17, udp6(5000, 53, "q"))},
		{e.ifB, frame6(macB, macGW, ip6B, srvD6, 64, nil, 17, udp6(5000, 53, "q"))},
	} {
		if ret, _ := e.fromContainer(t, c.ifindex, c.frame); ret != tcActRedirect {
			t.Fatalf("UDP: verdict %d", ret)
		}
	}
	if err := e.views.DeleteEndpoint(e.ifA, ipA); err != nil {
		t.Fatal(err)
	}
	n, err := e.views.DeleteEndpointFlows(ipA)
	if err != nil || n != 2 {
		t.Fatalf("DeleteEndpointFlows deleted %d entries (%v), want A's flow's 2", n, err)
	}
	flows, err := e.views.Flows6()
	if err != nil || len(flows) != 2 {
		t.Fatalf("%d entries left (%v), want B's 2", len(flows), err)
	}
	for _, f := range flows {
		if f.Tuple.Src.Addr() == ip6A || f.Translated.Dst.Addr() == ip6A {
			t.Errorf("A's entry %v left", f.Tuple)
		}
	}
}
