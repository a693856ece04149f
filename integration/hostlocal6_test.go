package integration

import (
	"errors"
	"net"
	"net/netip"
	"os"
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
// IPv6 is refused at once over IPv6 (no NAT64) but reached over a
// dual-stack socket's v4-mapped address, as over IPv4. The bind guard
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

	// web4 has no IPv6 address: refused at once rather than left to
	// whatever the host holds there; over IPv4, and over a dual-stack
	// socket's v4-mapped address, it answers.
	for _, addr := range []string{"[::1]:9090", "[" + hostIP6 + "]:9090"} {
		if _, err := testutil.Dial(host, "tcp6", addr, 2*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("%s (a container without IPv6): %v, want connection refused", addr, err)
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
