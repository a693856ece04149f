package integration

import (
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

// Ports published on every address answer on the host's IPv6 address too,
// DNATed in BPF to the container's IPv6 address with the client's address
// kept (Docker's docker-proxy hides it), with the host's IPv6 forwarding
// off and its ip6tables FORWARD policy DROP: only the datapath forwards.
// An unpublished port is refused by the host; a user firewall allow list
// naming IPv4 prefixes only refuses IPv6 clients (TestFirewallIPv6 for
// IPv6 prefixes).
func TestPublishedPortsOverIPv6(t *testing.T) {
	tp := newTopology(t)
	dualStackUplink(tp)
	web, web4 := tp.AddContainer("web"), tp.AddContainer("web4")
	tp.MustEbpfnet("network", "create", "d6", "--ipv6", "--subnet", "172.30.0.0/24", "--subnet", "fd00:30::/64")
	tp.MustEbpfnet("network", "create", "n4", "--subnet", "172.31.0.0/24")
	tp.MustEbpfnet("attach", "--network", "d6", "-p", "8080:80", "-p", "5353:53/udp", web)
	tp.MustEbpfnet("attach", "--network", "n4", "-p", "9090:90", web4)
	tp.Exec(tp.Host, "ip6tables", "-P", "FORWARD", "DROP")
	if fwd := strings.TrimSpace(tp.Exec(tp.Host, "sysctl", "-n", "net.ipv6.conf.all.forwarding")); fwd != "0" {
		t.Fatalf("the host forwards IPv6 (%s): the test would not show the datapath's own forwarding", fwd)
	}
	testutil.Serve6(t, tp.Namespace(web), "web", ":80")
	testutil.Serve6(t, tp.Namespace(web), "web", ":53")
	testutil.Serve(t, tp.Namespace(web4), "web4", ":90")
	ext := tp.Namespace(tp.Ext)

	for range 3 {
		if r := testutil.MustAsk(t, ext, "tcp6", "["+hostIP6+"]:8080"); r.Server != "web" || r.Source != extIP6 {
			t.Fatalf("TCP to the published port over IPv6: %+v, want web seeing the client's %s", r, extIP6)
		}
	}
	if r := testutil.MustAsk(t, ext, "udp6", "["+hostIP6+"]:5353"); r.Server != "web" || r.Source != extIP6 {
		t.Fatalf("UDP to the published port over IPv6: %+v, want web seeing the client's %s", r, extIP6)
	}
	ct := tp.MustEbpfnet("ct", "ls")
	for _, want := range []string{"[" + extIP6 + "]:", "-> [" + hostIP6 + "]:8080", "[fd00:30::2]:80 -> [" + extIP6 + "]:"} {
		if !strings.Contains(ct, want) {
			t.Errorf("ct ls lacks %q:\n%s", want, ct)
		}
	}

	// Not published: the host refuses it, nothing hangs. (Published by a
	// container without IPv6: NAT64, TestNAT64PublishedPort.)
	for _, port := range []string{"8081"} {
		if _, err := testutil.Dial(ext, "tcp6", "["+hostIP6+"]:"+port, 2*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("[%s]:%s: %v, want connection refused by the host", hostIP6, port, err)
		}
	}
	// Over IPv4 the IPv4-only container answers.
	if r := testutil.MustAsk(t, ext, "tcp4", testutil.HostIP+":9090"); r.Server != "web4" {
		t.Errorf("the IPv4 published port: %+v", r)
	}

	// Unsolicited IPv6 from outside to the container: direct routing.
	tp.Exec(tp.Ext, "ip", "-6", "route", "add", "fd00:30::/64", "via", hostIP6)
	v := tp.Views()
	direct := dropCount(t, v, "direct_routing")
	if !testutil.TimesOut(ext, "[fd00:30::2]:80", time.Second) {
		t.Fatal("the outside reached the container's IPv6 address unsolicited")
	}
	if dropCount(t, v, "direct_routing") == direct {
		t.Error("no direct_routing drop counted")
	}

	// An allow list of the client's IPv4 address: its implied deny is of
	// both families, so IPv6 is refused.
	tp.MustEbpfnet("firewall", "add", "--port", "8080/tcp", "--source", testutil.ExtIP)
	fw := dropCount(t, v, "firewall")
	if !testutil.TimesOut(ext, "["+hostIP6+"]:8080", time.Second) {
		t.Fatal("an IPv6 client reached a published port past the firewall")
	}
	if dropCount(t, v, "firewall") == fw {
		t.Error("no firewall drop counted")
	}
	tp.MustEbpfnet("firewall", "flush")
	if r := testutil.MustAsk(t, ext, "tcp6", "["+hostIP6+"]:8080"); r.Server != "web" || r.Source != extIP6 {
		t.Fatalf("after firewall flush: %+v", r)
	}

	// Detached, its IPv6 flows are forgotten and the port is the host's.
	tp.MustEbpfnet("detach", web)
	if ct := tp.MustEbpfnet("ct", "ls"); strings.Contains(ct, extIP6) {
		t.Errorf("ct ls after detach still shows web's IPv6 flows:\n%s", ct)
	}
	if _, err := testutil.Dial(ext, "tcp6", "["+hostIP6+"]:8080", 2*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("after detach: %v, want connection refused by the host", err)
	}
}
