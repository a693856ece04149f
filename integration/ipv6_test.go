package integration

import (
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

// IPv6 addresses of the sandbox uplink (2001:db8::/32 is for documentation).
const (
	extIP6  = "2001:db8:18::1"
	hostIP6 = "2001:db8:18::2"
)

// dualStackUplink gives the sandbox uplink IPv6 addresses and the host an
// IPv6 default route via the outside namespace.
func dualStackUplink(tp *testutil.Topology) {
	tp.Exec(tp.Ext, "ip", "addr", "add", extIP6+"/64", "dev", "eth0", "nodad")
	tp.Exec(tp.Host, "ip", "addr", "add", hostIP6+"/64", "dev", testutil.UplinkIf, "nodad")
	tp.Exec(tp.Host, "ip", "-6", "route", "add", "default", "via", extIP6)
}

// Two containers of a dual-stack network talk IPv6 straight through the
// datapath (redirect_peer, with the host's IPv6 forwarding off and its
// ip6tables FORWARD policy DROP): TCP, UDP and ICMPv6, over global and
// link-local addresses, with neighbour discovery answered in BPF. Spoofed
// sources and other networks are refused, each counted (the outside:
// TestNAT66, TestRoutedIPv6).
func TestIPv6BetweenContainers(t *testing.T) {
	tp := newTopology(t)
	dualStackUplink(tp)
	c1, c2, c3 := tp.AddContainer("c1"), tp.AddContainer("c2"), tp.AddContainer("c3")
	tp.MustEbpfnet("network", "create", "d6", "--ipv6", "--subnet", "172.30.0.0/24", "--subnet", "fd00:30::/64")
	tp.MustEbpfnet("network", "create", "e6", "--ipv6", "--ip-masquerade=false", "--subnet", "172.31.0.0/24", "--subnet", "fd00:31::/64")
	if out := tp.MustEbpfnet("attach", "--network", "d6", c1); !strings.Contains(out, "172.30.0.2 fd00:30::2") {
		t.Fatalf("attach printed %q, want both addresses", out)
	}
	tp.MustEbpfnet("attach", "--network", "d6", "--ip6", "fd00:30::20", c2)
	tp.MustEbpfnet("attach", "--network", "e6", c3)
	tp.Exec(tp.Host, "ip6tables", "-P", "FORWARD", "DROP")
	if fwd := strings.TrimSpace(tp.Exec(tp.Host, "sysctl", "-n", "net.ipv6.conf.all.forwarding")); fwd != "0" {
		t.Fatalf("the host forwards IPv6 (%s): the test would not show the datapath's own forwarding", fwd)
	}

	ep1, ep2 := inspect(t, tp, c1), inspect(t, tp, c2)
	if ep1.IP6.String() != "fd00:30::2" || ep2.IP6.String() != "fd00:30::20" {
		t.Fatalf("IPv6 addresses %s, %s", ep1.IP6, ep2.IP6)
	}
	// Only the addresses the control plane gave: no SLAAC, no tentative ones.
	addrs := tp.Exec(c1, "ip", "-6", "-o", "addr", "show", "dev", "eth0")
	mac, _ := net.ParseMAC(ep1.MAC)
	ll := maps.LinkLocal(mac).String()
	if n := strings.Count(addrs, "inet6"); n != 2 || !strings.Contains(addrs, "fd00:30::2/64") || !strings.Contains(addrs, ll+"/64") || strings.Contains(addrs, "tentative") {
		t.Fatalf("c1's IPv6 addresses, want fd00:30::2/64 and %s/64:\n%s", ll, addrs)
	}
	if r := tp.Exec(c1, "ip", "-6", "route", "show", "default"); !strings.Contains(r, "via fd00:30::1") {
		t.Fatalf("c1's IPv6 default route: %q", r)
	}

	v := tp.Views()
	testutil.Serve6(t, tp.Namespace(c2), "c2", ":8080")
	tp.Exec(c1, "ping", "-6", "-c", "1", "-W", "2", "fd00:30::20") // neighbour discovery first
	bridgeTxBefore := txPackets(t, tp, ep2.HostVeth)
	rxBefore := inspect(t, tp, c2).Rx.Packets
	const pings = 50
	tp.Exec(c1, "ping", "-6", "-c", "50", "-i", "0.002", "-W", "2", "fd00:30::20")
	for range 3 {
		if r := testutil.MustAsk(t, tp.Namespace(c1), "tcp6", "[fd00:30::20]:8080"); r.Server != "c2" || r.Source != "fd00:30::2" {
			t.Fatalf("TCP over IPv6: %+v, want c2 seeing fd00:30::2", r)
		}
	}
	if r := testutil.MustAsk(t, tp.Namespace(c1), "udp6", "[fd00:30::20]:8080"); r.Server != "c2" || r.Source != "fd00:30::2" {
		t.Fatalf("UDP over IPv6: %+v", r)
	}
	if got := inspect(t, tp, c2).Rx.Packets - rxBefore; got < pings+3*3 {
		t.Errorf("the datapath delivered %d packets to c2, want at least %d", got, pings+9)
	}
	// redirect_peer skips the bridge: its port to c2 sent no data packet
	// (a few neighbour or MLD packets may flood through it).
	if tx := txPackets(t, tp, ep2.HostVeth) - bridgeTxBefore; tx > 10 {
		t.Errorf("the bridge sent %d packets to c2: the IPv6 fast path went through it", tx)
	}

	// Link-local, with the peer's address derived from its MAC.
	mac2, _ := net.ParseMAC(ep2.MAC)
	ll2 := maps.LinkLocal(mac2).String()
	tp.Exec(c1, "ping", "-6", "-c", "2", "-W", "2", ll2+"%eth0")
	if r := testutil.MustAsk(t, tp.Namespace(c1), "tcp6", "["+ll2+"%eth0]:8080"); r.Server != "c2" || !strings.HasPrefix(r.Source, ll) {
		t.Fatalf("TCP over link-local: %+v, want c2 seeing %s", r, ll)
	}
	// c1 learned c2's MAC from an answer made in BPF, not from c2.
	if neigh := tp.Exec(c1, "ip", "-6", "neigh", "show", "fd00:30::20"); !strings.Contains(neigh, ep2.MAC) {
		t.Errorf("c1's neighbour entry for c2: %q, want %s", neigh, ep2.MAC)
	}

	// The host, by its gateway address.
	tp.Exec(c1, "ping", "-6", "-c", "1", "-W", "2", "fd00:30::1")

	// A spoofed source: an address the control plane did not give c1.
	spoofed := dropCount(t, v, "spoofed_ip")
	tp.Exec(c1, "ip", "addr", "add", "fd00:30::77/64", "dev", "eth0", "nodad")
	if c, err := testutil.DialFrom(tp.Namespace(c1), "tcp6", "[fd00:30::77]:0", "[fd00:30::20]:8080", time.Second); err == nil {
		c.Close()
		t.Fatal("a connection from a spoofed IPv6 source went through")
	}
	if dropCount(t, v, "spoofed_ip") == spoofed {
		t.Error("no spoofed_ip drop counted for a spoofed IPv6 source")
	}
	tp.Exec(c1, "ip", "addr", "del", "fd00:30::77/64", "dev", "eth0")

	// Another network: its container refused, its gateway (the host) not.
	testutil.Serve6(t, tp.Namespace(c3), "c3", ":8080")
	isolated := dropCount(t, v, "network_isolation")
	if !testutil.TimesOut(tp.Namespace(c1), "[fd00:31::2]:8080", time.Second) {
		t.Fatal("c1 reached a container of another network over IPv6")
	}
	if dropCount(t, v, "network_isolation") == isolated {
		t.Error("no network_isolation drop counted")
	}
	tp.Exec(c1, "ping", "-6", "-c", "1", "-W", "2", "fd00:31::1")

	// The host's own uplink address is the host: reachable.
	tp.Exec(c1, "ping", "-6", "-c", "1", "-W", "2", hostIP6)

	// Detached, c2's addresses are gone from the datapath.
	tp.MustEbpfnet("detach", c2)
	if !testutil.TimesOut(tp.Namespace(c1), "[fd00:30::20]:8080", time.Second) {
		t.Error("c2's IPv6 address still answers after detach")
	}
}

// An IPv4-only network keeps refusing IPv6, as before dual stack.
func TestIPv6RefusedOnIPv4OnlyNetwork(t *testing.T) {
	tp := newTopology(t)
	c1 := tp.AddContainer("c1")
	tp.MustEbpfnet("network", "create", "v4", "--subnet", "172.30.0.0/24")
	tp.MustEbpfnet("attach", "--network", "v4", c1)
	if out := tp.Exec(c1, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global"); strings.TrimSpace(out) != "" {
		t.Fatalf("a container of an IPv4-only network has global IPv6 addresses:\n%s", out)
	}
	v := tp.Views()
	before := dropCount(t, v, "ipv6")
	tp.Exec(c1, "sh", "-c", "ping -6 -c 1 -W 1 ff02::1%eth0 || true")
	if dropCount(t, v, "ipv6") == before {
		t.Error("IPv6 from a container of an IPv4-only network was not dropped as ipv6")
	}
	for _, bad := range [][]string{
		{"network", "create", "x", "--subnet", "fd00:30::/64"},
		{"network", "create", "x", "--ipv6", "--subnet", "fd00:30::/64", "--subnet", "fd00:31::/64"},
		{"network", "create", "x", "--ipv6", "--subnet", "fe80::/64"},
		{"network", "create", "x", "--ipv6", "--subnet", "fd00:30::1/64"},
		{"attach", "--network", "v4", "--ip6", "fd00::9", tp.AddContainer("c2")},
	} {
		if _, errOut, err := tp.Ebpfnet(bad...); err == nil || strings.TrimSpace(errOut) == "" {
			t.Errorf("ebpfnet %s: %v %q, want a clear error", strings.Join(bad, " "), err, errOut)
		}
	}
	if out := tp.MustEbpfnet("network", "ls", "-q"); strings.Contains(out, "x\n") {
		t.Errorf("a refused network was made:\n%s", out)
	}
}

// TestIPv6Doc runs docs/ipv6.md's example.
func TestIPv6Doc(t *testing.T) {
	tp := newTopology(t)
	t.Cleanup(func() {
		for _, ns := range []string{"v6a", "v6b"} {
			exec.Command("ip", "netns", "delete", ns).Run()
		}
	})
	runREADMEBlock(t, tp, "<!-- readme-test ipv6 -->")
}

// IPv6 entries no stored endpoint accounts for (a crash between map
// writes, state changed behind ebpfnet's back) are removed by the
// daemon's reconcile, so their addresses can be given out again; a stored
// endpoint's stay.
func TestDaemonRemovesIPv6Orphans(t *testing.T) {
	tp := newTopology(t)
	c1, c2 := tp.AddContainer("c1"), tp.AddContainer("c2")
	tp.MustEbpfnet("network", "create", "n6", "--ipv6", "--subnet", "172.30.0.0/24", "--subnet", "fd00:30::/64")
	tp.MustEbpfnet("attach", "--network", "n6", c1)
	views := tp.Views()
	orphan, orphanMAC := netip.MustParseAddr("fd00:30::9"), net.HardwareAddr{0x02, 0x42, 0xac, 0x1e, 0x00, 0x09}
	if err := views.PutEndpoint(maps.Endpoint{IP: netip.MustParseAddr("172.30.0.9"), MAC: orphanMAC, NetID: 1, Ifindex: 4999, IP6: orphan}); err != nil {
		t.Fatal(err)
	}
	// Only the IPv6 side left, as a crash before the IPv4 entries' write
	// would leave it: the IPv4 sweep does not see it.
	dp, err := loader.Load(loader.Options{PinRoot: tp.PinRoot})
	if err != nil {
		t.Fatal(err)
	}
	defer dp.Close()
	if err := errors.Join(dp.Maps.Endpoints.Delete(uint32(4999)), views.DeleteEndpointIP(netip.MustParseAddr("172.30.0.9"))); err != nil {
		t.Fatal(err)
	}
	startDaemon(t, tp, "127.0.0.1:9469")
	waitFor(t, 10*time.Second, func() bool {
		_, errG := views.LookupEndpointIP6(orphan)
		_, errL := views.LookupEndpointIP6(maps.LinkLocal(orphanMAC))
		_, errI := views.LookupEndpoint6(4999)
		return errG != nil && errL != nil && errI != nil
	})
	if _, err := views.LookupEndpointIP6(inspect(t, tp, c1).IP6); err != nil {
		t.Fatalf("reconcile removed a stored endpoint's IPv6 entry: %v", err)
	}
	if out := tp.MustEbpfnet("attach", "--network", "n6", "--ip6", orphan.String(), c2); !strings.Contains(out, orphan.String()) {
		t.Fatalf("attach with the freed address: %q", out)
	}
}
