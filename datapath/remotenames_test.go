package datapath

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	"github.com/ebpfnet/ebpfnet/resolver"
)

// Names of overlay endpoints on other hosts resolve on their network like
// local names (A, NAME.NETWORK, PTR), a local name wins a clash, and a
// remote address is never an asker.
func TestDNSIndexRemoteNames(t *testing.T) {
	a := netip.MustParseAddr
	x := &dnsIndex{
		networks: map[string]Network{"ov1": {Name: "ov1", VNI: 4096}, "n1": {Name: "n1"}},
		names: NameTable{
			"ov1": {"b": {a("10.210.0.64")}, "web": {a("10.210.0.65")}},
			"n1":  {"c": {a("172.30.0.2")}},
		},
		byIP: map[string]map[netip.Addr]Endpoint{
			"ov1": {a("10.210.0.64"): {Name: "b", Network: "ov1", NetnsIno: 1}, a("10.210.0.65"): {Name: "web", Network: "ov1", NetnsIno: 2, Aliases: []string{"web"}}},
			"n1":  {a("172.30.0.2"): {Name: "c", Network: "n1", NetnsIno: 3}},
		},
		byNetns: map[uint64][]Endpoint{
			1: {{Name: "b", Network: "ov1", NetnsIno: 1}},
			2: {{Name: "web", Network: "ov1", NetnsIno: 2}},
			3: {{Name: "c", Network: "n1", NetnsIno: 3}},
		},
		gateways: map[netip.Addr]bool{a("10.210.0.1"): true, a("172.30.0.1"): true},
		upstream: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:53")},
	}
	x.addRemoteNames(map[string][]RemoteName{
		"ov1": {
			{Name: "A", IP: a("10.210.0.2")},
			{Name: "web", IP: a("10.210.0.128")},    // clashes with the local web
			{Name: "twin", IP: a("10.210.0.129")},   // two hosts, one name
			{Name: "twin", IP: a("10.210.0.130")},   //
			{Name: "bad name", IP: a("10.210.0.3")}, // nothing a DNS answer could carry
		},
		"gone": {{Name: "z", IP: a("10.99.0.2")}}, // no such network here
	})
	q := func(network, src, name string) resolver.Answer {
		return x.lookup(resolver.Query{Network: network, Src: a(src), Name: name, Type: dns.TypeA})
	}
	ptr := func(network, src, ip string) resolver.Answer {
		return x.lookup(resolver.Query{Network: network, Src: a(src), Type: dns.TypePTR, ReverseIP: a(ip)})
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
	if x.serves("ov1", a("10.210.0.2")) {
		t.Error("serves a remote endpoint's address")
	}
}

// SetRemoteNames replaces the names whole and changes the generation only
// when they change.
func TestSetRemoteNames(t *testing.T) {
	i := &Instance{}
	a := netip.MustParseAddr
	i.SetRemoteNames(map[string][]RemoteName{"ov1": {{Name: "b", IP: a("10.210.0.3")}, {Name: "a", IP: a("10.210.0.2")}}})
	names, gen := i.remote.snapshot()
	if gen != 1 || len(names["ov1"]) != 2 || names["ov1"][0].Name != "a" {
		t.Fatalf("after the first set: %v gen %d", names, gen)
	}
	i.SetRemoteNames(map[string][]RemoteName{"ov1": {{Name: "a", IP: a("10.210.0.2")}, {Name: "b", IP: a("10.210.0.3")}}, "ov2": nil})
	if _, gen := i.remote.snapshot(); gen != 1 {
		t.Errorf("the same names again: generation %d, want 1", gen)
	}
	i.SetRemoteNames(nil)
	if names, gen := i.remote.snapshot(); gen != 2 || len(names) != 0 {
		t.Errorf("after clearing: %v gen %d", names, gen)
	}
}
