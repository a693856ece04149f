package datapath

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/ebpfnet/ebpfnet/resolver"
)

func TestEtcFiles(t *testing.T) {
	host := resolver.ResolvConf{Nameservers: []netip.Addr{netip.MustParseAddr("127.0.0.53")}, Search: []string{"example.com"}, Options: []string{"edns0"}}
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
	host := resolver.ResolvConf{Nameservers: []netip.Addr{netip.MustParseAddr("192.0.2.53")}}
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
