package integration

import (
	"encoding/binary"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
	"github.com/ebpfnet/ebpfnet/internal/testing/etcdtest"
	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

// TestOverlayIPv6AcrossHosts: a dual-stack overlay network across three
// hosts. Containers on different hosts reach each other over IPv6 (TCP,
// UDP, ICMPv6; neighbour discovery answered on the sending host), each
// with the IPv6 twin of its cluster-unique IPv4 address; isolation holds
// between overlay networks; a VXLAN packet whose outer source is not the
// inner source's host, or with another network's VNI, is dropped; IPv6 to
// the outside leaves through the container's own host masqueraded (NAT66).
// Bad input is refused and changes nothing.
func TestOverlayIPv6AcrossHosts(t *testing.T) {
	t.Parallel()
	c, hs := newOverlayHosts(t, 3)
	// The hosts' resolver is the underlay address, where nothing serves
	// DNS: no query leaves the test's namespaces (as in
	// TestOverlayNamesAcrossHosts; the cluster's cleanup removes the file).
	for _, h := range c.Hosts {
		dir := filepath.Join("/etc/netns", h)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte("nameserver "+etcdtest.UnderlayIP+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range hs {
		h.startDaemon()
	}
	// Host 1 and the underlay speak IPv6 too (for NAT66 to the outside).
	c.Exec(c.Underlay, "ip", "addr", "add", "2001:db8:213::1/64", "dev", "br0", "nodad")
	c.Exec(c.Hosts[0], "ip", "addr", "add", "2001:db8:213::11/64", "dev", etcdtest.UplinkIf, "nodad")
	c.Exec(c.Hosts[0], "ip", "-6", "route", "add", "default", "via", "2001:db8:213::1")

	// Refused, with nothing created: an IPv6 subnet smaller than the
	// IPv4 one (every IPv4 address needs its twin), a gateway that is not
	// the IPv4 gateway's twin, an IPv6 subnet without --ipv6.
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--ipv6", "--subnet", "10.214.0.0/16", "--subnet", "fd00:214::/120"}, "as many host addresses"},
		{[]string{"--ipv6", "--subnet", "10.214.0.0/24", "--subnet", "fd00:214::/64", "--gateway", "fd00:214::9"}, "twin"},
		{[]string{"--subnet", "10.214.0.0/24", "--subnet", "fd00:214::/64"}, "needs --ipv6"},
	} {
		args := append([]string{"network", "create", "--driver", "overlay", "bad6"}, bad.args...)
		if _, errOut, err := hs[0].run(args...); err == nil || !strings.Contains(errOut, bad.want) || strings.Contains(errOut, "\n") {
			t.Errorf("network create %v: err %v, stderr %q: want one line with %q", bad.args, err, errOut, bad.want)
		}
	}
	if out := hs[1].must("network", "ls"); strings.Contains(out, "bad6") {
		t.Fatalf("a refused network exists:\n%s", out)
	}

	hs[0].must("network", "create", "--driver", "overlay", "ov6", "--ipv6", "--subnet", "10.213.0.0/24", "--subnet", "fd00:213::/64")
	hs[1].must("network", "create", "--driver", "overlay", "ov7", "--ipv6", "--subnet", "10.215.0.0/24", "--subnet", "fd00:215::/64")
	if out := hs[2].must("network", "ls"); !strings.Contains(out, "10.213.0.0/24,fd00:213::/64") || !strings.Contains(out, "10.213.0.1,fd00:213::1") {
		t.Errorf("network ls on host 3:\n%s", out)
	}

	nsA, a := container(t, c, "a")
	nsB, b := container(t, c, "b")
	nsC, cc := container(t, c, "c")
	nsX, x := container(t, c, "x")
	addrs := func(out string) (string, string) {
		f := strings.Fields(out)
		if len(f) < 4 {
			t.Fatalf("attach printed %q: want name, network, IPv4 and IPv6", out)
		}
		return f[2], f[3]
	}
	ipA, ip6A := addrs(hs[0].must("attach", "--network", "ov6", "--name", "a", nsA))
	ipB, ip6B := addrs(hs[1].must("attach", "--network", "ov6", "--name", "b", nsB))
	// --ip6 asks for the IPv4 address it is the twin of.
	ipC, ip6C := addrs(hs[2].must("attach", "--network", "ov6", "--name", "c", "--ip6", "fd00:213::99", nsC))
	_, ip6X := addrs(hs[1].must("attach", "--network", "ov7", "--name", "x", nsX))
	t.Logf("a %s %s (h1), b %s %s (h2), c %s %s (h3), x %s (h2, ov7)", ipA, ip6A, ipB, ip6B, ipC, ip6C, ip6X)
	for _, p := range [][2]string{{ipA, ip6A}, {ipB, ip6B}, {ipC, ip6C}} {
		v4, v6 := netip.MustParseAddr(p[0]).As4(), netip.MustParseAddr(p[1])
		want := netip.MustParseAddr("fd00:213::").As16()
		want[15] = v4[3]
		if v6 != netip.AddrFrom16(want) {
			t.Errorf("%s's IPv6 address %s: want its IPv4 address's twin %s", p[0], v6, netip.AddrFrom16(want))
		}
	}
	if ipC != "10.213.0.153" {
		t.Errorf("--ip6 fd00:213::99 gave IPv4 %s, want 10.213.0.153", ipC)
	}
	// An address that is no IPv4 address's twin is refused, nothing taken.
	nsD, _ := container(t, c, "d")
	if _, errOut, err := hs[0].run("attach", "--network", "ov6", "--name", "d", "--ip6", "fd00:213::1:5", nsD); err == nil || !strings.Contains(errOut, "twin") {
		t.Errorf("attach --ip6 beyond the IPv4 range: err %v, stderr %q", err, errOut)
	}
	if out := hs[0].must("ls"); strings.Contains(out, " d ") || strings.HasPrefix(out, "d ") {
		t.Errorf("refused attach left an endpoint:\n%s", out)
	}

	testutil.Serve6(t, a, "a", "[::]:7000")
	testutil.Serve6(t, b, "b", "[::]:7000")
	testutil.Serve6(t, cc, "c", "[::]:7000")
	testutil.Serve6(t, x, "x", "[::]:7000")
	for _, p := range []struct {
		from       netnsutil.Namespace
		fromIP, to string
		server     string
	}{
		{a, ip6A, ip6B, "b"}, {b, ip6B, ip6A, "a"}, {a, ip6A, ip6C, "c"}, {cc, ip6C, ip6B, "b"},
	} {
		for _, network := range []string{"tcp6", "udp6"} {
			r := askEventually(t, p.from, network, net.JoinHostPort(p.to, "7000"))
			if r.Server != p.server || r.Source != p.fromIP {
				t.Errorf("%s %s -> %s: reply %+v, want server %s seeing %s", network, p.fromIP, p.to, r, p.server, p.fromIP)
			}
		}
	}
	testutil.Run(t, "ip", "netns", "exec", nsA, "ping", "-6", "-c", "2", "-W", "2", ip6C)
	// IPv6 inside is decapsulated in from_uplink too: host 2's VXLAN
	// device sees none of it.
	rxBefore := hs[1].vxlanRx()
	testutil.Run(t, "ip", "netns", "exec", nsA, "ping", "-6", "-c", "10", "-i", "0.05", "-W", "2", ip6B)
	if n := hs[1].vxlanRx() - rxBefore; n >= 10 {
		t.Errorf("host 2's VXLAN device received %d packets of 10 IPv6 pings: the datapath did not decapsulate them", n)
	}
	// The neighbour entry for c came from host 1's datapath: c's MAC.
	neigh := testutil.Run(t, "ip", "netns", "exec", nsA, "ip", "-6", "neigh", "show", ip6C)
	macC := strings.TrimSpace(testutil.Run(t, "ip", "netns", "exec", nsC, "cat", "/sys/class/net/eth0/address"))
	if !strings.Contains(neigh, macC) {
		t.Errorf("a's neighbour entry for c: %q, want c's MAC %s", neigh, macC)
	}
	// Names: host 1's resolver answers AAAA for b (on host 2), asked on
	// the network's IPv6 gateway.
	answersEventually(t, nsA, "fd00:213::1", "b", dns.TypeAAAA, []string{ip6B}, 10*time.Second)
	if got := hs[0].remoteIPs(); !strings.Contains(got, ip6B) || !strings.Contains(got, ip6C) {
		t.Errorf("host 1's overlay ls: %q, want b's and c's IPv6 addresses", got)
	}

	// Isolation between overlay networks over IPv6, across hosts and on
	// one host.
	if !testutil.TimesOut(a, net.JoinHostPort(ip6X, "7000"), time.Second) {
		t.Errorf("ov6 container a reached ov7 container x")
	}
	if !testutil.TimesOut(b, net.JoinHostPort(ip6X, "7000"), time.Second) {
		t.Errorf("ov6 container b reached ov7 container x on its own host")
	}

	// Each host's own uplink: a's IPv6 to the outside is masqueraded to
	// host 1's IPv6 address.
	under := namespace(t, c.Underlay)
	testutil.Serve6(t, under, "underlay", "[2001:db8:213::1]:7100")
	if r := askEventually(t, a, "tcp6", "[2001:db8:213::1]:7100"); r.Source != "2001:db8:213::11" {
		t.Errorf("a -> underlay over IPv6: seen from %s, want host 1's 2001:db8:213::11 (NAT66)", r.Source)
	}

	// Forged VXLAN to host 2: from host 3 claiming a's IPv6 address (a
	// lives on host 1), and from host 1 for a on ov7's VNI.
	vni := map[string]uint32{}
	for _, name := range []string{"ov6", "ov7"} {
		var nets []struct {
			Name string `json:"name"`
			VNI  uint32 `json:"vni"`
		}
		if err := json.Unmarshal([]byte(hs[1].must("network", "ls", "-o", "json")), &nets); err != nil {
			t.Fatal(err)
		}
		for _, n := range nets {
			if n.Name == name {
				vni[name] = n.VNI
			}
		}
	}
	before := hs[1].drops()
	sendVXLAN6(t, c.Hosts[2], etcdtest.HostIP(2), vni["ov6"], ip6A, ip6B)
	sendVXLAN6(t, c.Hosts[0], etcdtest.HostIP(2), vni["ov7"], ip6A, ip6B)
	waitUntil(t, 10*time.Second, "the forged packets' drops on host 2", func() bool {
		d := hs[1].drops()
		return d["overlay_spoofed"] > before["overlay_spoofed"] && d["overlay_vni"] > before["overlay_vni"]
	})
	// The genuine path still works.
	if r := askEventually(t, b, "udp6", net.JoinHostPort(ip6A, "7000")); r.Server != "a" || r.Source != ip6B {
		t.Errorf("b -> a after the forgeries: %+v", r)
	}

	// Detach gives both addresses back: the other hosts forget them.
	hs[2].must("detach", "c")
	waitUntil(t, 15*time.Second, "host 1 forgetting c", func() bool {
		got := hs[0].remoteIPs()
		return !strings.Contains(got, ip6C) && !strings.Contains(got, ipC)
	})
}

// sendVXLAN6 sends, from namespace ns, one VXLAN packet to host's port 4789
// carrying a UDP datagram over IPv6 from src to dst (inner MACs: Docker's,
// from the IPv4 twins' last byte on 10.213.0.0/24 as the cluster gives).
func sendVXLAN6(t *testing.T, ns, host string, vni uint32, src, dst string) {
	t.Helper()
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	mac := func(a [16]byte) []byte { return []byte{0x02, 0x42, 10, 213, 0, a[15]} }
	var b []byte
	b = binary.BigEndian.AppendUint32(b, 0x08000000) // VXLAN: I flag
	b = binary.BigEndian.AppendUint32(b, vni<<8)
	b = append(b, mac(d)...)
	b = append(b, mac(s)...)
	b = append(b, 0x86, 0xdd)
	payload := []byte("forged")
	udp := make([]byte, 8)
	binary.BigEndian.PutUint16(udp[0:], 40000)
	binary.BigEndian.PutUint16(udp[2:], 7000)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	ip := []byte{0x60, 0, 0, 0, 0, 0, 17, 64}
	binary.BigEndian.PutUint16(ip[4:], uint16(8+len(payload)))
	ip = append(append(ip, s[:]...), d[:]...)
	var sum uint32
	add := func(p []byte) {
		for i := 0; i+1 < len(p); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(p[i:]))
		}
		if len(p)%2 == 1 {
			sum += uint32(p[len(p)-1]) << 8
		}
	}
	add(s[:])
	add(d[:])
	sum += uint32(8+len(payload)) + 17
	add(udp)
	add(payload)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(udp[6:], ^uint16(sum))
	b = append(append(append(b, ip...), udp...), payload...)
	n, err := netnsutil.Resolve(ns)
	if err != nil {
		t.Fatal(err)
	}
	if err := netnsutil.Do(n, func() error {
		c, err := net.Dial("udp4", net.JoinHostPort(host, "4789"))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write(b)
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
