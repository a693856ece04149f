package cluster

import (
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/internal/testing/etcdtest"
)

// An endpoint's IPv6 address is its IPv4 one's twin, and back; addresses
// outside the twin range have none.
func TestIP6Twins(t *testing.T) {
	n := Network{Subnet: netip.MustParsePrefix("10.210.0.0/22"), Subnet6: netip.MustParsePrefix("fd00:210::/64")}
	for v4, v6 := range map[string]string{"10.210.0.1": "fd00:210::1", "10.210.0.64": "fd00:210::40", "10.210.3.255": "fd00:210::3ff", "10.210.1.2": "fd00:210::102"} {
		if got := n.IP6For(netip.MustParseAddr(v4)); got.String() != v6 {
			t.Errorf("IP6For(%s) = %s, want %s", v4, got, v6)
		}
		if got := n.IP4For(netip.MustParseAddr(v6)); got.String() != v4 {
			t.Errorf("IP4For(%s) = %s, want %s", v6, got, v4)
		}
	}
	for _, v6 := range []string{"fd00:210::400", "fd00:210::1:0:5", "fd00:211::5", "fe80::5", "::ffff:10.210.0.5"} {
		if got := n.IP4For(netip.MustParseAddr(v6)); got.IsValid() {
			t.Errorf("IP4For(%s) = %s, want none", v6, got)
		}
	}
	if got := n.IP6For(netip.MustParseAddr("10.211.0.1")); got.IsValid() {
		t.Errorf("IP6For outside the subnet = %s", got)
	}
	if got := (Network{Subnet: n.Subnet}).IP6For(netip.MustParseAddr("10.210.0.1")); got.IsValid() {
		t.Errorf("IP6For on an IPv4-only network = %s", got)
	}
}

// network create --driver overlay --ipv6: the IPv6 subnet and gateway, or
// one clear error.
func TestNetworkOptionsIPv6(t *testing.T) {
	o := DefaultNetworkOptions("ov6")
	o.Subnet, o.IPv6, o.Subnet6 = "10.213.0.0/24", true, "fd00:213::/64"
	n, err := o.network()
	if err != nil || n.Subnet6.String() != "fd00:213::/64" || n.Gateway6.String() != "fd00:213::1" {
		t.Fatalf("network %+v, %v", n, err)
	}
	o.Gateway = "10.213.0.254"
	if n, err = o.network(); err != nil || n.Gateway6.String() != "fd00:213::fe" {
		t.Fatalf("with gateway 10.213.0.254: IPv6 gateway %s, %v; want its twin fd00:213::fe", n.Gateway6, err)
	}
	o.Gateway6 = "fd00:213::fe"
	if _, err = o.network(); err != nil {
		t.Fatalf("the twin given as --gateway: %v", err)
	}
	o.Subnet6, o.Gateway6 = "", ""
	if n, err = o.network(); err != nil || !n.Subnet6.IsValid() || n.Subnet6.Bits() != 64 || n.Subnet6.Addr().As16()[0] != 0xfd {
		t.Fatalf("without an IPv6 subnet: %s, %v; want a unique local /64", n.Subnet6, err)
	}
	for _, bad := range []struct {
		mod  func(*NetworkOptions)
		want string
	}{
		{func(o *NetworkOptions) { o.Subnet, o.Subnet6 = "10.213.0.0/16", "fd00:213::/120" }, "as many host addresses"},
		{func(o *NetworkOptions) { o.Subnet6, o.Gateway6 = "fd00:213::/64", "fd00:213::1" }, "twin"},
		{func(o *NetworkOptions) { o.Subnet6 = "fe80::/64" }, "not a unicast prefix"},
		{func(o *NetworkOptions) { o.Subnet6 = "10.0.0.0/8" }, "invalid IPv6 subnet"},
		{func(o *NetworkOptions) { o.IPv6, o.Subnet6 = false, "fd00:213::/64" }, "needs --ipv6"},
	} {
		o := DefaultNetworkOptions("ov6")
		o.Subnet, o.Gateway, o.IPv6 = "10.213.0.0/24", "10.213.0.254", true
		bad.mod(&o)
		if _, err := o.network(); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%+v: %v, want %q", o, err, bad.want)
		}
	}
}

// Two hosts allocate concurrently on a dual-stack overlay network: every
// endpoint record carries its IPv4 address's twin, so no IPv6 address is
// handed out twice; --ip6 takes the twin's IPv4 address or is refused;
// an overlapping IPv6 subnet is refused.
func TestClusterAllocatesIPv6(t *testing.T) {
	c := etcdtest.NewCluster(t, 2)
	n1, n2 := startNode(t, c, 0, t.TempDir()), startNode(t, c, 1, t.TempDir())
	o := DefaultNetworkOptions("ov6")
	o.Subnet, o.IPv6, o.Subnet6 = "10.213.0.0/24", true, "fd00:213::/64"
	n, err := n1.store.CreateNetwork(ctxT(t, 20*time.Second), o)
	if err != nil {
		t.Fatal(err)
	}
	o.Name, o.Subnet = "ov7", "10.214.0.0/24"
	if _, err := n1.store.CreateNetwork(ctxT(t, 20*time.Second), o); err == nil || !strings.Contains(err.Error(), "overlaps network ov6") {
		t.Errorf("overlapping IPv6 subnet: %v", err)
	}
	if got, err := n2.store.Network(ctxT(t, 10*time.Second), "ov6"); err != nil || got.Subnet6 != n.Subnet6 || got.Gateway6 != n.Gateway6 {
		t.Fatalf("ov6 as host 2 reads it: %+v %v", got, err)
	}
	var mu sync.Mutex
	var all []Endpoint
	var wg sync.WaitGroup
	for _, m := range []*Member{n1.mem, n2.mem} {
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e, err := m.AllocateEndpoint(ctxT(t, 20*time.Second), "ov6", EndpointRequest{})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				all = append(all, e)
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	seen := map[netip.Addr]bool{}
	for _, e := range all {
		if e.IP6 != n.IP6For(e.IP) || seen[e.IP6] || e.IP6 == n.Gateway6 {
			t.Errorf("endpoint %s with IPv6 %s: want %s, once, not the gateway", e.IP, e.IP6, n.IP6For(e.IP))
		}
		seen[e.IP6] = true
	}
	waitFor(t, 10*time.Second, "host 1's view holding every IPv6 address", func() bool {
		got := 0
		for _, e := range n1.w.Endpoints("ov6") {
			if seen[e.IP6] {
				got++
			}
		}
		return got == len(all)
	})
	e, err := n2.mem.AllocateEndpoint(ctxT(t, 10*time.Second), "ov6", EndpointRequest{IP6: netip.MustParseAddr("fd00:213::99")})
	if err != nil || e.IP.String() != "10.213.0.153" || e.IP6.String() != "fd00:213::99" {
		t.Fatalf("--ip6 fd00:213::99: %+v %v", e, err)
	}
	for _, bad := range []struct {
		req  EndpointRequest
		want string
	}{
		{EndpointRequest{IP6: netip.MustParseAddr("fd00:213::99")}, "already in use"},
		{EndpointRequest{IP6: netip.MustParseAddr("fd00:213::1:1")}, "twin"},
		{EndpointRequest{IP6: netip.MustParseAddr("fd00:213::1")}, "not usable"},
		{EndpointRequest{IP: netip.MustParseAddr("10.213.0.200"), IP6: netip.MustParseAddr("fd00:213::c9")}, "twin of 10.213.0.201"},
	} {
		if _, err := n2.mem.AllocateEndpoint(ctxT(t, 10*time.Second), "ov6", bad.req); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%+v: %v, want %q", bad.req, err, bad.want)
		}
	}
}
