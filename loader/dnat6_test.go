package loader_test

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

// Published ports over IPv6 (from_uplink's published6): the NAT66 tests'
// namespace (newNAT66Env: the uplink holds hostH6), B publishes 8080/tcp
// and 5353/udp on every address; srvD6 is the outside client.

func newDNAT6Env(t *testing.T) *natEnv {
	t.Helper()
	e := newNAT66Env(t, true)
	publish(t, e, maps.PortEntry{Proto: maps.ProtoTCP, HostPort: 8080, ContainerIP: ipB, ContainerPort: 80, Ifindex: e.ifB})
	publish(t, e, maps.PortEntry{Proto: maps.ProtoUDP, HostPort: 5353, ContainerIP: ipB, ContainerPort: 53, Ifindex: e.ifB})
	return e
}

func flows6(t *testing.T, e *natEnv) map[maps.Tuple]maps.Flow {
	t.Helper()
	fs, err := e.views.Flows6()
	return byTuple(t, fs, err)
}

// The client's SYN to hostH6:8080 goes into B as srvD6 -> ip6B:80, the
// client's address kept; B's SYN-ACK leaves as hostH6:8080 -> srvD6; the
// client's ACK follows the flow. Every byte and checksum checked apart
// from the program.
func TestDNAT6TCP(t *testing.T) {
	e := newDNAT6Env(t)
	ret, got := e.fromUplink(t, frame6(macRt, macUp, srvD6, hostH6, 60, nil, 6, tcp6(5555, 8080, tcpSYN, 0)))
	if ret != tcActRedirect {
		d, _ := e.views.Drops()
		t.Fatalf("SYN: verdict %d, want TC_ACT_REDIRECT (drops %v)", ret, d)
	}
	expectFrame6(t, "SYN in", got, frame6(macGW, macB, srvD6, ip6B, 59, nil, 6, tcp6(5555, 80, tcpSYN, 0)))
	if n := e.rx(t, e.ifB); n != 1 {
		t.Errorf("B received %d packets, want 1", n)
	}
	if n := e.verdictIn(t, loader.DirFromUplink, loader.VerdictDNAT); n != 1 {
		t.Errorf("dnat verdicts %d, want 1", n)
	}
	flows := flows6(t, e)
	fwdKey := maps.Tuple{Proto: 6, Src: netip.AddrPortFrom(srvD6, 5555), Dst: netip.AddrPortFrom(hostH6, 8080)}
	repKey := maps.Tuple{Proto: 6, Src: netip.AddrPortFrom(ip6B, 80), Dst: netip.AddrPortFrom(srvD6, 5555)}
	fwd, rep := flows[fwdKey], flows[repKey]
	if len(flows) != 2 || fwd.Kind != maps.FlowDNAT || rep.Kind != maps.FlowDNAT || fwd.Ifindex != e.ifB || rep.Ifindex != 0 ||
		fwd.Reply || !rep.Reply {
		t.Fatalf("conntrack6 entries %v", flows)
	}
	if fwd.Translated.Dst != netip.AddrPortFrom(ip6B, 80) || rep.Translated.Src != netip.AddrPortFrom(hostH6, 8080) {
		t.Errorf("rewrites: fwd %v rep %v", fwd.Translated, rep.Translated)
	}
	if len(e.flows(t)) != 0 || len(e.embryonic(t)) != 0 {
		t.Errorf("IPv4's tables written")
	}

	ret, got = e.fromContainer(t, e.ifB, frame6(macB, macGW, ip6B, srvD6, 64, nil, 6, tcp6(80, 5555, tcpSYNACK, 2)))
	if ret != tcActRedirect {
		d, _ := e.views.Drops()
		t.Fatalf("SYN-ACK: verdict %d, want TC_ACT_REDIRECT (drops %v)", ret, d)
	}
	expectFrame6(t, "SYN-ACK out", got, frame6(macUp, macRt, hostH6, srvD6, 63, nil, 6, tcp6(8080, 5555, tcpSYNACK, 2)))

	ret, got = e.fromUplink(t, frame6(macRt, macUp, srvD6, hostH6, 60, nil, 6, tcp6(5555, 8080, tcpACK, 2)))
	if ret != tcActRedirect {
		t.Fatalf("ACK: verdict %d, want TC_ACT_REDIRECT", ret)
	}
	expectFrame6(t, "ACK in", got, frame6(macGW, macB, srvD6, ip6B, 59, nil, 6, tcp6(5555, 80, tcpACK, 2)))
	if f := flows6(t, e)[fwdKey]; f.State != maps.StateSYN|maps.StateEstablished {
		t.Errorf("forward entry state %v, want syn,established", f.State)
	}
}

func TestDNAT6UDP(t *testing.T) {
	e := newDNAT6Env(t)
	ret, got := e.fromUplink(t, frame6(macRt, macUp, srvD6, hostH6, 60, nil, 17, udp6(40000, 5353, "query")))
	if ret != tcActRedirect {
		d, _ := e.views.Drops()
		t.Fatalf("datagram: verdict %d, want TC_ACT_REDIRECT (drops %v)", ret, d)
	}
	expectFrame6(t, "datagram in", got, frame6(macGW, macB, srvD6, ip6B, 59, nil, 17, udp6(40000, 53, "query")))
	ret, got = e.fromContainer(t, e.ifB, frame6(macB, macGW, ip6B, srvD6, 64, nil, 17, udp6(53, 40000, "answer")))
	if ret != tcActRedirect {
		t.Fatalf("answer: verdict %d, want TC_ACT_REDIRECT", ret)
	}
	expectFrame6(t, "answer out", got, frame6(macUp, macRt, hostH6, srvD6, 63, nil, 17, udp6(5353, 40000, "answer")))
	if n := len(flows6(t, e)); n != 2 {
		t.Errorf("%d conntrack6 entries, want 2", n)
	}
}

// What published6 leaves alone goes to the stack unchanged (it answers:
// RST, port unreachable), no flow made; a container's address from
// outside is still direct routing.
func TestDNAT6NotPublished(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, e *natEnv)
		frame []byte
	}{
		{"an unpublished port", nil, frame6(macRt, macUp, srvD6, hostH6, 60, nil, 6, tcp6(5555, 8081, tcpSYN, 0))},
		{"an unpublished protocol", nil, frame6(macRt, macUp, srvD6, hostH6, 60, nil, 17, udp6(5555, 8080, "x"))},
		{"an ACK without a flow", nil, frame6(macRt, macUp, srvD6, hostH6, 60, nil, 6, tcp6(5555, 8080, tcpACK, 2))},
		{"an address not the host's", nil, frame6(macRt, macUp, srvD6, netip.MustParseAddr("2001:db8:ff::9"), 60, nil, 6, tcp6(5555, 8080, tcpSYN, 0))},
		{"a link-local client", nil, frame6(macRt, macUp, netip.MustParseAddr("fe80::1"), hostH6, 60, nil, 6, tcp6(5555, 8080, tcpSYN, 0))},
		{"a port published on an IPv4 address", func(t *testing.T, e *natEnv) {
			publish(t, e, maps.PortEntry{Proto: maps.ProtoTCP, HostIP: hostH, HostPort: 9090, ContainerIP: ipB, ContainerPort: 90, Ifindex: e.ifB})
		}, frame6(macRt, macUp, srvD6, hostH6, 60, nil, 6, tcp6(5555, 9090, tcpSYN, 0))},
		{"a port published on 0.0.0.0 (IPv4 only)", func(t *testing.T, e *natEnv) {
			publish(t, e, maps.PortEntry{Proto: maps.ProtoTCP, HostIP: netip.IPv4Unspecified(), HostPort: 9191, ContainerIP: ipB, ContainerPort: 91, Ifindex: e.ifB})
		}, frame6(macRt, macUp, srvD6, hostH6, 60, nil, 6, tcp6(5555, 9191, tcpSYN, 0))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newDNAT6Env(t)
			if tc.setup != nil {
				tc.setup(t, e)
			}
			in := bytes.Clone(tc.frame)
			ret, got := e.fromUplink(t, in)
			if ret != tcActOK || !bytes.Equal(got, tc.frame) {
				d, _ := e.views.Drops()
				t.Fatalf("verdict %d, want TC_ACT_OK with the frame unchanged (drops %v):\n got %x\nwant %x", ret, d, got, tc.frame)
			}
			if n := len(flows6(t, e)); n != 0 {
				t.Errorf("%d conntrack6 entries, want 0", n)
			}
		})
	}

	t.Run("direct routing", func(t *testing.T) {
		e := newDNAT6Env(t)
		ret, _ := e.fromUplink(t, frame6(macRt, macUp, srvD6, ip6B, 60, nil, 6, tcp6(5555, 80, tcpSYN, 0)))
		expectRefused(t, e, ret, "direct_routing")
		if n := len(flows6(t, e)); n != 0 {
			t.Errorf("%d conntrack6 entries, want 0", n)
		}
	})
}

// The user firewall judges new IPv6 flows to published ports by their
// IPv6 source (fw_rules6) in IPv4's scope order: the port, the container's
// network, all; the longest prefix inside the scope decides. IPv4 entries,
// a 0/0 deny among them, never judge an IPv6 source. B (network 1)
// publishes 8080/tcp and 5353/udp.
func TestFirewall6(t *testing.T) {
	pfx := netip.MustParsePrefix
	port8080 := maps.FirewallScope{Kind: loader.FWScopePort, Proto: maps.ProtoTCP, Port: 8080}
	net1 := maps.FirewallScope{Kind: loader.FWScopeNetwork, NetID: 1}
	all := maps.FirewallScope{Kind: loader.FWScopeAll}
	rules := []maps.FirewallEntry{
		// 8080/tcp: an allow list with a hole, its ::/0 deny the control
		// plane's implied one; IPv4's list beside it.
		{Scope: port8080, Source: pfx("2001:db8:7::/48"), Allow: true},
		{Scope: port8080, Source: pfx("2001:db8:7:80::/64")},
		{Scope: port8080, Source: pfx("2001:db8:10::/48"), Allow: true},
		{Scope: port8080, Source: pfx("::/0")},
		{Scope: port8080, Source: pfx("198.18.7.0/24"), Allow: true},
		{Scope: port8080, Source: pfx("0.0.0.0/0")},
		// Network 1 denies a prefix; the port scope above wins for 8080.
		{Scope: net1, Source: pfx("2001:db8:10::/48")},
		// Every published port: one IPv6 prefix denied, and all of IPv4.
		{Scope: all, Source: pfx("2001:db8:66::/48")},
		{Scope: all, Source: pfx("0.0.0.0/0")},
	}
	for _, tc := range []struct {
		name    string
		src     string
		udp     bool
		allowed bool
	}{
		{"port scope allows", "2001:db8:7::5", false, true},
		{"longer deny prefix wins", "2001:db8:7:80::5", false, false},
		{"implied deny of an allow list", "2001:db8:9::9", false, false},
		{"port scope decides before the network scope", "2001:db8:10::1", false, true},
		{"network scope denies", "2001:db8:10::1", true, false},
		{"global deny reaches a port without rules", "2001:db8:66::1", true, false},
		{"port scope decides before the global scope", "2001:db8:66::1", false, false},
		{"no IPv6 rule matches: IPv4's 0/0 deny does not judge IPv6", "2001:db8:9::9", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newDNAT6Env(t)
			if err := e.views.SyncFirewall(rules); err != nil {
				t.Fatal(err)
			}
			if n, err := e.views.FirewallCount(); err != nil || int(n) != len(rules) {
				t.Fatalf("fw_count %d (%v), want %d: both families' entries", n, err, len(rules))
			}
			if got := e.fwEntries(t); len(got) != len(rules) {
				t.Fatalf("entries read back: %v", got)
			}
			if n := fwTrieLen(t, e.dp.Maps.FWRules6); n != 6 {
				t.Fatalf("fw_rules6 holds %d entries, want the 6 IPv6 ones", n)
			}
			src := netip.MustParseAddr(tc.src)
			in := frame6(macRt, macUp, src, hostH6, 60, nil, 6, tcp6(5555, 8080, tcpSYN, 0))
			want := frame6(macGW, macB, src, ip6B, 59, nil, 6, tcp6(5555, 80, tcpSYN, 0))
			if tc.udp {
				in = frame6(macRt, macUp, src, hostH6, 60, nil, 17, udp6(5555, 5353, "query"))
				want = frame6(macGW, macB, src, ip6B, 59, nil, 17, udp6(5555, 53, "query"))
			}
			ret, got := e.fromUplink(t, in)
			if !tc.allowed {
				expectRefused(t, e, ret, "firewall")
				if n := len(flows6(t, e)); n != 0 {
					t.Errorf("a refused flow left %d conntrack6 entries", n)
				}
				return
			}
			if ret != tcActRedirect {
				d, _ := e.views.Drops()
				t.Fatalf("verdict %d, want TC_ACT_REDIRECT (drops %v)", ret, d)
			}
			expectFrame6(t, "in", got, want)
			if n := e.drops(t, "firewall"); n != 0 {
				t.Errorf("drops[firewall] = %d", n)
			}
			if n := len(flows6(t, e)); n != 2 {
				t.Errorf("%d conntrack6 entries, want 2", n)
			}
		})
	}

	// Without rules the tries are skipped; a sync to nothing empties both.
	e := newDNAT6Env(t)
	if err := e.views.SyncFirewall(rules); err != nil {
		t.Fatal(err)
	}
	if err := e.views.SyncFirewall(nil); err != nil {
		t.Fatal(err)
	}
	if n, err := e.views.FirewallCount(); err != nil || n != 0 || fwTrieLen(t, e.dp.Maps.FWRules6) != 0 || fwTrieLen(t, e.dp.Maps.FWRules) != 0 {
		t.Fatalf("after a sync to no rules: count %d (%v), entries %v", n, err, e.fwEntries(t))
	}
	if ret, _ := e.fromUplink(t, frame6(macRt, macUp, pfx("2001:db8:9::9/128").Addr(), hostH6, 60, nil, 6, tcp6(5555, 8080, tcpSYN, 0))); ret != tcActRedirect {
		t.Fatalf("without rules: verdict %d, want TC_ACT_REDIRECT", ret)
	}
}

func fwTrieLen(t *testing.T, m *ebpf.Map) int {
	t.Helper()
	n := 0
	var k, v []byte
	it := m.Iterate()
	for it.Next(&k, &v) {
		n++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// An ICMPv6 error about a flow to a published port (Packet Too Big from a
// router towards the client, for path MTU discovery) goes into the
// container with the header it quotes translated back: the container's
// address and port as the source.
func TestDNAT6ICMPError(t *testing.T) {
	e := newDNAT6Env(t)
	if ret, _ := e.fromUplink(t, frame6(macRt, macUp, srvD6, hostH6, 60, nil, 6, tcp6(5555, 8080, tcpSYN, 0))); ret != tcActRedirect {
		t.Fatalf("SYN: verdict %d", ret)
	}
	ret, out := e.fromContainer(t, e.ifB, frame6(macB, macGW, ip6B, srvD6, 64, nil, 6, tcp6(80, 5555, tcpSYNACK, 2)))
	if ret != tcActRedirect {
		t.Fatalf("SYN-ACK: verdict %d", ret)
	}
	in := frame6(macRt, macUp, rtR6, hostH6, 64, nil, 58, icmp6Err(2, 0, 1280, out[14:]))
	ret, got := e.fromUplink(t, in)
	if ret != tcActRedirect {
		t.Fatalf("packet too big: verdict %d, want TC_ACT_REDIRECT", ret)
	}
	want := frame6(macGW, macB, rtR6, ip6B, 63, nil, 58, icmp6Err(2, 0, 1280, quoteAs(out, ip6B, 80)))
	if !bytes.Equal(got, want) || !l4OK6(got) {
		t.Errorf("packet too big (checksum right %v):\n got %x\nwant %x", l4OK6(got), got, want)
	}
}

// A port published on one IPv6 address (ports6) answers at that address,
// DNATed as one on every address is, and one on [::] at every address;
// published on another address, on [::1] (the host's own: never from a
// wire) or on 0.0.0.0 (IPv4 only), it is left to the stack.
func TestDNAT6OneAddress(t *testing.T) {
	e := newDNAT6Env(t)
	publish(t, e, maps.PortEntry{Proto: maps.ProtoTCP, HostIP: hostH6, HostPort: 8443, ContainerIP: ipB, ContainerPort: 443, Ifindex: e.ifB})
	publish(t, e, maps.PortEntry{Proto: maps.ProtoUDP, HostIP: hostH6, HostPort: 8053, ContainerIP: ipB, ContainerPort: 53, Ifindex: e.ifB})
	publish(t, e, maps.PortEntry{Proto: maps.ProtoTCP, HostIP: netip.IPv6Loopback(), HostPort: 8444, ContainerIP: ipB, ContainerPort: 444, Ifindex: e.ifB})
	publish(t, e, maps.PortEntry{Proto: maps.ProtoTCP, HostIP: netip.MustParseAddr("2001:db8:ff::9"), HostPort: 8445, ContainerIP: ipB, ContainerPort: 445, Ifindex: e.ifB})
	publish(t, e, maps.PortEntry{Proto: maps.ProtoTCP, HostIP: netip.IPv6Unspecified(), HostPort: 8446, ContainerIP: ipB, ContainerPort: 446, Ifindex: e.ifB})
	publish(t, e, maps.PortEntry{Proto: maps.ProtoTCP, HostIP: netip.IPv4Unspecified(), HostPort: 8447, ContainerIP: ipB, ContainerPort: 447, Ifindex: e.ifB})
	es, err := e.views.PortEntries()
	if err != nil || len(es) != 8 {
		t.Fatalf("PortEntries = %v, %v: want both tables' 8", es, err)
	}
	hostIPs := map[uint16]netip.Addr{}
	for _, b := range es {
		hostIPs[b.HostPort] = b.HostIP
	}
	if hostIPs[8080].IsValid() || hostIPs[8446] != netip.IPv6Unspecified() || hostIPs[8447] != netip.IPv4Unspecified() || hostIPs[8444] != netip.IPv6Loopback() {
		t.Errorf("host addresses read back: %v", hostIPs)
	}
	// [::] (IPv6 only) answers every IPv6 address of the host.
	ret, got := e.fromUplink(t, frame6(macRt, macUp, srvD6, hostH6, 60, nil, 6, tcp6(5556, 8446, tcpSYN, 0)))
	if ret != tcActRedirect {
		t.Fatalf("SYN to [::]'s port: verdict %d, want TC_ACT_REDIRECT", ret)
	}
	expectFrame6(t, "SYN in", got, frame6(macGW, macB, srvD6, ip6B, 59, nil, 6, tcp6(5556, 446, tcpSYN, 0)))

	ret, got = e.fromUplink(t, frame6(macRt, macUp, srvD6, hostH6, 60, nil, 6, tcp6(5555, 8443, tcpSYN, 0)))
	if ret != tcActRedirect {
		d, _ := e.views.Drops()
		t.Fatalf("SYN: verdict %d, want TC_ACT_REDIRECT (drops %v)", ret, d)
	}
	expectFrame6(t, "SYN in", got, frame6(macGW, macB, srvD6, ip6B, 59, nil, 6, tcp6(5555, 443, tcpSYN, 0)))
	ret, got = e.fromContainer(t, e.ifB, frame6(macB, macGW, ip6B, srvD6, 64, nil, 6, tcp6(443, 5555, tcpSYNACK, 2)))
	if ret != tcActRedirect {
		t.Fatalf("SYN-ACK: verdict %d, want TC_ACT_REDIRECT", ret)
	}
	expectFrame6(t, "SYN-ACK out", got, frame6(macUp, macRt, hostH6, srvD6, 63, nil, 6, tcp6(8443, 5555, tcpSYNACK, 2)))
	ret, got = e.fromUplink(t, frame6(macRt, macUp, srvD6, hostH6, 60, nil, 17, udp6(40000, 8053, "query")))
	if ret != tcActRedirect {
		t.Fatalf("datagram: verdict %d, want TC_ACT_REDIRECT", ret)
	}
	expectFrame6(t, "datagram in", got, frame6(macGW, macB, srvD6, ip6B, 59, nil, 17, udp6(40000, 53, "query")))

	for name, frame := range map[string][]byte{
		"[::1] from a wire":    frame6(macRt, macUp, srvD6, netip.IPv6Loopback(), 60, nil, 6, tcp6(5555, 8444, tcpSYN, 0)),
		"published on [::1]":   frame6(macRt, macUp, srvD6, hostH6, 60, nil, 6, tcp6(5555, 8444, tcpSYN, 0)),
		"published elsewhere":  frame6(macRt, macUp, srvD6, hostH6, 60, nil, 6, tcp6(5555, 8445, tcpSYN, 0)),
		"published on 0.0.0.0": frame6(macRt, macUp, srvD6, hostH6, 60, nil, 6, tcp6(5555, 8447, tcpSYN, 0)),
	} {
		ret, got := e.fromUplink(t, bytes.Clone(frame))
		if ret != tcActOK || !bytes.Equal(got, frame) {
			t.Errorf("%s: verdict %d, want TC_ACT_OK with the frame unchanged", name, ret)
		}
	}
	if n := len(flows6(t, e)); n != 6 {
		t.Errorf("%d conntrack6 entries, want the three flows' 6", n)
	}
}

// Hairpin over IPv6 (lib/hairpin6.h): A's SYN to hostH6:8080, published
// by B on every address, goes into B as gw6N1 -> ip6B:80 (A's port kept);
// B's SYN-ACK to the gateway comes back into A as hostH6:8080 -> ip6A.
// The flow is hairpin in conntrack6; from the uplink its tuple enters
// nothing. Every byte and checksum checked.
func TestHairpin6(t *testing.T) {
	e := newDNAT6Env(t)
	ret, got := e.fromContainer(t, e.ifA, frame6(macA, macGW, ip6A, hostH6, 64, nil, 6, tcp6(40000, 8080, tcpSYN, 0)))
	if ret != tcActRedirect {
		d, _ := e.views.Drops()
		t.Fatalf("SYN: verdict %d, want TC_ACT_REDIRECT (drops %v)", ret, d)
	}
	expectFrame6(t, "SYN into B", got, frame6(macGW, macB, gw6N1, ip6B, 63, nil, 6, tcp6(40000, 80, tcpSYN, 0)))
	gopacketChecksumOK6(t, got)
	flows := flows6(t, e)
	fwd := flows[maps.Tuple{Proto: 6, Src: netip.AddrPortFrom(ip6A, 40000), Dst: netip.AddrPortFrom(hostH6, 8080)}]
	rep := flows[maps.Tuple{Proto: 6, Src: netip.AddrPortFrom(ip6B, 80), Dst: netip.AddrPortFrom(gw6N1, 40000)}]
	if len(flows) != 2 || fwd.Kind != maps.FlowHairpin || rep.Kind != maps.FlowHairpin || fwd.Ifindex != e.ifB || rep.Ifindex != e.ifA {
		t.Fatalf("conntrack6 entries %v", flows)
	}

	ret, got = e.fromContainer(t, e.ifB, frame6(macB, macGW, ip6B, gw6N1, 64, nil, 6, tcp6(80, 40000, tcpSYNACK, 2)))
	if ret != tcActRedirect {
		t.Fatalf("SYN-ACK: verdict %d, want TC_ACT_REDIRECT", ret)
	}
	expectFrame6(t, "SYN-ACK into A", got, frame6(macGW, macA, hostH6, ip6A, 63, nil, 6, tcp6(8080, 40000, tcpSYNACK, 2)))
	gopacketChecksumOK6(t, got)
	ret, got = e.fromContainer(t, e.ifA, frame6(macA, macGW, ip6A, hostH6, 64, nil, 6, tcp6(40000, 8080, tcpACK, 2)))
	if ret != tcActRedirect {
		t.Fatalf("ACK: verdict %d, want TC_ACT_REDIRECT", ret)
	}
	expectFrame6(t, "ACK into B", got, frame6(macGW, macB, gw6N1, ip6B, 63, nil, 6, tcp6(40000, 80, tcpACK, 2)))

	// The same tuple from outside (A's address spoofed) enters nothing.
	if ret, _ := e.fromUplink(t, frame6(macRt, macUp, ip6A, hostH6, 60, nil, 6, tcp6(40000, 8080, tcpACK, 2))); ret == tcActRedirect {
		t.Error("a hairpin entry was entered from the uplink")
	}
	// An unpublished port, or an ACK without a flow: to the stack, untouched.
	for name, f := range map[string][]byte{
		"unpublished": frame6(macA, macGW, ip6A, hostH6, 64, nil, 6, tcp6(40001, 8081, tcpSYN, 0)),
		"no flow":     frame6(macA, macGW, ip6A, hostH6, 64, nil, 6, tcp6(40002, 8080, tcpACK, 2)),
	} {
		ret, got := e.fromContainer(t, e.ifA, bytes.Clone(f))
		if ret != tcActOK || !bytes.Equal(got, f) {
			t.Errorf("%s: verdict %d, want TC_ACT_OK with the frame unchanged", name, ret)
		}
	}
}
