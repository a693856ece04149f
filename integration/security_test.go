package integration

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

// Issue 9 items 1-4 through real namespaces (loader/security_test.go has
// them at the program level). Each of these tests fails on b7b202c, the
// datapath before the fixes: see the comment on each.

// Item 1. A port published on 127.0.0.1 answers the host's own 127.0.0.1
// (cgroup hooks) but not a frame from the wire addressed to 127.0.0.1 at
// the uplink's MAC, which the kernel of a neighbour on the link can send.
// On b7b202c from_uplink found the 127.0.0.1 binding and DNATed the SYN:
// the flow appears in conntrack and the container answers with a SYN-ACK;
// and "martian" was no drop reason.
func TestLoopbackPublishedPortRefusesTheWire(t *testing.T) {
	tp := natHost(t)
	web := tp.AddContainer("web")
	tp.MustEbpfnet("attach", "--network", "n1", "-p", "127.0.0.1:8080:80", web)
	testutil.Serve(t, tp.Namespace(web), "web", ":80")
	fromHost := func() {
		t.Helper()
		if got, err := testutil.Ask(tp.Namespace(tp.Host), "tcp4", "127.0.0.1:8080"); err != nil || !strings.HasPrefix(got, "web 172.30.0.1:") {
			t.Errorf("the host's 127.0.0.1:8080: %q, %v; want web seeing 172.30.0.1", got, err)
		}
	}
	fromHost()

	views := tp.Views()
	before := dropCount(t, views, "martian")
	ext := tp.Namespace(tp.Ext)
	sock := openRaw(t, ext, "eth0", true)
	extMAC, upMAC := ifMAC(t, tp, tp.Ext, "eth0"), ifMAC(t, tp, tp.Host, testutil.UplinkIf)
	client := netip.MustParseAddrPort(extAddr + ":41234")
	published := netip.MustParseAddrPort("127.0.0.1:8080")
	for i := 0; i < 3; i++ {
		if err := sock.send(tcpSYN(t, extMAC, upMAC, client, published)); err != nil {
			t.Fatal(err)
		}
	}
	if sock.wait(2*time.Second, func(f []byte) bool { return tcpFrom(f, published, true, true) }) {
		t.Error("a SYN to 127.0.0.1:8080 from the wire was answered with a SYN-ACK")
	}
	if fs := flowsFrom(t, views, client.Addr()); len(fs) > 0 {
		t.Errorf("a frame to 127.0.0.1 from the wire made flows: %v", fs)
	}
	if got := dropCount(t, views, "martian"); got < before+3 {
		t.Errorf("martian drops %d -> %d, want 3 more", before, got)
	}
	fromHost() // still there for the host
}

// routeToContainers gives the outside host a route to the container subnet
// via the host, and lets the host namespace (only) forward: what a router
// in front of a Docker host can do.
func routeToContainers(tp *testutil.Topology, subnets ...string) {
	tp.Exec(tp.Host, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	for _, s := range subnets {
		tp.Exec(tp.Ext, "ip", "route", "add", s, "via", hostAddr)
	}
}

// udpProbe listens on addr (UDP) in ns and reports whether a datagram
// arrives within timeout of the call to got. Unlike a request answered by
// the server, it sees the packet arrive even when the reply cannot get back.
type udpProbe struct{ c net.PacketConn }

func listenUDP(t *testing.T, ns netnsutil.Namespace, addr string) *udpProbe {
	t.Helper()
	var p udpProbe
	err := netnsutil.Do(ns, func() (err error) {
		p.c, err = net.ListenPacket("udp4", addr)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.c.Close() })
	return &p
}

func (p *udpProbe) got(timeout time.Duration) bool {
	p.c.SetReadDeadline(time.Now().Add(timeout))
	_, _, err := p.c.ReadFrom(make([]byte, 512))
	return err == nil
}

func sendUDP(t *testing.T, ns netnsutil.Namespace, addr string) {
	t.Helper()
	c, err := testutil.Dial(ns, "udp4", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 3; i++ {
		c.Write([]byte("probe\n"))
	}
}

// Item 2. Direct routing: the outside host routes the container subnet via
// the host. Netfilter FORWARD accepts here, as on a host without Docker's
// rules, so only the datapath stands in the way. On b7b202c from_uplink
// passed such packets to the stack, which routed them into the bridge: the
// container received the datagram (the probe below) and "direct_routing"
// was no drop reason.
func TestDirectRoutingToContainersRefused(t *testing.T) {
	tp := newTopology(t)
	tp.Exec(tp.Host, "iptables", "-P", "FORWARD", "ACCEPT")
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	tp.MustEbpfnet("network", "create", "open", "--subnet", "172.31.0.0/24", "--gateway-mode", "nat-unprotected")
	routeToContainers(tp, "172.30.0.0/24", "172.31.0.0/24")
	c := tp.AddContainer("c")
	tp.MustEbpfnet("attach", "--network", "n1", "-p", "8080:80", "-p", "8053:53/udp", c)
	testutil.Serve(t, tp.Namespace(c), "c", ":80")
	testutil.Serve(t, tp.Namespace(c), "c", ":53")
	probe := listenUDP(t, tp.Namespace(c), ":81")
	testutil.Serve(t, tp.Namespace(c), "c-tcp81", "0.0.0.0:82")
	ext := tp.Namespace(tp.Ext)
	views := tp.Views()
	before := dropCount(t, views, "direct_routing")

	// The published ports work, through the host's address.
	expect(t, testutil.MustAsk(t, ext, "tcp4", hostAddr+":8080"), "c", extAddr)
	expect(t, testutil.MustAsk(t, ext, "udp4", hostAddr+":8053"), "c", extAddr)
	// Unpublished ports, and published ones addressed directly, do not.
	sendUDP(t, ext, "172.30.0.2:81")
	if probe.got(2 * time.Second) {
		t.Error("an unpublished UDP port of a container received a datagram routed from outside")
	}
	for _, addr := range []string{"172.30.0.2:82", "172.30.0.2:80"} {
		if !testutil.TimesOut(ext, addr, 2*time.Second) {
			t.Errorf("TCP %s reachable by direct routing", addr)
		}
	}
	if got := dropCount(t, views, "direct_routing"); got < before+5 {
		t.Errorf("direct_routing drops %d -> %d, want at least 5 more (3 datagrams, 2 SYNs)", before, got)
	}

	// nat-unprotected: every port of the container is reachable, as in
	// Docker's gateway mode of that name.
	o := tp.AddContainer("o")
	tp.MustEbpfnet("attach", "--network", "open", o)
	testutil.Serve(t, tp.Namespace(o), "o", ":82")
	oprobe := listenUDP(t, tp.Namespace(o), ":81")
	sendUDP(t, ext, "172.31.0.2:81")
	if !oprobe.got(3 * time.Second) {
		t.Error("nat-unprotected: the datagram did not reach the container")
	}
	expect(t, testutil.MustAsk(t, ext, "tcp4", "172.31.0.2:82"), "o", extAddr)
}

// Item 2, routed networks (--ip-masquerade=false): the container's own
// flows go out with its address and their replies come in (conntrack kind
// "routed"); nothing unsolicited does. Netfilter FORWARD drops, so the
// routed flow can only be carried by the datapath. On b7b202c unsolicited
// inbound was passed to the stack (here dropped by netfilter, but counted
// as no direct_routing drop, and let in on any host whose FORWARD accepts).
func TestRoutedNetworkTracksItsOwnFlowsOnly(t *testing.T) {
	tp := natHost(t)
	tp.MustEbpfnet("network", "create", "rt", "--subnet", "172.31.0.0/24", "--ip-masquerade=false")
	routeToContainers(tp, "172.31.0.0/24")
	c := tp.AddContainer("c")
	tp.MustEbpfnet("attach", "--network", "rt", c)
	testutil.Serve(t, tp.Namespace(c), "c", ":80")
	testutil.Serve(t, tp.Namespace(tp.Ext), "ext", ":9000")
	views := tp.Views()
	before := dropCount(t, views, "direct_routing")

	// Outbound: the outside sees the container's own address.
	expect(t, testutil.MustAsk(t, tp.Namespace(c), "tcp4", extAddr+":9000"), "ext", "172.31.0.2")
	fs, err := views.Flows()
	if err != nil {
		t.Fatal(err)
	}
	routed := 0
	for _, f := range fs {
		if f.Kind.String() == "routed" {
			routed++
		}
	}
	if routed == 0 {
		t.Errorf("no routed conntrack entries after an outbound flow: %v", fs)
	}
	// Inbound, unsolicited: dropped.
	if !testutil.TimesOut(tp.Namespace(tp.Ext), "172.31.0.2:80", 2*time.Second) {
		t.Error("unsolicited inbound TCP reached a container of a routed network")
	}
	if got := dropCount(t, views, "direct_routing"); got <= before {
		t.Errorf("direct_routing drops %d -> %d, want more", before, got)
	}
}

// Item 3. A container answers ARP for another container's IP (a reply
// sent to the host, and a gratuitous one); the host's neighbour entry
// for that IP keeps the right MAC. On b7b202c ARP was passed to the bridge
// unchecked and the host took c1's MAC for c2's address.
func TestARPSpoofingRefused(t *testing.T) {
	tp := natHost(t)
	c1, c2 := tp.AddContainer("c1"), tp.AddContainer("c2")
	tp.MustEbpfnet("attach", "--network", "n1", "--ip", "172.30.0.2", c1)
	tp.MustEbpfnet("attach", "--network", "n1", "--ip", "172.30.0.3", c2)
	tp.Exec(tp.Host, "ping", "-c", "1", "-W", "2", "172.30.0.3")
	mac1, mac2 := ifMAC(t, tp, c1, "eth0"), ifMAC(t, tp, c2, "eth0")
	if got := neighMAC(tp, "172.30.0.3"); got != mac2.String() {
		t.Fatalf("host neighbour 172.30.0.3 = %q before the attack, want %s", got, mac2)
	}
	gwMAC := neighMACIn(t, tp, c1, "172.30.0.1")
	views := tp.Views()
	before := dropCount(t, views, "spoofed_arp")
	// Past the kernel's locktime (1 s): an honest reply would now override.
	time.Sleep(1500 * time.Millisecond)
	sock := openRaw(t, tp.Namespace(c1), "eth0", false)
	victim, gw := netip.MustParseAddr("172.30.0.3"), netip.MustParseAddr("172.30.0.1")
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	frames := [][]byte{
		arpReply(t, mac1, gwMAC, mac1, victim, gwMAC, gw),     // unicast reply to the gateway
		arpReply(t, mac1, bcast, mac1, victim, bcast, victim), // gratuitous
	}
	for _, f := range frames {
		for i := 0; i < 3; i++ {
			if err := sock.send(f); err != nil {
				t.Fatal(err)
			}
		}
	}
	time.Sleep(500 * time.Millisecond)
	if got := neighMAC(tp, "172.30.0.3"); got != mac2.String() {
		t.Errorf("host neighbour 172.30.0.3 = %q after c1's spoofed ARP, want c2's %s", got, mac2)
	}
	if got := dropCount(t, views, "spoofed_arp"); got < before+6 {
		t.Errorf("spoofed_arp drops %d -> %d, want 6 more", before, got)
	}
	// c1's honest ARP still works: it reaches the gateway.
	tp.Exec(c1, "ping", "-c", "1", "-W", "2", "172.30.0.1")
}

// neighMACIn resolves ip from namespace ns and returns its MAC.
func neighMACIn(t *testing.T, tp *testutil.Topology, ns, ip string) net.HardwareAddr {
	t.Helper()
	tp.Exec(ns, "ping", "-c", "1", "-W", "2", ip)
	out := tp.Exec(ns, "ip", "-4", "neigh", "show", ip)
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "lladdr" {
			hw, err := net.ParseMAC(f[i+1])
			if err != nil {
				t.Fatal(err)
			}
			return hw
		}
	}
	t.Fatalf("no neighbour entry for %s in %s: %q", ip, ns, out)
	return nil
}

// Item 4. --icc=false must hold over IPv6 link-local addresses too, which
// every container interface has without any IPv6 configuration. On b7b202c
// IPv6 was passed to the bridge, which switched it between the containers:
// the connection succeeded.
func TestICCDisabledHoldsForIPv6LinkLocal(t *testing.T) {
	tp := newTopology(t)
	a, b := tp.AddContainer("a"), tp.AddContainer("b")
	tp.MustEbpfnet("network", "create", "quiet", "--subnet", "10.77.0.0/24", "--icc=false")
	tp.MustEbpfnet("attach", "--network", "quiet", a)
	tp.MustEbpfnet("attach", "--network", "quiet", b)
	for _, ns := range []string{a, b} {
		tp.Exec(ns, "sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=0")
	}
	ll := linkLocal(t, tp, b)
	// a's own link-local address too: while it is tentative, a's dial
	// fails at once without sending anything (EADDRNOTAVAIL), and no
	// drop would be counted.
	linkLocal(t, tp, a)
	var l net.Listener
	err := netnsutil.Do(tp.Namespace(b), func() (err error) {
		l, err = net.Listen("tcp6", "[::]:80")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	views := tp.Views()
	before := dropCount(t, views, "ipv6")
	c, err := testutil.Dial(tp.Namespace(a), "tcp6", "["+ll+"%eth0]:80", 3*time.Second)
	if err == nil {
		c.Close()
		t.Fatalf("--icc=false: a reached b at [%s%%eth0]:80 over IPv6", ll)
	}
	if got := dropCount(t, views, "ipv6"); got <= before {
		t.Errorf("ipv6 drops %d -> %d, want more", before, got)
	}
}

// linkLocal waits for ns's eth0 fe80:: address to leave DAD and returns it.
func linkLocal(t *testing.T, tp *testutil.Topology, ns string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := tp.Exec(ns, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link")
		f := strings.Fields(out)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet6" && !strings.Contains(out, "tentative") {
				addr, _, _ := strings.Cut(f[i+1], "/")
				return addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no usable link-local address on eth0 in %s: %q", ns, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
