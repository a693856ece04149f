package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

// NAT66: a container of a dual-stack network with masquerade reaches the
// outside over IPv6 as the host's uplink address, TCP, UDP and ICMPv6
// echo, with the host's IPv6 forwarding off and its ip6tables FORWARD
// policy DROP: only the datapath forwards and translates. The flows show
// in ct ls; hop limit 1 and packets past the uplink's MTU are answered by
// the gateway; unsolicited IPv6 to the container stays out.
func TestNAT66(t *testing.T) {
	tp := newTopology(t)
	dualStackUplink(tp)
	c1 := tp.AddContainer("c1")
	tp.MustEbpfnet("network", "create", "d6", "--ipv6", "--subnet", "172.30.0.0/24", "--subnet", "fd00:30::/64")
	tp.MustEbpfnet("attach", "--network", "d6", c1)
	tp.Exec(tp.Host, "ip6tables", "-P", "FORWARD", "DROP")
	if fwd := strings.TrimSpace(tp.Exec(tp.Host, "sysctl", "-n", "net.ipv6.conf.all.forwarding")); fwd != "0" {
		t.Fatalf("the host forwards IPv6 (%s): the test would not show the datapath's own forwarding", fwd)
	}
	ext := tp.Namespace(tp.Ext)
	testutil.Serve6(t, ext, "ext", ":8080")
	server := "[" + extIP6 + "]:8080"

	for range 3 {
		if r := testutil.MustAsk(t, tp.Namespace(c1), "tcp6", server); r.Server != "ext" || r.Source != hostIP6 {
			t.Fatalf("TCP over IPv6: %+v, want ext seeing the host's %s", r, hostIP6)
		}
	}
	if r := testutil.MustAsk(t, tp.Namespace(c1), "udp6", server); r.Server != "ext" || r.Source != hostIP6 {
		t.Fatalf("UDP over IPv6: %+v, want ext seeing the host's %s", r, hostIP6)
	}
	tp.Exec(c1, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", extIP6)

	// ct ls shows the flows with IPv6 tuples, both directions.
	ct := tp.MustEbpfnet("ct", "ls")
	for _, want := range []string{"[fd00:30::2]:", "-> [" + extIP6 + "]:8080", "[" + extIP6 + "]:8080 -> [" + hostIP6 + "]:", "icmpv6 [fd00:30::2]:"} {
		if !strings.Contains(ct, want) {
			t.Errorf("ct ls lacks %q:\n%s", want, ct)
		}
	}
	// The GC keeps live flows.
	if out := tp.MustEbpfnet("ct", "gc"); !strings.Contains(out, "expired 0 flows") {
		t.Errorf("ct gc expired live flows: %s", out)
	}

	// What the host does not forward is answered by the container's
	// gateway, as a router would: hop limit 1 (traceroute), and a packet
	// past the uplink's MTU (path MTU discovery).
	if out := tp.Exec(c1, "sh", "-c", "ping -6 -c 1 -t 1 -W 2 "+extIP6+" || true"); !strings.Contains(out, "From fd00:30::1") || !strings.Contains(out, "Time exceeded") {
		t.Errorf("hop limit 1: want time exceeded from the gateway:\n%s", out)
	}
	tp.Exec(tp.Host, "ip", "link", "set", testutil.UplinkIf, "mtu", "1280")
	if out := tp.Exec(c1, "sh", "-c", "ping -6 -c 1 -M do -s 1400 -W 2 "+extIP6+" || true"); !strings.Contains(out, "mtu=1280") {
		t.Errorf("past the uplink's MTU: want packet too big from the gateway:\n%s", out)
	}

	// Unsolicited IPv6 from outside to the container, routed to the host:
	// direct routing, dropped and counted.
	tp.Exec(tp.Ext, "ip", "-6", "route", "add", "fd00:30::/64", "via", hostIP6)
	testutil.Serve6(t, tp.Namespace(c1), "c1", ":8081")
	v := tp.Views()
	direct := dropCount(t, v, "direct_routing")
	if !testutil.TimesOut(ext, "[fd00:30::2]:8081", time.Second) {
		t.Fatal("the outside reached the container's IPv6 address unsolicited")
	}
	if dropCount(t, v, "direct_routing") == direct {
		t.Error("no direct_routing drop counted")
	}

	// Detached, its IPv6 flows are forgotten with it.
	tp.MustEbpfnet("detach", c1)
	if ct := tp.MustEbpfnet("ct", "ls"); strings.Contains(ct, "fd00:30::2") || strings.Contains(ct, hostIP6) {
		t.Errorf("ct ls after detach still shows c1's IPv6 flows:\n%s", ct)
	}
}
