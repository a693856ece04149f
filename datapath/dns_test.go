package datapath

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/ebpfnet/ebpfnet/resolver"
)

func TestParseExtraHost(t *testing.T) {
	for _, c := range []struct {
		in, name, ip string
		ok           bool
	}{
		{"db:10.0.0.2", "db", "10.0.0.2", true},
		{"db=10.0.0.2", "db", "10.0.0.2", true},
		{"v6:fd00::1", "v6", "fd00::1", true},
		{"v6=[fd00::1]", "v6", "fd00::1", true},
		{"gw:host-gateway", "gw", "invalid IP", true},
		{"db", "", "", false},
		{"d b:10.0.0.1", "", "", false},
		{"db:nope", "", "", false},
	} {
		name, ip, err := ParseExtraHost(c.in)
		if (err == nil) != c.ok || (c.ok && (name != c.name || ip.String() != c.ip)) {
			t.Errorf("ParseExtraHost(%q) = %q %v %v", c.in, name, ip, err)
		}
	}
}

func TestEtcFiles(t *testing.T) {
	host := ResolvConf{Nameservers: []netip.Addr{netip.MustParseAddr("127.0.0.53")}, Search: []string{"example.com"}, Options: []string{"edns0"}}
	user := Network{Name: "backend", Gateway: netip.MustParseAddr("172.30.0.1")}
	ep := Endpoint{Name: "web", Mode: ModeBridge, Network: "backend", IP: netip.MustParseAddr("172.30.0.2"),
		Aliases: []string{"www"}, ExtraHosts: []string{"db:10.0.0.9", "gw:host-gateway"}}
	nets := map[string]Network{"backend": user}
	r, h := etcFiles(ep, nil, nets, host)
	for _, w := range []string{"nameserver 172.30.0.1\n", "search example.com\n", "options edns0 ndots:0\n"} {
		if !strings.Contains(r, w) {
			t.Errorf("user network resolv.conf lacks %q:\n%s", w, r)
		}
	}
	for _, w := range []string{"127.0.0.1\tlocalhost\n", "10.0.0.9\tdb\n", "172.30.0.1\tgw\n", "172.30.0.2\tweb www\n"} {
		if !strings.Contains(h, w) {
			t.Errorf("hosts lacks %q:\n%s", w, h)
		}
	}
	// The default network: the host's resolvers, without loopback ones.
	def := Network{Name: DefaultNetwork, Gateway: netip.MustParseAddr("172.17.0.1")}
	ep.Network = DefaultNetwork
	host.Nameservers = append(host.Nameservers, netip.MustParseAddr("192.0.2.53"))
	nets[DefaultNetwork] = def
	if r, _ := etcFiles(ep, nil, nets, host); !strings.Contains(r, "nameserver 192.0.2.53\n") || strings.Contains(r, "127.0.0.53") || strings.Contains(r, "172.17.0.1") {
		t.Errorf("default network resolv.conf:\n%s", r)
	}
	ep.DNS = []netip.Addr{netip.MustParseAddr("192.0.2.99")}
	if r, _ := etcFiles(ep, nil, nets, host); !strings.Contains(r, "nameserver 192.0.2.99\n") || strings.Contains(r, "192.0.2.53") {
		t.Errorf("--dns on the default network:\n%s", r)
	}
}

// After network connect: a default-network endpoint that joins a
// user-defined network gets the embedded resolver, and hosts names every
// address of the namespace (Docker's sandbox rebuilds both).
func TestEtcFilesConnected(t *testing.T) {
	host := ResolvConf{Nameservers: []netip.Addr{netip.MustParseAddr("192.0.2.53")}}
	nets := map[string]Network{
		DefaultNetwork: {Name: DefaultNetwork, Gateway: netip.MustParseAddr("172.17.0.1")},
		"backend":      {Name: "backend", Gateway: netip.MustParseAddr("172.30.0.1")},
	}
	ep := Endpoint{Name: "web", Mode: ModeBridge, Network: DefaultNetwork, IP: netip.MustParseAddr("172.17.0.2")}
	second := Endpoint{Name: "web.backend", Mode: ModeBridge, Network: "backend", IP: netip.MustParseAddr("172.30.0.9"), Aliases: []string{"api"}}
	r, h := etcFiles(ep, []Endpoint{second}, nets, host)
	if !strings.Contains(r, "nameserver 172.30.0.1\n") || strings.Contains(r, "192.0.2.53\n") || !strings.Contains(r, "ndots:0") {
		t.Errorf("resolv.conf after connecting to backend:\n%s", r)
	}
	for _, w := range []string{"172.17.0.2\tweb\n", "172.30.0.9\tweb api\n"} {
		if !strings.Contains(h, w) {
			t.Errorf("hosts lacks %q:\n%s", w, h)
		}
	}
	if r, h := etcFiles(ep, nil, nets, host); !strings.Contains(r, "nameserver 192.0.2.53\n") || strings.Contains(h, "172.30.0.9") {
		t.Errorf("after disconnect:\n%s\n%s", r, h)
	}
}

func TestDNSIndexLookup(t *testing.T) {
	a := netip.MustParseAddr
	x := &dnsIndex{
		networks: map[string]Network{"n1": {Name: "n1"}, "n2": {Name: "n2"}, "in": {Name: "in", Internal: true}},
		names: NameTable{
			"n1": {"web": {a("172.30.0.2")}, "db": {a("172.30.0.3")}},
			"n2": {"web": {a("172.31.0.2")}, "cache": {a("172.31.0.4")}},
			"in": {"x": {a("172.29.0.2")}},
		},
		byIP: map[string]map[netip.Addr]Endpoint{
			"n1": {a("172.30.0.2"): {Name: "web", Network: "n1", NetnsIno: 1}, a("172.30.0.3"): {Name: "db", Network: "n1", NetnsIno: 2, DNS: []netip.Addr{a("192.0.2.9")}}},
			"n2": {a("172.31.0.2"): {Name: "web.n2", Network: "n2", NetnsIno: 1}},
			"in": {a("172.29.0.2"): {Name: "x", Network: "in", NetnsIno: 3}},
		},
		byNetns: map[uint64][]Endpoint{
			1: {{Name: "web", Network: "n1", NetnsIno: 1}, {Name: "web.n2", Network: "n2", NetnsIno: 1}},
			2: {{Name: "db", Network: "n1", NetnsIno: 2, DNS: []netip.Addr{a("192.0.2.9")}}},
			3: {{Name: "x", Network: "in", NetnsIno: 3}},
		},
		gateways: map[netip.Addr]bool{a("172.30.0.1"): true, a("172.31.0.1"): true, a("172.29.0.1"): true},
		upstream: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:53")},
	}
	q := func(net, src, name string) resolver.Answer {
		return x.lookup(resolver.Query{Network: net, Src: a(src), Name: name, Type: dns.TypeA})
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
	if r := q("n1", "172.30.0.2", "example.org"); r.Known || r.Upstream[0] != x.upstream[0] {
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
	if r := x.lookup(resolver.Query{Network: "n1", Src: a("172.30.0.3"), Type: dns.TypePTR, ReverseIP: a("172.30.0.2")}); !r.Known || r.Names[0] != "web.n1" {
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
		if got := x.serves(c.network, a(c.src)); got != c.want {
			t.Errorf("serves(%s, %s) = %v, want %v", c.network, c.src, got, c.want)
		}
	}
}
