package integration

import (
	"errors"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

const (
	hostAddr = testutil.HostIP
	extAddr  = testutil.ExtIP
)

// natHost is a sandbox host with network n1 (172.30.0.0/24) whose netfilter
// forwards nothing, so whatever works goes through the eBPF datapath.
func natHost(t *testing.T) *testutil.Topology {
	tp := newTopology(t)
	tp.Exec(tp.Host, "iptables", "-P", "FORWARD", "DROP")
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	return tp
}

// publishedServer attaches a container publishing 8080:80 to n1, with a
// named server "c" on :80.
func publishedServer(tp *testutil.Topology) string {
	c := tp.AddContainer("c")
	tp.MustEbpfnet("attach", "--network", "n1", "-p", "8080:80", c)
	testutil.Serve(tp.T(), tp.Namespace(c), "c", ":80")
	return c
}

func expect(t *testing.T, r testutil.Reply, server, source string) {
	t.Helper()
	if r.Server != server || r.Source != source {
		t.Fatalf("reply from %s seeing source %s; want %s seeing %s", r.Server, r.Source, server, source)
	}
}

func TestPublishedPortsFromOutside(t *testing.T) {
	tp := natHost(t)
	c := tp.AddContainer("web")
	tp.MustEbpfnet("attach", "--network", "n1", "-p", "8080:80", "-p", "5353:53/udp", "-p", "9000-9001:7000-7001", c)
	testutil.Serve(t, tp.Namespace(c), "web", ":80")
	testutil.Serve(t, tp.Namespace(c), "web", ":53")
	testutil.Serve(t, tp.Namespace(c), "web7001", ":7001")
	ext := tp.Namespace(tp.Ext)

	// DNAT keeps the client's address: the container sees the outside host.
	expect(t, testutil.MustAsk(t, ext, "tcp4", hostAddr+":8080"), "web", extAddr)
	expect(t, testutil.MustAsk(t, ext, "udp4", hostAddr+":5353"), "web", extAddr)
	expect(t, testutil.MustAsk(t, ext, "tcp4", hostAddr+":9001"), "web7001", extAddr)
	// Not published: the host itself answers (refuses), nothing is forwarded.
	if _, err := testutil.Dial(ext, "tcp4", hostAddr+":8081", 2*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("unpublished port: %v, want connection refused by the host", err)
	}

	out := tp.MustEbpfnet("port", c)
	for _, want := range []string{"80/tcp -> 0.0.0.0:8080", "53/udp -> 0.0.0.0:5353", "7000-7001/tcp -> 0.0.0.0:9000-9001"} {
		if !strings.Contains(out, want) {
			t.Errorf("ebpfnet port lacks %q:\n%s", want, out)
		}
	}
	if out := tp.MustEbpfnet("port", "--expand", c); !strings.Contains(out, "7001/tcp -> 0.0.0.0:9001\n") {
		t.Errorf("ebpfnet port --expand lacks 7001/tcp -> 0.0.0.0:9001:\n%s", out)
	}
	if out := tp.MustEbpfnet("nat", "ls"); !strings.Contains(out, "0.0.0.0:8080/tcp") || !strings.Contains(out, "0.0.0.0:9000-9001/tcp") || !strings.Contains(out, "dnat") {
		t.Errorf("nat ls:\n%s", out)
	}
	assertNoNetfilter(t, tp)
}

// assertNoNetfilter checks ebpfnet added no iptables or nft rules and that
// netfilter conntrack never saw the flows.
func assertNoNetfilter(t *testing.T, tp *testutil.Topology) {
	t.Helper()
	for _, line := range strings.Split(tp.Exec(tp.Host, "iptables-save"), "\n") {
		if strings.HasPrefix(line, "-A") {
			t.Errorf("iptables rule in the host namespace: %s", line)
		}
	}
	if out := tp.Exec(tp.Host, "nft", "list", "ruleset"); strings.Contains(out, "dnat") || strings.Contains(out, "masquerade") {
		t.Errorf("nft NAT rules in the host namespace:\n%s", out)
	}
	if out, err := exec.Command("ip", "netns", "exec", tp.Host, "cat", "/proc/sys/net/netfilter/nf_conntrack_count").Output(); err == nil {
		if n := strings.TrimSpace(string(out)); n != "0" {
			t.Errorf("netfilter conntrack holds %s entries in the host namespace, want 0", n)
		}
	}
}

func TestMasqueradeToOutside(t *testing.T) {
	tp := natHost(t)
	c := tp.AddContainer("c")
	tp.MustEbpfnet("attach", "--network", "n1", c)
	testutil.Serve(t, tp.Namespace(tp.Ext), "ext", ":9000")
	cn := tp.Namespace(c)
	// The outside host sees the host's address, never the container's.
	for i := 0; i < 3; i++ {
		expect(t, testutil.MustAsk(t, cn, "tcp4", extAddr+":9000"), "ext", hostAddr)
	}
	expect(t, testutil.MustAsk(t, cn, "udp4", extAddr+":9000"), "ext", hostAddr)
	tp.Exec(c, "ping", "-c", "3", "-i", "0.2", "-W", "2", extAddr)
	// Port unreachable comes back translated: the container's UDP socket
	// learns the port is closed.
	conn, err := testutil.Dial(cn, "udp4", extAddr+":9999", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	conn.Write([]byte("anyone?\n"))
	if _, err := conn.Read(make([]byte, 64)); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("UDP to a closed outside port: %v, want connection refused (ICMP error translated)", err)
	}
	out := tp.MustEbpfnet("ct", "ls")
	if !strings.Contains(out, "snat") || !strings.Contains(out, hostAddr) {
		t.Fatalf("ct ls shows no SNAT flow:\n%s", out)
	}
	assertNoNetfilter(t, tp)
}

func TestHairpinToPublishedPort(t *testing.T) {
	tp := natHost(t)
	web, client := tp.AddContainer("web"), tp.AddContainer("client")
	tp.MustEbpfnet("attach", "--network", "n1", "-p", "8080:80", web)
	tp.MustEbpfnet("attach", "--network", "n1", client)
	testutil.Serve(t, tp.Namespace(web), "web", ":80")
	// As with Docker, the target sees the gateway: replies must come back
	// through the datapath.
	expect(t, testutil.MustAsk(t, tp.Namespace(client), "tcp4", hostAddr+":8080"), "web", "172.30.0.1")
	expect(t, testutil.MustAsk(t, tp.Namespace(web), "tcp4", hostAddr+":8080"), "web", "172.30.0.1")
}

func TestHostLocalAccessToPublishedPort(t *testing.T) {
	tp := natHost(t)
	web := tp.AddContainer("web")
	tp.MustEbpfnet("attach", "--network", "n1", "-p", "8080:80", "-p", "8053:53/udp", web)
	testutil.Serve(t, tp.Namespace(web), "web", ":80")
	testutil.Serve(t, tp.Namespace(web), "web", ":53")
	host := tp.Namespace(tp.Host)
	for _, addr := range []string{"127.0.0.1:8080", hostAddr + ":8080"} {
		expect(t, testutil.MustAsk(t, host, "tcp4", addr), "web", "172.30.0.1")
		c, err := testutil.Dial(host, "tcp4", addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		// getpeername shows what the application asked for.
		if got := c.RemoteAddr().String(); got != addr {
			t.Errorf("peer of %s = %s", addr, got)
		}
		c.Close()
	}
	expect(t, testutil.MustAsk(t, host, "udp4", "127.0.0.1:8053"), "web", "172.30.0.1")
	// The published port is taken for host processes, as Docker's proxy
	// would hold it.
	err := netnsutil.Do(host, func() error {
		l, err := net.Listen("tcp4", ":8080")
		if err == nil {
			l.Close()
		}
		return err
	})
	if err == nil {
		t.Fatal("a host process could bind the published port 8080")
	}
	// Other namespaces are untouched: the outside host's own 127.0.0.1:8080
	// is not redirected.
	testutil.Serve(t, tp.Namespace(tp.Ext), "ext-local", "127.0.0.1:8080")
	expect(t, testutil.MustAsk(t, tp.Namespace(tp.Ext), "tcp4", "127.0.0.1:8080"), "ext-local", "127.0.0.1")
}

func TestPublishOnOneHostAddress(t *testing.T) {
	tp := natHost(t)
	tp.Exec(tp.Host, "ip", "addr", "add", "198.18.0.3/24", "dev", testutil.UplinkIf)
	c := tp.AddContainer("c")
	tp.MustEbpfnet("attach", "--network", "n1", "-p", "198.18.0.2:8081:80", c)
	testutil.Serve(t, tp.Namespace(c), "c", ":80")
	ext := tp.Namespace(tp.Ext)
	expect(t, testutil.MustAsk(t, ext, "tcp4", "198.18.0.2:8081"), "c", extAddr)
	if _, err := testutil.Dial(ext, "tcp4", "198.18.0.3:8081", 2*time.Second); err == nil {
		t.Fatal("a port published on 198.18.0.2 answered on 198.18.0.3")
	}
}

func TestPortConflictsAndBadSpecs(t *testing.T) {
	tp := natHost(t)
	a, b := tp.AddContainer("a"), tp.AddContainer("b")
	tp.MustEbpfnet("attach", "--network", "n1", "-p", "8080:80", a)
	for _, tc := range []struct {
		name string
		spec string
		want string
	}{
		{"taken", "8080:80", "port 8080/tcp on 0.0.0.0 is already published by endpoint " + a},
		{"taken on one address", hostAddr + ":8080:81", "already published by endpoint " + a},
		{"bad protocol", "80/sctp", "protocol must be tcp or udp"},
		{"IPv6 host address", "[::1]:8080:80", "IPv6"},
		{"unequal ranges", "8000-8002:80-81", "same length"},
		{"port out of range", "70000:80", "not a port number"},
		{"not an address of the host", "192.0.2.1:8090:80", "not an address of this host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, tp, a, b)
			_, errOut, err := tp.Ebpfnet("attach", "--network", "n1", "-p", tc.spec, b)
			if err == nil || !strings.Contains(errOut, tc.want) {
				t.Fatalf("attach -p %s: %v %q, want error %q", tc.spec, err, errOut, tc.want)
			}
			if after := snapshot(t, tp, a, b); after != before {
				t.Fatalf("state changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
	// UDP on the same port is another binding.
	tp.MustEbpfnet("attach", "--network", "n1", "-p", "8080:80/udp", b)
	// A random host port when none is given.
	c := tp.AddContainer("c")
	tp.MustEbpfnet("attach", "--network", "n1", "-p", "80", c)
	if out := tp.MustEbpfnet("port", c); !strings.HasPrefix(out, "80/tcp -> 0.0.0.0:") {
		t.Fatalf("port: %s", out)
	}
}

func TestDetachRemovesBindingsAndFlows(t *testing.T) {
	tp := natHost(t)
	c := publishedServer(tp)
	testutil.MustAsk(t, tp.Namespace(tp.Ext), "tcp4", hostAddr+":8080")
	if out := tp.MustEbpfnet("ct", "ls"); !strings.Contains(out, "dnat") {
		t.Fatalf("no DNAT flow before detach:\n%s", out)
	}
	tp.MustEbpfnet("detach", c)
	if out := tp.MustEbpfnet("ct", "ls"); strings.Contains(out, "172.30.0.2") {
		t.Fatalf("flows of the detached endpoint left:\n%s", out)
	}
	if out := tp.MustEbpfnet("nat", "ls"); strings.Contains(out, "8080") {
		t.Fatalf("binding left after detach:\n%s", out)
	}
	if _, err := testutil.Dial(tp.Namespace(tp.Ext), "tcp4", hostAddr+":8080", 2*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("after detach: %v, want the host to refuse", err)
	}
}

func TestConntrackGCExpiresIdleFlows(t *testing.T) {
	tp := natHost(t)
	c := tp.AddContainer("c")
	tp.MustEbpfnet("attach", "--network", "n1", c)
	testutil.Serve(t, tp.Namespace(tp.Ext), "ext", ":9000")
	testutil.MustAsk(t, tp.Namespace(c), "udp4", extAddr+":9000")
	if out := tp.MustEbpfnet("ct", "gc"); !strings.Contains(out, "expired 0 flows") {
		t.Fatalf("default timeouts expired a fresh flow: %s", out)
	}
	time.Sleep(1500 * time.Millisecond)
	if out := tp.MustEbpfnet("ct", "gc", "--ct-timeout-udp", "1s"); !strings.Contains(out, "expired 1 flows") {
		t.Fatalf("ct gc: %s", out)
	}
	if out := tp.MustEbpfnet("ct", "ls"); strings.Contains(out, "udp") {
		t.Fatalf("expired flow still listed:\n%s", out)
	}
}

func TestMasqueradeOffAndInternalNetworks(t *testing.T) {
	tp := natHost(t)
	tp.MustEbpfnet("network", "create", "nomasq", "--subnet", "172.31.0.0/24", "--ip-masquerade=false")
	tp.MustEbpfnet("network", "create", "inside", "--subnet", "172.29.0.0/24", "--internal")
	a, b := tp.AddContainer("a"), tp.AddContainer("b")
	tp.MustEbpfnet("attach", "--network", "nomasq", a)
	tp.MustEbpfnet("attach", "--network", "inside", b)
	testutil.Serve(t, tp.Namespace(tp.Ext), "ext", ":9000")
	if !testutil.TimesOut(tp.Namespace(a), extAddr+":9000", time.Second) {
		t.Fatal("a network without masquerade reached the outside through netfilter's DROP policy")
	}
	if !testutil.TimesOut(tp.Namespace(b), extAddr+":9000", time.Second) {
		t.Fatal("an internal network reached the outside")
	}
	if d, _ := tp.Views().Drops(); d["internal_network"].Packets == 0 {
		t.Fatal("no internal_network drop counted")
	}
	_, errOut, err := tp.Ebpfnet("attach", "--network", "inside", "-p", "8080:80", tp.AddContainer("c"))
	if err == nil || !strings.Contains(errOut, "--internal") {
		t.Fatalf("publishing on an internal network: %v %s", err, errOut)
	}
}

func TestConntrackTableSize(t *testing.T) {
	tp := newTopology(t)
	tp.MustEbpfnet("--ct-map-size", "4096", "network", "create", "n1", "--subnet", "172.30.0.0/24")
	// Later commands without the flag keep the pinned table.
	tp.MustEbpfnet("attach", "--network", "n1", tp.AddContainer("c"))
	usage, err := tp.Views().MapUsage()
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range usage {
		if u.Name == "conntrack" && u.Capacity != 4096 {
			t.Fatalf("conntrack capacity %d, want 4096", u.Capacity)
		}
	}
	// Asking for another size while pinned is refused with a clear error.
	_, errOut, err := tp.Ebpfnet("--ct-map-size", "8192", "stats")
	if err == nil || !strings.Contains(errOut, "conntrack") {
		t.Fatalf("resize while pinned: %v %s", err, errOut)
	}
}

func TestMasqueradeNeverAliasesHostSockets(t *testing.T) {
	tp := natHost(t)
	c := tp.AddContainer("c")
	tp.MustEbpfnet("attach", "--network", "n1", c)
	testutil.Serve(t, tp.Namespace(tp.Ext), "ext", ":9000")
	// The host holds 198.18.0.2:41000 -> ext:9000 ...
	hostConn, err := testutil.DialFrom(tp.Namespace(tp.Host), "tcp4", hostAddr+":41000", extAddr+":9000", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer hostConn.Close()
	// ... so the container's flow from port 41000 must leave from another.
	cc, err := testutil.DialFrom(tp.Namespace(c), "tcp4", "172.30.0.2:41000", extAddr+":9000", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	line, err := testutil.AskOn(cc)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(line, "ext "+hostAddr+":") || strings.HasSuffix(line, ":41000") {
		t.Fatalf("outside saw %q: want the host address with a port other than the host socket's 41000", line)
	}
	// Both connections still work.
	if l, err := testutil.AskOn(hostConn); err != nil || l != "ext "+hostAddr+":41000" {
		t.Fatalf("host connection: %q %v", l, err)
	}
}
