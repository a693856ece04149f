package integration

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

// resultIPs are a CNI result's addresses, as strings with their length.
func resultIPs(r *current.Result) []string {
	var out []string
	for _, c := range r.IPs {
		out = append(out, c.Address.String())
	}
	return out
}

// hasDefault6 reports whether a CNI result routes ::/0 via gw.
func hasDefault6(r *current.Result, gw string) bool {
	for _, rt := range r.Routes {
		if rt.Dst.String() == "::/0" && rt.GW.String() == gw {
			return true
		}
	}
	return false
}

// Dual-stack conflists, as containerd and Podman pass them: ebpfnet's own
// IPAM with "ipv6", and host-local with an IPv4 and an IPv6 range. Each ADD
// returns both addresses and both default routes, the pods talk IPv6 on
// the eBPF path (the host's IPv6 FORWARD policy DROP), an "ips" request
// names the IPv6 address, CHECK compares both, and DEL frees them.
func TestCNIDualStack(t *testing.T) {
	h := newCNIHost(t)
	h.Exec(h.Host, "ip6tables", "-P", "FORWARD", "DROP")
	own := h.netList("dual", "1.0.0", map[string]any{"subnet": "10.77.0.0/24", "ipv6": true, "subnet6": "fd00:77::/64"})
	c1, c2 := h.AddContainer("c1"), h.AddContainer("c2")
	rt1 := h.rt("dual-1", c1, "eth0", nil)
	rt2 := h.rt("dual-2", c2, "eth0", map[string]any{"ips": []string{"fd00:77::42/64"}})
	r1, r2 := h.mustAdd(own, rt1), h.mustAdd(own, rt2)
	if got := strings.Join(resultIPs(r1), " "); got != "10.77.0.2/24 fd00:77::2/64" {
		t.Fatalf("first pod's addresses %q", got)
	}
	if got := resultIPs(r2); len(got) != 2 || got[1] != "fd00:77::42/64" {
		t.Fatalf("second pod's addresses %q, want fd00:77::42 as asked", got)
	}
	if !hasDefault6(r1, "fd00:77::1") {
		t.Errorf("result routes %v: no ::/0 via fd00:77::1", r1.Routes)
	}
	testutil.Serve6(t, h.Namespace(c2), "c2", ":80")
	if r := testutil.MustAsk(t, h.Namespace(c1), "tcp6", "[fd00:77::42]:80"); r.Server != "c2" || r.Source != "fd00:77::2" {
		t.Fatalf("pod to pod over IPv6: %+v", r)
	}
	if err := h.check(own, rt2); err != nil {
		t.Fatalf("CHECK: %v", err)
	}
	h.mustDel(own, rt1)
	h.mustDel(own, rt2)

	// Delegated IPAM: host-local's two ranges make the network dual stack.
	ipamDir := t.TempDir()
	delegated := h.netList("dualipam", "1.0.0", map[string]any{"subnet": nil, "ipam": map[string]any{
		"type": "host-local", "dataDir": ipamDir, "ranges": [][]map[string]string{
			{{"subnet": "10.78.0.0/24", "rangeStart": "10.78.0.100"}},
			{{"subnet": "fd00:78::/64", "rangeStart": "fd00:78::100"}},
		},
	}})
	c3, c4 := h.AddContainer("c3"), h.AddContainer("c4")
	rt3, rt4 := h.rt("dual-3", c3, "eth0", nil), h.rt("dual-4", c4, "eth0", nil)
	r3, r4 := h.mustAdd(delegated, rt3), h.mustAdd(delegated, rt4)
	if got := strings.Join(resultIPs(r3), " "); got != "10.78.0.100/24 fd00:78::100/64" {
		t.Fatalf("host-local pod's addresses %q", got)
	}
	if net := h.MustEbpfnet("network", "inspect", "dualipam"); !strings.Contains(net, "fd00:78::/64") || !strings.Contains(net, `"gateway6": "fd00:78::1"`) {
		t.Fatalf("the network did not take host-local's IPv6 range:\n%s", net)
	}
	testutil.Serve6(t, h.Namespace(c3), "c3", ":80")
	if r := testutil.MustAsk(t, h.Namespace(c4), "udp6", "[fd00:78::100]:80"); r.Server != "c3" || r.Source != "fd00:78::101" {
		t.Fatalf("pod to pod over IPv6 with host-local: %+v (results %v %v)", r, resultIPs(r3), resultIPs(r4))
	}
	if err := h.check(delegated, rt4); err != nil {
		t.Fatalf("CHECK: %v", err)
	}
	h.mustDel(delegated, rt3)
	h.mustDel(delegated, rt4)
	if eps := h.ls(); len(eps) != 0 {
		t.Fatalf("endpoints left after DEL: %v", eps)
	}
}

// IPv6-only conflists: ebpfnet's own IPAM with "ipv4": false, and
// host-local with only an IPv6 range. The result holds the IPv6 address
// and route alone; the pods talk IPv6; CHECK and DEL work.
func TestCNIIPv6Only(t *testing.T) {
	h := newCNIHost(t)
	own := h.netList("v6only", "1.0.0", map[string]any{"subnet": nil, "ipv4": false, "ipv6": true, "subnet6": "fd00:79::/64"})
	ipamDir := t.TempDir()
	delegated := h.netList("v6ipam", "1.0.0", map[string]any{"subnet": nil, "ipam": map[string]any{
		"type": "host-local", "dataDir": ipamDir, "ranges": [][]map[string]string{
			{{"subnet": "fd00:7a::/64", "rangeStart": "fd00:7a::100"}},
		},
	}})
	c1, c2, c3 := h.AddContainer("c1"), h.AddContainer("c2"), h.AddContainer("c3")
	rt1, rt2, rt3 := h.rt("v6-1", c1, "eth0", nil), h.rt("v6-2", c2, "eth0", nil), h.rt("v6-3", c3, "eth0", nil)
	r1, r2 := h.mustAdd(own, rt1), h.mustAdd(own, rt2)
	r3 := h.mustAdd(delegated, rt3)
	for _, c := range []struct {
		r    *current.Result
		want string
		gw   string
	}{{r1, "fd00:79::2/64", "fd00:79::1"}, {r2, "fd00:79::3/64", "fd00:79::1"}, {r3, "fd00:7a::100/64", "fd00:7a::1"}} {
		if got := strings.Join(resultIPs(c.r), " "); got != c.want {
			t.Errorf("result addresses %q, want %s alone", got, c.want)
		}
		if !hasDefault6(c.r, c.gw) || len(c.r.Routes) != 1 {
			t.Errorf("result routes %v, want ::/0 via %s alone", c.r.Routes, c.gw)
		}
	}
	if a := h.Exec(c1, "ip", "-4", "-o", "addr", "show", "dev", "eth0"); strings.TrimSpace(a) != "" {
		t.Errorf("pod has IPv4 addresses:\n%s", a)
	}
	testutil.Serve6(t, h.Namespace(c2), "c2", ":80")
	if r := testutil.MustAsk(t, h.Namespace(c1), "tcp6", "[fd00:79::3]:80"); r.Server != "c2" || r.Source != "fd00:79::2" {
		t.Fatalf("pod to pod on an IPv6-only network: %+v", r)
	}
	if err := h.check(own, rt2); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	if err := h.check(delegated, rt3); err != nil {
		t.Errorf("CHECK (host-local): %v", err)
	}
	h.mustDel(own, rt1)
	h.mustDel(own, rt2)
	h.mustDel(delegated, rt3)
	if eps := h.ls(); len(eps) != 0 {
		t.Fatalf("endpoints left after DEL: %v", eps)
	}
}

// A runtime's IPv6 portMappings are published (Docker 28's rules): an
// entry per family for one port is one binding on every address, "::"
// alone answers IPv6 alone, an IPv6 address that address. On a network
// without IPv6 the IPv6 entries are dropped, the IPv4 ones published.
func TestCNIPortMappingsIPv6(t *testing.T) {
	h := newCNIHost(t)
	dualStackUplink(h.Topology)
	dual := h.netList("dual", "1.0.0", map[string]any{"subnet": "10.77.0.0/24", "ipv6": true, "subnet6": "fd00:77::/64"})
	v4 := h.netList("v4only", "1.0.0", map[string]any{"subnet": "10.79.0.0/24"})
	c1, c2 := h.AddContainer("c1"), h.AddContainer("c2")
	pm := func(hostIP string, hostPort, ctrPort int) map[string]any {
		return map[string]any{"hostPort": hostPort, "containerPort": ctrPort, "protocol": "tcp", "hostIP": hostIP}
	}
	rt1 := h.rt("pm6-1", c1, "eth0", map[string]any{"portMappings": []map[string]any{
		pm("0.0.0.0", 8080, 80), pm("::", 8080, 80), pm("::", 8081, 80), pm(hostIP6, 8082, 80),
	}})
	rt2 := h.rt("pm6-2", c2, "eth0", map[string]any{"portMappings": []map[string]any{pm("0.0.0.0", 9090, 90), pm("::", 9090, 90)}})
	h.mustAdd(dual, rt1)
	h.mustAdd(v4, rt2)
	testutil.Serve(t, h.Namespace(c1), "c1", ":80")
	testutil.Serve6(t, h.Namespace(c1), "c1", ":80")
	testutil.Serve(t, h.Namespace(c2), "c2", ":90")
	ext := h.Namespace(h.Ext)
	for _, tc := range []struct {
		network, addr, want string
	}{
		{"tcp4", testutil.HostIP + ":8080", "c1"},
		{"tcp6", "[" + hostIP6 + "]:8080", "c1"},
		{"tcp4", testutil.HostIP + ":8081", ""},
		{"tcp6", "[" + hostIP6 + "]:8081", "c1"},
		{"tcp6", "[" + hostIP6 + "]:8082", "c1"},
		{"tcp4", testutil.HostIP + ":9090", "c2"},
		{"tcp6", "[" + hostIP6 + "]:9090", "c2"}, // c2 has no IPv6: NAT64
	} {
		r, err := testutil.Ask(ext, tc.network, tc.addr)
		switch {
		case tc.want != "" && (err != nil || !strings.HasPrefix(r, tc.want+" ")):
			t.Errorf("%s %s: %q %v, want %s", tc.network, tc.addr, r, err, tc.want)
		case tc.want == "" && !errors.Is(err, syscall.ECONNREFUSED):
			t.Errorf("%s %s: %q %v, want refused", tc.network, tc.addr, r, err)
		}
	}
	h.mustDel(dual, rt1)
	h.mustDel(v4, rt2)
	if es, err := h.Views().PortEntries(); err != nil || len(es) != 0 {
		t.Errorf("published ports left after DEL: %v %v", es, err)
	}
}
