package integration

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

// A host process reaches a port published on every address over IPv6, at
// [::1] and at the uplink's IPv6 address, through the socket hooks
// (connect6, sendmsg6): it is pointed at the container's IPv6 address, and
// getpeername/recvfrom show the address it dialled. A container without
// IPv6 is connected to at its IPv4 address, mapped, from a dual-stack
// socket, as at a v4-mapped address; an IPv6-only socket fails at once. The bind guard
// takes the published port over IPv6 as over IPv4. Other namespaces are
// untouched.
func TestHostLocalAccessOverIPv6(t *testing.T) {
	tp := newTopology(t)
	dualStackUplink(tp)
	web, web4 := tp.AddContainer("web"), tp.AddContainer("web4")
	tp.MustEbpfnet("network", "create", "d6", "--ipv6", "--subnet", "172.30.0.0/24", "--subnet", "fd00:30::/64")
	tp.MustEbpfnet("network", "create", "n4", "--subnet", "172.31.0.0/24")
	tp.MustEbpfnet("attach", "--network", "d6", "-p", "8080:80", "-p", "8053:53/udp", web)
	tp.MustEbpfnet("attach", "--network", "n4", "-p", "9090:90", web4)
	testutil.Serve6(t, tp.Namespace(web), "web", ":80")
	testutil.Serve6(t, tp.Namespace(web), "web", ":53")
	testutil.Serve(t, tp.Namespace(web4), "web4", ":90")
	host := tp.Namespace(tp.Host)

	for _, addr := range []string{"[::1]:8080", "[" + hostIP6 + "]:8080"} {
		if r := testutil.MustAsk(t, host, "tcp6", addr); r.Server != "web" || r.Source != "fd00:30::1" {
			t.Errorf("TCP from the host to %s: %+v, want web seeing the gateway fd00:30::1", addr, r)
		}
		c, err := testutil.Dial(host, "tcp6", addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.RemoteAddr().String(); got != addr {
			t.Errorf("getpeername of %s = %s", addr, got)
		}
		c.Close()
	}
	if r := testutil.MustAsk(t, host, "udp6", "[::1]:8053"); r.Server != "web" {
		t.Errorf("connected UDP from the host to [::1]:8053: %+v", r)
	}
	// Unconnected UDP: sendmsg6 points the datagram at the container,
	// recvmsg6 shows the answer coming from what was asked.
	for _, addr := range []string{"[::1]:8053", "[" + hostIP6 + "]:8053"} {
		var from net.Addr
		var reply string
		err := netnsutil.Do(host, func() error {
			pc, err := net.ListenPacket("udp6", "[::]:0")
			if err != nil {
				return err
			}
			defer pc.Close()
			to, err := net.ResolveUDPAddr("udp6", addr)
			if err != nil {
				return err
			}
			if _, err := pc.WriteTo([]byte("hello\n"), to); err != nil {
				return err
			}
			pc.SetReadDeadline(time.Now().Add(3 * time.Second))
			buf := make([]byte, 512)
			n, f, err := pc.ReadFrom(buf)
			from, reply = f, string(buf[:n])
			return err
		})
		if err != nil {
			t.Fatalf("unconnected UDP to %s: %v", addr, err)
		}
		if from.String() != addr || len(reply) < 4 || reply[:4] != "web " {
			t.Errorf("unconnected UDP to %s: %q from %s, want web's answer from %s", addr, reply, from, addr)
		}
	}

	// web4 has no IPv6 address: a dual-stack socket's connect is pointed
	// at its IPv4 address, mapped, and getpeername shows what was dialled;
	// an IPv6-only socket cannot go there and fails at once, rather than
	// reaching whatever the host holds at the address.
	for _, addr := range []string{"[::1]:9090", "[" + hostIP6 + "]:9090"} {
		c, err := testutil.Dial(host, "tcp", addr, 2*time.Second) // Go: AF_INET6, dual stack
		if err != nil {
			t.Errorf("%s (a container without IPv6) from a dual-stack socket: %v", addr, err)
			continue
		}
		if got := c.RemoteAddr().String(); got != addr {
			t.Errorf("getpeername after dialling %s = %s", addr, got)
		}
		if line, err := testutil.AskOn(c); err != nil || !strings.HasPrefix(line, "web4 ") {
			t.Errorf("%s: %q, %v, want web4", addr, line, err)
		}
		c.Close()
		if _, err := testutil.Dial(host, "tcp6", addr, 2*time.Second); err == nil { // Go: IPV6_V6ONLY
			t.Errorf("%s from an IPv6-only socket: connected, want an error", addr)
		}
	}
	if r := testutil.MustAsk(t, host, "tcp4", "127.0.0.1:9090"); r.Server != "web4" {
		t.Errorf("127.0.0.1:9090: %+v", r)
	}
	c := dialMapped(t, host, netip.MustParseAddrPort("[::ffff:127.0.0.1]:9090"))
	if got := c.RemoteAddr().String(); got != "[::ffff:127.0.0.1]:9090" && got != "127.0.0.1:9090" {
		t.Errorf("getpeername of [::ffff:127.0.0.1]:9090 = %s", got)
	}
	if line, err := testutil.AskOn(c); err != nil || len(line) < 5 || line[:5] != "web4 " {
		t.Errorf("[::ffff:127.0.0.1]:9090: %q, %v, want web4", line, err)
	}
	c.Close()

	// The bind guard over IPv6.
	for _, tc := range []struct {
		network, addr string
		taken         bool
	}{
		{"tcp6", "[::]:8080", true},
		{"tcp6", "[" + hostIP6 + "]:8080", true},
		{"tcp6", "[::1]:8080", false}, // loopback: only a port published there is taken
		{"udp6", "[::]:8053", true},
		{"tcp6", "[::]:8053", false}, // another protocol
		{"tcp6", "[::]:8082", false},
		{"tcp6", "[::]:9090", true}, // published for both families, whatever the container has
	} {
		err := netnsutil.Do(host, func() error {
			if tc.network == "udp6" {
				c, err := net.ListenPacket(tc.network, tc.addr)
				if err == nil {
					c.Close()
				}
				return err
			}
			l, err := net.Listen(tc.network, tc.addr)
			if err == nil {
				l.Close()
			}
			return err
		})
		switch {
		case tc.taken && !errors.Is(err, syscall.EADDRINUSE):
			t.Errorf("bind %s %s: %v, want EADDRINUSE", tc.network, tc.addr, err)
		case !tc.taken && err != nil:
			t.Errorf("bind %s %s: %v, want success", tc.network, tc.addr, err)
		}
	}

	// The outside host's own [::1]:8080 is its own.
	testutil.Serve6(t, tp.Namespace(tp.Ext), "ext-local", "[::1]:8080")
	if r := testutil.MustAsk(t, tp.Namespace(tp.Ext), "tcp6", "[::1]:8080"); r.Server != "ext-local" {
		t.Errorf("another namespace's [::1]:8080 was redirected: %+v", r)
	}
}

// dialMapped connects an IPv6 TCP socket of ns to a v4-mapped address,
// which Go's dialer would do over IPv4.
func dialMapped(t *testing.T, ns netnsutil.Namespace, to netip.AddrPort) net.Conn {
	t.Helper()
	var c net.Conn
	err := netnsutil.Do(ns, func() error {
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		f := os.NewFile(uintptr(fd), "mapped")
		defer f.Close()
		tv := unix.Timeval{Sec: 3}
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
		if err := unix.Connect(fd, &unix.SockaddrInet6{Addr: to.Addr().As16(), Port: int(to.Port())}); err != nil {
			return err
		}
		c, err = net.FileConn(f)
		return err
	})
	if err != nil {
		t.Fatalf("connect to %s: %v", to, err)
	}
	return c
}

// A port published on one IPv6 address of the host (-p [ADDR]:8081:80,
// Docker's syntax) answers there only: from outside at that address
// (DNAT in from_uplink, the client's address kept), from the host through
// the socket hooks; [::1] answers the host alone. port and ls show the
// address in brackets. An address the host does not hold, or a container
// without IPv6, is refused with nothing changed; one on every address
// conflicts with it.
func TestPublishOnOneIPv6Address(t *testing.T) {
	tp := newTopology(t)
	dualStackUplink(tp)
	const other6 = "2001:db8:18::3"
	tp.Exec(tp.Host, "ip", "addr", "add", other6+"/64", "dev", testutil.UplinkIf, "nodad")
	web, web4, b := tp.AddContainer("web"), tp.AddContainer("web4"), tp.AddContainer("b")
	tp.MustEbpfnet("network", "create", "d6", "--ipv6", "--subnet", "172.30.0.0/24", "--subnet", "fd00:30::/64")
	tp.MustEbpfnet("network", "create", "n4", "--subnet", "172.31.0.0/24")
	tp.MustEbpfnet("attach", "--network", "d6", "-p", "["+hostIP6+"]:8081:80", "-p", "[::1]:8082:80", "-p", "[::1]:8053:53/udp", web)
	testutil.Serve6(t, tp.Namespace(web), "web", ":80")
	testutil.Serve6(t, tp.Namespace(web), "web", ":53")
	ext, host := tp.Namespace(tp.Ext), tp.Namespace(tp.Host)

	if r := testutil.MustAsk(t, ext, "tcp6", "["+hostIP6+"]:8081"); r.Server != "web" || r.Source != extIP6 {
		t.Errorf("from outside to [%s]:8081: %+v, want web seeing %s", hostIP6, r, extIP6)
	}
	for _, addr := range []string{"[" + other6 + "]:8081", "[" + hostIP6 + "]:8082"} {
		if _, err := testutil.Dial(ext, "tcp6", addr, 2*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("from outside to %s: %v, want refused (published elsewhere)", addr, err)
		}
	}
	for _, addr := range []string{"[::1]:8082", "[" + hostIP6 + "]:8081"} {
		if r := testutil.MustAsk(t, host, "tcp6", addr); r.Server != "web" {
			t.Errorf("from the host to %s: %+v", addr, r)
		}
	}
	if r := testutil.MustAsk(t, host, "udp6", "[::1]:8053"); r.Server != "web" {
		t.Errorf("UDP from the host to [::1]:8053: %+v", r)
	}
	for _, addr := range []string{"[::1]:8081", "[" + hostIP6 + "]:8082", "127.0.0.1:8082"} {
		if _, err := testutil.Dial(host, "tcp", addr, 2*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("from the host to %s: %v, want refused (published elsewhere)", addr, err)
		}
	}
	// The bind guard takes the very address.
	for addr, taken := range map[string]bool{"[::1]:8082": true, "[" + hostIP6 + "]:8081": true, "[" + other6 + "]:8081": false} {
		err := netnsutil.Do(host, func() error {
			l, err := net.Listen("tcp6", addr)
			if err == nil {
				l.Close()
			}
			return err
		})
		if taken != errors.Is(err, syscall.EADDRINUSE) || (!taken && err != nil) {
			t.Errorf("bind %s: %v, taken %v", addr, err, taken)
		}
	}

	port := tp.MustEbpfnet("port", web)
	for _, want := range []string{"80/tcp -> [" + hostIP6 + "]:8081", "80/tcp -> [::1]:8082", "53/udp -> [::1]:8053"} {
		if !strings.Contains(port, want) {
			t.Errorf("port lacks %q:\n%s", want, port)
		}
	}
	if ls := tp.MustEbpfnet("ls"); !strings.Contains(ls, "[::1]:8082->80/tcp") {
		t.Errorf("ls lacks [::1]:8082->80/tcp:\n%s", ls)
	}

	for _, tc := range []struct{ network, target, spec, want string }{
		{"d6", b, "[2001:db8:99::1]:8090:80", "not an address of this host"},
		{"d6", b, "8081:80", "already published by endpoint " + web},
		{"d6", b, "[" + hostIP6 + "]:8081:80", "already published by endpoint " + web},
		{"d6", b, "[fe80::1]:8090:80", "link-local"},
		{"n4", web4, "[::1]:8090:80", "has no IPv6"},
	} {
		before := snapshot(t, tp, web, web4, b)
		if _, errOut, err := tp.Ebpfnet("attach", "--network", tc.network, "-p", tc.spec, tc.target); err == nil || !strings.Contains(errOut, tc.want) {
			t.Errorf("attach -p %s: %v %q, want %q", tc.spec, err, errOut, tc.want)
		}
		if after := snapshot(t, tp, web, web4, b); after != before {
			t.Errorf("attach -p %s changed the state:\nbefore:\n%s\nafter:\n%s", tc.spec, before, after)
		}
	}
	// Detached, the port is gone from ports6.
	tp.MustEbpfnet("detach", web)
	if _, err := testutil.Dial(ext, "tcp6", "["+hostIP6+"]:8081", 2*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("after detach: %v, want refused", err)
	}
	if es, err := tp.Views().PortEntries(); err != nil || len(es) != 0 {
		t.Errorf("published ports left after detach: %v %v", es, err)
	}
}

// Docker 28's host addresses: -p 0.0.0.0:P:80 answers IPv4 alone, -p
// [::]:P:80 IPv6 alone, -p P:80 both, from outside and from the host; the
// bind guard takes only the family published; 0.0.0.0 and [::] on the
// same port may go to two containers, no host address conflicts with
// either.
func TestPublishHostIPFamilies(t *testing.T) {
	tp := newTopology(t)
	dualStackUplink(tp)
	web, b, c := tp.AddContainer("web"), tp.AddContainer("b"), tp.AddContainer("c")
	tp.MustEbpfnet("network", "create", "d6", "--ipv6", "--subnet", "172.30.0.0/24", "--subnet", "fd00:30::/64")
	tp.MustEbpfnet("attach", "--network", "d6", "-p", "0.0.0.0:8080:80", "-p", "[::]:8081:80", "-p", "8082:80", web)
	for _, ns := range []string{web, b} {
		testutil.Serve(t, tp.Namespace(ns), ns, ":80")
		testutil.Serve6(t, tp.Namespace(ns), ns, ":80")
	}
	ext, host := tp.Namespace(tp.Ext), tp.Namespace(tp.Host)
	for _, tc := range []struct {
		ns            netnsutil.Namespace
		network, addr string
		answers       bool
	}{
		{ext, "tcp4", testutil.HostIP + ":8080", true},
		{ext, "tcp6", "[" + hostIP6 + "]:8080", false},
		{ext, "tcp4", testutil.HostIP + ":8081", false},
		{ext, "tcp6", "[" + hostIP6 + "]:8081", true},
		{ext, "tcp4", testutil.HostIP + ":8082", true},
		{ext, "tcp6", "[" + hostIP6 + "]:8082", true},
		{host, "tcp4", "127.0.0.1:8080", true},
		{host, "tcp6", "[::1]:8080", false},
		{host, "tcp4", "127.0.0.1:8081", false},
		{host, "tcp6", "[::1]:8081", true},
		{host, "tcp6", "[" + hostIP6 + "]:8081", true},
		{host, "tcp4", "127.0.0.1:8082", true},
		{host, "tcp6", "[::1]:8082", true},
	} {
		r, err := testutil.Ask(tc.ns, tc.network, tc.addr)
		switch {
		case tc.answers && (err != nil || !strings.HasPrefix(r, web+" ")):
			t.Errorf("%s %s from %s: %q %v, want web", tc.network, tc.addr, tc.ns.Path, r, err)
		case !tc.answers && !errors.Is(err, syscall.ECONNREFUSED):
			t.Errorf("%s %s from %s: %q %v, want refused (the other family's)", tc.network, tc.addr, tc.ns.Path, r, err)
		}
	}
	for _, tc := range []struct {
		network, addr string
		taken         bool
	}{
		{"tcp4", ":8080", true},
		{"tcp6", "[::]:8080", false}, // IPv4's alone
		{"tcp4", ":8081", false},     // IPv6's alone
		{"tcp6", "[::]:8081", true},
		{"tcp4", ":8082", true},
		{"tcp6", "[::]:8082", true},
	} {
		err := netnsutil.Do(host, func() error {
			l, err := net.Listen(tc.network, tc.addr)
			if err == nil {
				l.Close()
			}
			return err
		})
		if tc.taken != errors.Is(err, syscall.EADDRINUSE) || (!tc.taken && err != nil) {
			t.Errorf("bind %s %s: %v, taken %v", tc.network, tc.addr, err, tc.taken)
		}
	}
	if p := tp.MustEbpfnet("port", web); !strings.Contains(p, "80/tcp -> [::]:8081") || !strings.Contains(p, "80/tcp -> 0.0.0.0:8080") {
		t.Errorf("port:\n%s", p)
	}

	// [::]:8080 beside web's 0.0.0.0:8080: b answers IPv6 there.
	tp.MustEbpfnet("attach", "--network", "d6", "-p", "[::]:8080:80", b)
	if r := testutil.MustAsk(t, ext, "tcp6", "["+hostIP6+"]:8080"); r.Server != b {
		t.Errorf("[%s]:8080 after b published [::]:8080: %+v", hostIP6, r)
	}
	if r := testutil.MustAsk(t, ext, "tcp4", testutil.HostIP+":8080"); r.Server != web {
		t.Errorf("%s:8080 after b published [::]:8080: %+v", testutil.HostIP, r)
	}
	for _, spec := range []string{"8080:80", "8081:80", "0.0.0.0:8082:80", "[::]:8082:80"} {
		if _, errOut, err := tp.Ebpfnet("attach", "--network", "d6", "-p", spec, c); err == nil || !strings.Contains(errOut, "already published") {
			t.Errorf("attach -p %s: %v %q, want a conflict", spec, err, errOut)
		}
	}
}

// Hairpin over IPv6: a container reaching a published port at the host's
// IPv6 address (or its gateway's) is DNATed to the target's IPv6 address
// and SNATed to its network's IPv6 gateway, as over IPv4; the target
// itself too. From another dual-stack network the source is that
// network's gateway. A port published on [::1] or 0.0.0.0 is not reached.
func TestHairpinOverIPv6(t *testing.T) {
	tp := newTopology(t)
	dualStackUplink(tp)
	web, client, other := tp.AddContainer("web"), tp.AddContainer("client"), tp.AddContainer("other")
	tp.MustEbpfnet("network", "create", "d6", "--ipv6", "--subnet", "172.30.0.0/24", "--subnet", "fd00:30::/64")
	tp.MustEbpfnet("network", "create", "e6", "--ipv6", "--subnet", "172.31.0.0/24", "--subnet", "fd00:31::/64")
	tp.MustEbpfnet("attach", "--network", "d6", "-p", "8080:80", "-p", "5353:53/udp", "-p", "[::1]:8081:80", "-p", "0.0.0.0:8082:80", web)
	tp.MustEbpfnet("attach", "--network", "d6", client)
	tp.MustEbpfnet("attach", "--network", "e6", other)
	testutil.Serve6(t, tp.Namespace(web), "web", ":80")
	testutil.Serve6(t, tp.Namespace(web), "web", ":53")
	for _, tc := range []struct {
		from, network, addr, source string
	}{
		{client, "tcp6", "[" + hostIP6 + "]:8080", "fd00:30::1"},
		{client, "tcp6", "[fd00:30::1]:8080", "fd00:30::1"},
		{client, "udp6", "[" + hostIP6 + "]:5353", "fd00:30::1"},
		{web, "tcp6", "[" + hostIP6 + "]:8080", "fd00:30::1"},
		{other, "tcp6", "[" + hostIP6 + "]:8080", "fd00:31::1"},
	} {
		for range 2 {
			if r := testutil.MustAsk(t, tp.Namespace(tc.from), tc.network, tc.addr); r.Server != "web" || r.Source != tc.source {
				t.Errorf("%s %s from %s: %+v, want web seeing %s", tc.network, tc.addr, tc.from, r, tc.source)
			}
		}
	}
	if ct := tp.MustEbpfnet("ct", "ls"); !strings.Contains(ct, "hairpin") || !strings.Contains(ct, "-> ["+hostIP6+"]:8080") {
		t.Errorf("ct ls shows no IPv6 hairpin flow:\n%s", ct)
	}
	for _, addr := range []string{"[" + hostIP6 + "]:8081", "[::1]:8081", "[" + hostIP6 + "]:8082"} {
		if _, err := testutil.Dial(tp.Namespace(client), "tcp6", addr, 2*time.Second); err == nil {
			t.Errorf("%s from a container: answered, want refused", addr)
		}
	}
}
