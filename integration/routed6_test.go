package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

// Routed IPv6 (--ip-masquerade=false): a container's IPv6 reaches the
// outside with its own address, forwarded by the datapath alone (the
// host's IPv6 forwarding off, its ip6tables FORWARD policy DROP), and
// only the replies come back: the outside's own connections to the
// container are dropped as direct routing. With gateway mode
// nat-unprotected they go through, the client's address seen.
func TestRoutedIPv6(t *testing.T) {
	tp := newTopology(t)
	dualStackUplink(tp)
	c1, c2 := tp.AddContainer("c1"), tp.AddContainer("c2")
	tp.MustEbpfnet("network", "create", "r6", "--ipv6", "--ip-masquerade=false", "--subnet", "172.31.0.0/24", "--subnet", "fd00:31::/64")
	tp.MustEbpfnet("network", "create", "u6", "--ipv6", "--ip-masquerade=false", "--gateway-mode", "nat-unprotected", "--subnet", "172.32.0.0/24", "--subnet", "fd00:32::/64")
	tp.MustEbpfnet("attach", "--network", "r6", c1)
	tp.MustEbpfnet("attach", "--network", "u6", c2)
	tp.Exec(tp.Host, "ip6tables", "-P", "FORWARD", "DROP")
	if fwd := strings.TrimSpace(tp.Exec(tp.Host, "sysctl", "-n", "net.ipv6.conf.all.forwarding")); fwd != "0" {
		t.Fatalf("the host forwards IPv6 (%s): the test would not show the datapath's own forwarding", fwd)
	}
	// The outside routes the containers' prefixes to the host, as a
	// routed network's upstream router would.
	tp.Exec(tp.Ext, "ip", "-6", "route", "add", "fd00:31::/64", "via", hostIP6)
	tp.Exec(tp.Ext, "ip", "-6", "route", "add", "fd00:32::/64", "via", hostIP6)
	ext := tp.Namespace(tp.Ext)
	testutil.Serve6(t, ext, "ext", ":8080")
	server := "[" + extIP6 + "]:8080"

	for _, proto := range []string{"tcp6", "tcp6", "udp6"} {
		if r := testutil.MustAsk(t, tp.Namespace(c1), proto, server); r.Server != "ext" || r.Source != "fd00:31::2" {
			t.Fatalf("%s: %+v, want ext seeing c1's own fd00:31::2", proto, r)
		}
	}
	tp.Exec(c1, "ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", extIP6)
	ct := tp.MustEbpfnet("ct", "ls")
	for _, want := range []string{"[fd00:31::2]:", "[" + extIP6 + "]:8080 -> [fd00:31::2]:", "routed"} {
		if !strings.Contains(ct, want) {
			t.Errorf("ct ls lacks %q:\n%s", want, ct)
		}
	}

	// Unsolicited from outside: direct routing, dropped and counted.
	testutil.Serve6(t, tp.Namespace(c1), "c1", ":8081")
	v := tp.Views()
	direct := dropCount(t, v, "direct_routing")
	if !testutil.TimesOut(ext, "[fd00:31::2]:8081", time.Second) {
		t.Fatal("the outside reached a routed network's container unsolicited")
	}
	if dropCount(t, v, "direct_routing") == direct {
		t.Error("no direct_routing drop counted")
	}

	// nat-unprotected: the outside reaches c2 directly, TCP, UDP and echo,
	// and c2 sees the client's address; c2 reaches out with its own.
	testutil.Serve6(t, tp.Namespace(c2), "c2", ":8081")
	for _, proto := range []string{"tcp6", "udp6"} {
		if r := testutil.MustAsk(t, ext, proto, "[fd00:32::2]:8081"); r.Server != "c2" || r.Source != extIP6 {
			t.Fatalf("%s from outside: %+v, want c2 seeing %s", proto, r, extIP6)
		}
	}
	tp.Exec(tp.Ext, "ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", "fd00:32::2")
	if r := testutil.MustAsk(t, tp.Namespace(c2), "tcp6", server); r.Source != "fd00:32::2" {
		t.Fatalf("c2 to the outside: %+v, want its own address", r)
	}

	// Detached, the flows go and the address answers nothing.
	tp.MustEbpfnet("detach", c2)
	if !testutil.TimesOut(ext, "[fd00:32::2]:8081", time.Second) {
		t.Error("c2's address still answers after detach")
	}
	if ct := tp.MustEbpfnet("ct", "ls"); strings.Contains(ct, "fd00:32::2") {
		t.Errorf("ct ls after detach still shows c2's flows:\n%s", ct)
	}
}
