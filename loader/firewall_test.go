package loader_test

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket/layers"

	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

// Issue 9 item 5: the user firewall (bpf/lib/firewall.h) judges the source
// of new flows from an uplink before DNAT.
func TestFirewall(t *testing.T) {
	pfx := netip.MustParsePrefix
	port8080 := maps.FirewallScope{Kind: loader.FWScopePort, Proto: maps.ProtoTCP, Port: 8080}
	net1 := maps.FirewallScope{Kind: loader.FWScopeNetwork, NetID: 1}
	all := maps.FirewallScope{Kind: loader.FWScopeAll}
	rules := []maps.FirewallEntry{
		// 8080/tcp: an allow list with a hole in it; the 0/0 deny is
		// what the control plane adds to a scope with an allow rule.
		{Scope: port8080, Source: pfx("198.18.7.0/24"), Allow: true},
		{Scope: port8080, Source: pfx("198.18.7.128/25")},
		{Scope: port8080, Source: pfx("0.0.0.0/0")},
		// Network 1 denies two prefixes; the port scope above wins for 8080.
		{Scope: net1, Source: pfx("198.18.7.0/24")},
		{Scope: net1, Source: pfx("198.18.10.0/24")},
		// Every published port: one denied prefix.
		{Scope: all, Source: pfx("203.0.113.0/24")},
	}
	for _, tc := range []struct {
		name    string
		src     string
		proto   layers.IPProtocol
		dport   uint16
		allowed bool
	}{
		{"port scope allows", "198.18.7.7", layers.IPProtocolTCP, 8080, true},
		{"longer deny prefix wins", "198.18.7.200", layers.IPProtocolTCP, 8080, false},
		{"implied deny of an allow list", "198.18.9.9", layers.IPProtocolTCP, 8080, false},
		{"global deny reaches a port without rules", "203.0.113.5", layers.IPProtocolTCP, 9090, false},
		{"port scope decides before the global scope", "203.0.113.5", layers.IPProtocolTCP, 8080, false},
		{"network scope denies", "198.18.7.7", layers.IPProtocolTCP, 9090, false},
		{"network scope, other prefix", "198.18.10.1", layers.IPProtocolUDP, 9090, false},
		{"no rule matches", "198.18.9.9", layers.IPProtocolTCP, 9090, true},
		{"port scope is per protocol", "198.18.9.9", layers.IPProtocolUDP, 8080, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newNATEnv(t, envOpts{netns: true})
			for _, p := range []uint8{maps.ProtoTCP, maps.ProtoUDP} {
				publish(t, e, maps.PortEntry{Proto: p, HostPort: 8080, ContainerIP: ipB, ContainerPort: 80, Ifindex: e.ifB})
				publish(t, e, maps.PortEntry{Proto: p, HostPort: 9090, ContainerIP: ipA, ContainerPort: 90, Ifindex: e.ifA})
			}
			if err := e.views.SyncFirewall(rules); err != nil {
				t.Fatal(err)
			}
			src := netip.MustParseAddr(tc.src)
			in := pkt{srcMAC: macRt, dstMAC: macUp, src: src, dst: hostH, proto: tc.proto, sport: 5555, dport: tc.dport, tcpFlags: "S", ttl: 60}
			ret, got := e.fromUplink(t, in.build(t))
			if !tc.allowed {
				expectRefused(t, e, ret, "firewall")
				if n := len(e.embryonic(t)); n != 0 {
					t.Errorf("a refused SYN left %d embryonic entries", n)
				}
				return
			}
			if ret != tcActRedirect {
				t.Fatalf("verdict %d, want TC_ACT_REDIRECT", ret)
			}
			verifyChecksums(t, got)
			mac, to := macB, ap(ipB, 80)
			if tc.dport == 9090 {
				mac, to = macA, ap(ipA, 90)
			}
			decode(t, got).expect(t, macGW, mac, ap(src, 5555), to, 59)
			if n := e.drops(t, "firewall"); n != 0 {
				t.Errorf("drops[firewall] = %d", n)
			}
		})
	}
}

// A rule added while a flow is open does not cut it (DOCKER-USER behind
// conntrack's ESTABLISHED accept): only new flows are judged.
func TestFirewallJudgesOnlyNewFlows(t *testing.T) {
	e := newNATEnv(t, envOpts{netns: true})
	publish(t, e, maps.PortEntry{Proto: maps.ProtoTCP, HostPort: 8080, ContainerIP: ipB, ContainerPort: 80, Ifindex: e.ifB})
	syn := pkt{srcMAC: macRt, dstMAC: macUp, src: cliC, dst: hostH, proto: layers.IPProtocolTCP, sport: 5555, dport: 8080, tcpFlags: "S", ttl: 60}
	if ret, _ := e.fromUplink(t, syn.build(t)); ret != tcActRedirect {
		t.Fatalf("SYN verdict %d before any rule", ret)
	}
	deny := []maps.FirewallEntry{{Scope: maps.FirewallScope{Kind: loader.FWScopeAll}, Source: netip.PrefixFrom(cliC, 32)}}
	if err := e.views.SyncFirewall(deny); err != nil {
		t.Fatal(err)
	}
	ack := syn
	ack.tcpFlags = "A"
	ret, got := e.fromUplink(t, ack.build(t))
	if ret != tcActRedirect {
		t.Fatalf("the open flow's ACK: verdict %d, want TC_ACT_REDIRECT", ret)
	}
	decode(t, got).expect(t, macGW, macB, ap(cliC, 5555), ap(ipB, 80), 59)
	other := syn
	other.sport = 5556
	ret, _ = e.fromUplink(t, other.build(t))
	if ret != tcActShot || e.drops(t, "firewall") != 1 {
		t.Fatalf("a new flow from the denied source: verdict %d, firewall drops %d", ret, e.drops(t, "firewall"))
	}
}

// Flows a container starts are not judged, and neither are their replies
// from a denied source (DOCKER-USER sees them as ESTABLISHED): only a new
// flow from that source to a published port is refused.
func TestFirewallSparesReplies(t *testing.T) {
	e := newNATEnv(t, envOpts{netns: true})
	publish(t, e, maps.PortEntry{Proto: maps.ProtoTCP, HostPort: 8080, ContainerIP: ipB, ContainerPort: 80, Ifindex: e.ifB})
	denied := netip.PrefixFrom(srvD, 32)
	if err := e.views.SyncFirewall([]maps.FirewallEntry{
		{Scope: maps.FirewallScope{Kind: loader.FWScopeAll}, Source: denied},
		{Scope: maps.FirewallScope{Kind: loader.FWScopeNetwork, NetID: 1}, Source: denied},
	}); err != nil {
		t.Fatal(err)
	}
	out := pkt{srcMAC: macA, dstMAC: macGW, src: ipA, dst: srvD, proto: layers.IPProtocolTCP, sport: 40000, dport: 443, tcpFlags: "S"}
	if ret, _ := e.fromContainer(t, e.ifA, out.build(t)); ret != tcActRedirect {
		t.Fatalf("SYN out to a denied address: verdict %d, want TC_ACT_REDIRECT", ret)
	}
	reply := pkt{srcMAC: macRt, dstMAC: macUp, src: srvD, dst: hostH, proto: layers.IPProtocolTCP, sport: 443, dport: 40000, tcpFlags: "SA", ttl: 50}
	ret, got := e.fromUplink(t, reply.build(t))
	if ret != tcActRedirect {
		t.Fatalf("SYN-ACK from the denied address: verdict %d, want TC_ACT_REDIRECT", ret)
	}
	verifyChecksums(t, got)
	decode(t, got).expect(t, macGW, macA, ap(srvD, 443), ap(ipA, 40000), 49)
	if n := e.drops(t, "firewall"); n != 0 {
		t.Fatalf("drops[firewall] = %d after a reply", n)
	}
	syn := pkt{srcMAC: macRt, dstMAC: macUp, src: srvD, dst: hostH, proto: layers.IPProtocolTCP, sport: 443, dport: 8080, tcpFlags: "S", ttl: 50}
	ret, _ = e.fromUplink(t, syn.build(t))
	if ret != tcActShot || e.drops(t, "firewall") != 1 {
		t.Fatalf("a new flow from the denied address: verdict %d, firewall drops %d", ret, e.drops(t, "firewall"))
	}
	if n, m := len(e.flows(t)), len(e.embryonic(t)); n != 2 || m != 0 {
		t.Errorf("%d conntrack and %d embryonic entries, want the outbound flow's 2 and none", n, m)
	}
}

// With no rules the count is 0 and new flows skip the trie; the count
// follows every sync, so an entry left in the trie with a count of 0 (what
// a flush leaves for an instant) judges nothing.
func TestFirewallCountGatesTrie(t *testing.T) {
	e := newNATEnv(t, envOpts{netns: true})
	publish(t, e, maps.PortEntry{Proto: maps.ProtoTCP, HostPort: 8080, ContainerIP: ipB, ContainerPort: 80, Ifindex: e.ifB})
	deny := []maps.FirewallEntry{{Scope: maps.FirewallScope{Kind: loader.FWScopeAll}, Source: netip.PrefixFrom(cliC, 32)}}
	syn := func(sport uint16) []byte {
		return pkt{srcMAC: macRt, dstMAC: macUp, src: cliC, dst: hostH, proto: layers.IPProtocolTCP, sport: sport, dport: 8080, tcpFlags: "S", ttl: 60}.build(t)
	}
	count := func() uint32 {
		t.Helper()
		n, err := e.views.FirewallCount()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(); n != 0 {
		t.Fatalf("count %d with no rules", n)
	}
	if err := e.views.SyncFirewall(deny); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Fatalf("count %d after one rule", n)
	}
	ret, _ := e.fromUplink(t, syn(5555))
	expectRefused(t, e, ret, "firewall")

	// The gate: the deny entry stays, the count says none.
	var zero, none uint32
	if err := e.fwCount().Update(&zero, &none, 0); err != nil {
		t.Fatal(err)
	}
	ret, got := e.fromUplink(t, syn(5556))
	if ret != tcActRedirect {
		t.Fatalf("count 0: verdict %d, want TC_ACT_REDIRECT (the trie skipped)", ret)
	}
	verifyChecksums(t, got)
	decode(t, got).expect(t, macGW, macB, ap(cliC, 5556), ap(ipB, 80), 59)

	if err := e.views.SyncFirewall(nil); err != nil {
		t.Fatal(err)
	}
	if n, entries := count(), e.fwEntries(t); n != 0 || len(entries) != 0 {
		t.Fatalf("after a flush: count %d, entries %v", n, entries)
	}
}

// On a nat-unprotected network the network and global scopes judge flows
// routed to the containers' own addresses too.
func TestFirewallRoutedFlows(t *testing.T) {
	e := newNATEnv(t, envOpts{netns: true, noMasq: true})
	if err := e.views.PutNetwork(maps.Network{ID: 1, Subnet: netip.MustParsePrefix("172.30.0.0/16"), Gateway: gw1, GatewayMAC: macGW,
		BridgeIfindex: 50, ICC: true, Unprotected: true}); err != nil {
		t.Fatal(err)
	}
	if err := e.views.SyncFirewall([]maps.FirewallEntry{
		{Scope: maps.FirewallScope{Kind: loader.FWScopeNetwork, NetID: 1}, Source: netip.MustParsePrefix("198.18.7.0/24")},
	}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		src     netip.Addr
		allowed bool
	}{{cliC, false}, {netip.MustParseAddr("198.18.9.9"), true}} {
		p := pkt{srcMAC: macRt, dstMAC: macUp, src: tc.src, dst: ipB, proto: layers.IPProtocolTCP, sport: 5555, dport: 22, tcpFlags: "S", ttl: 60}
		ret, got := e.fromUplink(t, p.build(t))
		if !tc.allowed {
			expectRefused(t, e, ret, "firewall")
			continue
		}
		if ret != tcActRedirect {
			t.Fatalf("%v: verdict %d, want TC_ACT_REDIRECT", tc.src, ret)
		}
		verifyChecksums(t, got)
		decode(t, got).expect(t, macGW, macB, ap(tc.src, 5555), ap(ipB, 22), 59)
	}
}

// The trie holds exactly what SyncFirewall was last given, and reads back.
func TestFirewallSync(t *testing.T) {
	e := newNATEnv(t, envOpts{})
	scope := maps.FirewallScope{Kind: loader.FWScopePort, Proto: maps.ProtoUDP, Port: 53}
	first := []maps.FirewallEntry{
		{Scope: scope, Source: netip.MustParsePrefix("10.0.0.0/8"), Allow: true},
		{Scope: scope, Source: netip.MustParsePrefix("0.0.0.0/0")},
	}
	if err := e.views.SyncFirewall(first); err != nil {
		t.Fatal(err)
	}
	second := first[:1]
	second[0].Allow = false
	if err := e.views.SyncFirewall(second); err != nil {
		t.Fatal(err)
	}
	got, err := e.views.FirewallEntries()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != second[0] {
		t.Fatalf("entries %+v, want %+v", got, second)
	}
	// An IPv6 entry goes into fw_rules6 and reads back; the count is both
	// tries'.
	v6 := maps.FirewallEntry{Scope: maps.FirewallScope{Kind: loader.FWScopeNetwork, NetID: 7}, Source: netip.MustParsePrefix("2001:db8:40::/42"), Allow: true}
	if err := e.views.SyncFirewall(append(slices.Clone(second), v6)); err != nil {
		t.Fatal(err)
	}
	if got := e.fwEntries(t); len(got) != 2 || got[0] != second[0] || got[1] != v6 {
		t.Fatalf("entries %+v, want %+v and %+v", got, second[0], v6)
	}
	var k6 loader.FW6Key
	var r loader.FWRule
	if it := e.dp.Maps.FWRules6.Iterate(); !it.Next(&k6, &r) || k6.Prefixlen != uint32(loader.FWScopeBits+42) || k6.Kind != uint8(loader.FWScopeNetwork) ||
		k6.Id != 7 || k6.Saddr.Addr != [4]uint32{0xb80d0120, 0x4000, 0, 0} || r.Action != uint32(loader.FWAllow) {
		t.Fatalf("fw_rules6 entry %+v %+v", k6, r)
	}
	if n, err := e.views.FirewallCount(); err != nil || n != 2 {
		t.Fatalf("count %d, %v, want 2", n, err)
	}
	if err := e.views.SyncFirewall(second); err != nil {
		t.Fatal(err)
	}
	// Refusals leave the tries as they were: an IPv4-mapped IPv6 source
	// (it would never match: IPv4 clients come as IPv4) after a valid
	// entry of each family, and more entries than the trie holds.
	bad := []maps.FirewallEntry{
		{Scope: scope, Source: netip.MustParsePrefix("192.0.2.0/24")},
		{Scope: scope, Source: netip.MustParsePrefix("2001:db8::/32")},
		{Scope: scope, Source: netip.MustParsePrefix("::ffff:192.0.2.0/120")},
	}
	if err := e.views.SyncFirewall(bad); err == nil {
		t.Error("an IPv4-mapped IPv6 source was accepted")
	}
	limit := int(e.fwRules().MaxEntries())
	many := make([]maps.FirewallEntry, 0, limit+1)
	for j := range limit + 1 {
		many = append(many, maps.FirewallEntry{Scope: scope, Source: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(j >> 16), byte(j >> 8), byte(j)}), 32)})
	}
	if err := e.views.SyncFirewall(many); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("%d entries: %v, want refused", len(many), err)
	}
	if got := e.fwEntries(t); len(got) != 1 || got[0] != second[0] {
		t.Fatalf("after refusals: %d entries (first %+v), want only %+v", len(got), got[:min(len(got), 1)], second[0])
	}
	// Exactly full fits, even replacing what is there.
	if err := e.views.SyncFirewall(many[1:]); err != nil {
		t.Fatalf("%d entries: %v", limit, err)
	}
	if n, err := e.views.FirewallCount(); err != nil || int(n) != limit {
		t.Fatalf("count %d, %v, want %d", n, err, limit)
	}
}

func (e *natEnv) fwCount() *ebpf.Map { return e.dp.Maps.FWCount }
func (e *natEnv) fwRules() *ebpf.Map { return e.dp.Maps.FWRules }

func (e *natEnv) fwEntries(t *testing.T) []maps.FirewallEntry {
	t.Helper()
	got, err := e.views.FirewallEntries()
	if err != nil {
		t.Fatal(err)
	}
	return got
}
