package resolver

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// Names of overlay endpoints on other hosts resolve on their network like
// local names (A, NAME.NETWORK, PTR), a local name wins a clash, and a
// remote address is never an asker.
func TestIndexRemoteNames(t *testing.T) {
	a := netip.MustParseAddr
	x := NewIndex(
		[]netip.Addr{a("10.210.0.1"), a("172.30.0.1")},
		[]Network{{Name: "ov1", Gateway: a("10.210.0.1")}, {Name: "n1", Gateway: a("172.30.0.1")}},
		[]Member{
			{Name: "b", Network: "ov1", IP: a("10.210.0.64"), Netns: 1},
			{Name: "web", Network: "ov1", IP: a("10.210.0.65"), Netns: 2, Aliases: []string{"web"}},
			{Name: "c", Network: "n1", IP: a("172.30.0.2"), Netns: 3},
		},
		map[string][]RemoteName{
			"ov1": {
				{Name: "A", IP: a("10.210.0.2")},
				{Name: "web", IP: a("10.210.0.128")},    // clashes with the local web
				{Name: "twin", IP: a("10.210.0.129")},   // two hosts, one name
				{Name: "twin", IP: a("10.210.0.130")},   //
				{Name: "bad name", IP: a("10.210.0.3")}, // nothing a DNS answer could carry
			},
			"gone": {{Name: "z", IP: a("10.99.0.2")}}, // no such network here
		},
		[]netip.Addr{a("192.0.2.1")},
	)
	q := func(network, src, name string) Answer {
		return x.Lookup(Query{Network: network, Src: a(src), Name: name, Type: dns.TypeA})
	}
	ptr := func(network, src, ip string) Answer {
		return x.Lookup(Query{Network: network, Src: a(src), Type: dns.TypePTR, ReverseIP: a(ip)})
	}
	for _, name := range []string{"a", "a.ov1"} {
		if r := q("ov1", "10.210.0.64", name); !r.Known || len(r.IPs) != 1 || r.IPs[0] != a("10.210.0.2") {
			t.Errorf("%s from b: %+v, want 10.210.0.2", name, r)
		}
	}
	if r := q("ov1", "10.210.0.1", "a"); !r.Known {
		t.Errorf("a from the host: %+v", r)
	}
	if r := q("ov1", "10.210.0.64", "web"); !r.Known || len(r.IPs) != 1 || r.IPs[0] != a("10.210.0.65") {
		t.Errorf("web from b: %+v, want only the local web", r)
	}
	if r := q("ov1", "10.210.0.64", "twin"); !r.Known || len(r.IPs) != 2 {
		t.Errorf("twin from b: %+v, want both addresses", r)
	}
	if r := q("ov1", "10.210.0.64", "bad name"); r.Known {
		t.Errorf("an invalid remote name resolves: %+v", r)
	}
	if r := ptr("ov1", "10.210.0.64", "10.210.0.2"); !r.Known || r.Names[0] != "a.ov1" {
		t.Errorf("PTR of a: %+v, want a.ov1", r)
	}
	if r := ptr("ov1", "10.210.0.64", "10.210.0.128"); !r.Known || r.Names[0] != "web.ov1" {
		t.Errorf("PTR of the remote web: %+v", r)
	}
	// Other networks learn nothing of them.
	if r := q("n1", "172.30.0.2", "a"); r.Known {
		t.Errorf("a from n1's c: %+v, want unknown", r)
	}
	if r := ptr("n1", "172.30.0.2", "10.210.0.2"); r.Known {
		t.Errorf("PTR of a from n1's c: %+v, want unknown", r)
	}
	// A remote endpoint's address does not make an asker.
	if x.Serves("ov1", a("10.210.0.2")) {
		t.Error("serves a remote endpoint's address")
	}
}

func TestIndexLookup(t *testing.T) {
	a := netip.MustParseAddr
	x := NewIndex(
		[]netip.Addr{a("172.30.0.1"), a("172.31.0.1"), a("172.29.0.1")},
		[]Network{{Name: "n1", Gateway: a("172.30.0.1")}, {Name: "n2", Gateway: a("172.31.0.1")}, {Name: "in", Gateway: a("172.29.0.1"), Internal: true}},
		[]Member{
			{Name: "web", Network: "n1", IP: a("172.30.0.2"), Netns: 1},
			{Name: "db", Network: "n1", IP: a("172.30.0.3"), Netns: 2, DNS: []netip.Addr{a("192.0.2.9")}},
			{Name: "web", Network: "n2", IP: a("172.31.0.2"), Netns: 1},
			{Name: "cache", Network: "n2", IP: a("172.31.0.4"), Netns: 4},
			{Name: "x", Network: "in", IP: a("172.29.0.2"), Netns: 3},
		},
		nil,
		[]netip.Addr{a("192.0.2.1")},
	)
	q := func(net, src, name string) Answer {
		return x.Lookup(Query{Network: net, Src: a(src), Name: name, Type: dns.TypeA})
	}
	if r := q("n1", "172.30.0.3", "web"); !r.Known || r.IPs[0] != a("172.30.0.2") {
		t.Errorf("web on n1: %+v", r)
	}
	if r := q("n1", "172.30.0.3", "cache"); r.Known || r.Upstream[0].Addr() != a("192.0.2.9") {
		t.Errorf("n2's cache from n1 (with --dns): %+v, want forwarded to its --dns", r)
	}
	if r := q("n1", "172.30.0.2", "cache"); !r.Known {
		t.Errorf("cache from web, on n1 and n2: %+v", r)
	}
	if r := q("n2", "172.31.0.2", "web"); !r.Known || r.IPs[0] != a("172.31.0.2") {
		t.Errorf("web asked on n2: %+v, want its n2 address", r)
	}
	if r := q("n1", "172.30.0.3", "db.n1"); !r.Known {
		t.Errorf("NAME.NETWORK: %+v", r)
	}
	if r := q("n1", "172.30.0.2", "example.org"); r.Known || r.Upstream[0] != netip.MustParseAddrPort("192.0.2.1:53") {
		t.Errorf("forwarded: %+v", r)
	}
	if r := q("in", "172.29.0.2", "example.org"); r.Known || len(r.Upstream) != 0 {
		t.Errorf("internal network forwards: %+v", r)
	}
	if r := q("n2", "172.30.0.3", "cache"); r.Known || len(r.Upstream) != 0 {
		t.Errorf("n1's db asking n2's gateway: %+v, want nothing (isolation)", r)
	}
	if r := q("n1", "172.30.0.1", "web"); !r.Known {
		t.Errorf("the host asking: %+v", r)
	}
	if r := x.Lookup(Query{Network: "n1", Src: a("172.30.0.3"), Type: dns.TypePTR, ReverseIP: a("172.30.0.2")}); !r.Known || r.Names[0] != "web.n1" {
		t.Errorf("PTR: %+v", r)
	}
	if r := q("n1", "198.18.0.1", "web"); r.Known || len(r.Upstream) != 0 {
		t.Errorf("a neighbour outside asking: %+v, want nothing", r)
	}

	// Who the resolver serves at all: the network's endpoints and the host.
	for _, c := range []struct {
		network, src string
		want         bool
	}{
		{"n1", "172.30.0.2", true},   // an endpoint of n1
		{"n2", "172.31.0.2", true},   // the same namespace's n2 endpoint
		{"n1", "172.30.0.1", true},   // the host, from the gateway
		{"n1", "172.31.0.1", true},   // the host, from another gateway
		{"n2", "172.30.0.3", false},  // n1's db: another network
		{"in", "172.30.0.2", false},  // another network
		{"n1", "198.18.0.1", false},  // a neighbour routed through the host
		{"n1", "172.30.0.99", false}, // in the subnet, but no endpoint's
	} {
		if got := x.Serves(c.network, a(c.src)); got != c.want {
			t.Errorf("serves(%s, %s) = %v, want %v", c.network, c.src, got, c.want)
		}
	}
}

// A dual-stack network: its names have AAAA records, its IPv6 addresses
// PTR records, its containers may ask from their IPv6 address, and the
// resolver listens on both gateways.
func TestIndexDualStack(t *testing.T) {
	a := netip.MustParseAddr
	x := NewIndex(
		[]netip.Addr{a("172.30.0.1"), a("fd00:30::1")},
		[]Network{{Name: "d", Gateway: a("172.30.0.1"), Gateway6: a("fd00:30::1")}},
		[]Member{
			{Name: "web", Network: "d", IP: a("172.30.0.2"), IP6: a("fd00:30::2"), Netns: 1},
			{Name: "db", Network: "d", IP: a("172.30.0.3"), IP6: a("fd00:30::3"), Netns: 2},
		},
		nil, nil,
	)
	r := x.Lookup(Query{Network: "d", Src: a("fd00:30::3"), Name: "web", Type: dns.TypeAAAA})
	if !r.Known || !slices.Equal(r.IPs, []netip.Addr{a("172.30.0.2"), a("fd00:30::2")}) {
		t.Errorf("web asked over IPv6: %+v, want both addresses (answer() picks the family)", r)
	}
	if r := x.Lookup(Query{Network: "d", Src: a("fd00:30::3"), Type: dns.TypePTR, ReverseIP: a("fd00:30::2")}); !r.Known || r.Names[0] != "web.d" {
		t.Errorf("PTR of an IPv6 address: %+v", r)
	}
	if !x.Serves("d", a("fd00:30::2")) || !x.Serves("d", a("fd00:30::1")) || x.Serves("d", a("fd00:31::2")) {
		t.Error("Serves: want the network's IPv6 endpoints and its gateway, nobody else")
	}
	if got := x.Listen(); len(got) != 2 || got[a("172.30.0.1")] != "d" || got[a("fd00:30::1")] != "d" {
		t.Errorf("Listen = %v, want both gateways", got)
	}
	m := answer(new(dns.Msg).SetQuestion("web.", dns.TypeAAAA), dns.Question{Name: "web.", Qtype: dns.TypeAAAA, Qclass: dns.ClassINET}, r)
	if len(m.Answer) != 1 || m.Answer[0].(*dns.AAAA).AAAA.String() != "fd00:30::2" {
		t.Errorf("AAAA answer %v", m.Answer)
	}
}

func TestReverseIP6(t *testing.T) {
	name, err := dns.ReverseAddr("fd00:30::2")
	if err != nil {
		t.Fatal(err)
	}
	if got := reverseIP(strings.TrimSuffix(name, ".")); got != netip.MustParseAddr("fd00:30::2") {
		t.Errorf("reverseIP(%s) = %v", name, got)
	}
	for _, bad := range []string{"2.0.ip6.arpa", "x.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.0.0.0.0.d.f.ip6.arpa", "20.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.0.0.0.0.d.f.ip6.arpa"} {
		if got := reverseIP(bad); got.IsValid() {
			t.Errorf("reverseIP(%s) = %v, want none", bad, got)
		}
	}
}

// On a dual-stack overlay network a remote endpoint's name carries both
// addresses (the syncer gives both), so AAAA answers it, and its IPv6
// address has a PTR.
func TestIndexRemoteNamesIPv6(t *testing.T) {
	a := netip.MustParseAddr
	x := NewIndex([]netip.Addr{a("10.213.0.1"), a("fd00:213::1")},
		[]Network{{Name: "ov6", Gateway: a("10.213.0.1"), Gateway6: a("fd00:213::1")}},
		[]Member{{Name: "a", Network: "ov6", IP: a("10.213.0.2"), IP6: a("fd00:213::2"), Netns: 1}},
		map[string][]RemoteName{"ov6": {{Name: "b", IP: a("10.213.0.64")}, {Name: "b", IP: a("fd00:213::40")}}},
		nil)
	r := x.Lookup(Query{Network: "ov6", Src: a("fd00:213::2"), Name: "b", Type: dns.TypeAAAA})
	if !r.Known || !slices.Contains(r.IPs, a("fd00:213::40")) || !slices.Contains(r.IPs, a("10.213.0.64")) {
		t.Errorf("b from a over IPv6: %+v, want both addresses", r)
	}
	if r := x.Lookup(Query{Network: "ov6", Src: a("10.213.0.2"), Type: dns.TypePTR, ReverseIP: a("fd00:213::40")}); !r.Known || r.Names[0] != "b.ov6" {
		t.Errorf("PTR of b's IPv6 address: %+v, want b.ov6", r)
	}
}
