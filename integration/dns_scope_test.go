package integration

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

// askDNS sends one query from namespace ns to server:53 over proto (udp or
// tcp), as a client that waits timeout for the reply.
func askDNS(t *testing.T, tp *testutil.Topology, ns, server, proto, name string, qtype uint16, timeout time.Duration) (*dns.Msg, error) {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Net: proto, Timeout: timeout}
	var reply *dns.Msg
	err := netnsutil.Do(tp.Namespace(ns), func() (err error) {
		reply, _, err = c.Exchange(q, net.JoinHostPort(server, "53"))
		return err
	})
	return reply, err
}

// mustAnswerDNS wants an answer whose first record says want (an address,
// or the name a PTR points to), retrying while the daemon starts and
// notices new endpoints.
func mustAnswerDNS(t *testing.T, tp *testutil.Topology, ns, server, proto, name string, qtype uint16, want string) {
	t.Helper()
	var reply *dns.Msg
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		reply, err = askDNS(t, tp, ns, server, proto, name, qtype, 2*time.Second)
		if err == nil && len(reply.Answer) > 0 && firstRecord(reply) == want {
			return
		}
	}
	t.Errorf("%s asks %s over %s for %s %s: %v %v, want %s", ns, server, proto, dns.TypeToString[qtype], name, reply, err, want)
}

func firstRecord(m *dns.Msg) string {
	switch rr := m.Answer[0].(type) {
	case *dns.A:
		return rr.A.String()
	case *dns.PTR:
		return rr.Ptr
	}
	return m.Answer[0].String()
}

// mustNotServeDNS wants the query refused or left unanswered: no records,
// no forwarded reply.
func mustNotServeDNS(t *testing.T, tp *testutil.Topology, ns, server, proto, name string, qtype uint16) {
	t.Helper()
	reply, err := askDNS(t, tp, ns, server, proto, name, qtype, 2*time.Second)
	if err == nil && (reply.Rcode != dns.RcodeRefused || len(reply.Answer) > 0) {
		t.Errorf("%s asks %s over %s for %s %s: answered\n%v\nwant REFUSED or no reply", ns, server, proto, dns.TypeToString[qtype], name, reply)
	}
}

// Issue 21, item 3: a network's resolver serves that network's containers
// (and the host), not a neighbour routed to the subnet through the host,
// nor a container of another network: no names, no PTR, no recursion, over
// UDP or TCP.
func TestEmbeddedDNSServesOnlyItsNetwork(t *testing.T) {
	tp := newTopology(t)
	dnsSandbox(t, tp) // upstream: the test's own server in the outside namespace
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	tp.MustEbpfnet("network", "create", "n2", "--subnet", "172.31.0.0/24")
	startDaemon(t, tp, "127.0.0.1:9483")
	c1, c2, c3 := tp.AddContainer("c1"), tp.AddContainer("c2"), tp.AddContainer("c3")
	tp.MustEbpfnet("attach", "--network", "n1", "--ip", "172.30.0.10", c1)
	tp.MustEbpfnet("attach", "--network", "n1", "--ip", "172.30.0.20", c2)
	tp.MustEbpfnet("attach", "--network", "n2", "--ip", "172.31.0.30", c3)
	const gateway = "172.30.0.1"
	ptrOfC2, _ := dns.ReverseAddr("172.30.0.20")

	// The neighbour outside routes n1's subnet through the host (its own
	// namespace's route only), and so reaches the gateway.
	tp.Exec(tp.Ext, "ip", "route", "add", "172.30.0.0/24", "via", testutil.HostIP)
	err := netnsutil.Do(tp.Namespace(tp.Ext), func() error {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(gateway, "53"), 5*time.Second)
		if err == nil {
			conn.Close()
		}
		return err
	})
	if err != nil {
		t.Fatalf("the outside namespace cannot reach %s:53, so the test proves nothing: %v", gateway, err)
	}

	for _, proto := range []string{"udp", "tcp"} {
		// The network's own containers, and the host, are served.
		mustAnswerDNS(t, tp, c1, gateway, proto, c2, dns.TypeA, "172.30.0.20")
		mustAnswerDNS(t, tp, c1, gateway, proto, ptrOfC2, dns.TypePTR, c2+".n1.")
		mustAnswerDNS(t, tp, c1, gateway, proto, outsideName, dns.TypeA, outsideIP)
		mustAnswerDNS(t, tp, tp.Host, gateway, proto, c2, dns.TypeA, "172.30.0.20")
		mustAnswerDNS(t, tp, c3, "172.31.0.1", proto, outsideName, dns.TypeA, outsideIP)

		// Nobody else.
		for _, stranger := range []string{tp.Ext, c3} {
			mustNotServeDNS(t, tp, stranger, gateway, proto, c2, dns.TypeA)
			mustNotServeDNS(t, tp, stranger, gateway, proto, ptrOfC2, dns.TypePTR)
			mustNotServeDNS(t, tp, stranger, gateway, proto, "example.org", dns.TypeA)
		}
	}

	// A container is served from its very first query, however fresh the
	// daemon's view of the store: asked once, no retry.
	for _, name := range []string{"f1", "f2", "f3"} {
		fresh := tp.AddContainer(name)
		tp.MustEbpfnet("attach", "--network", "n1", fresh)
		reply, err := askDNS(t, tp, fresh, gateway, "udp", c2, dns.TypeA, 5*time.Second)
		if err != nil || len(reply.Answer) == 0 || firstRecord(reply) != "172.30.0.20" {
			t.Errorf("%s, just attached, asks for %s: %v %v", fresh, c2, reply, err)
		}
	}
}

// Issue 21, item 10: when the host's resolvers do not answer (dropped, or
// refused with ICMP), a name that is not a container's gets SERVFAIL well
// within a client's 5s timeout, not after a wait per upstream.
func TestEmbeddedDNSFailsFastWithoutUpstream(t *testing.T) {
	tp := newTopology(t)
	// The host's resolvers: two addresses the outside namespace drops
	// silently (a blackhole route there; the host routes everything
	// outside), and the outside namespace's own address, where nothing
	// listens on port 53. Topology's cleanup removes /etc/netns/<prefix>-*.
	tp.Exec(tp.Ext, "ip", "route", "add", "blackhole", "198.19.53.0/24")
	dir := filepath.Join("/etc/netns", tp.Host)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := "nameserver 198.19.53.1\nnameserver " + testutil.ExtIP + "\nnameserver 198.19.53.2\n"
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	startDaemon(t, tp, "127.0.0.1:9484")
	c1 := tp.AddContainer("c1")
	tp.MustEbpfnet("attach", "--network", "n1", "--ip", "172.30.0.10", c1)
	mustAnswerDNS(t, tp, c1, "172.30.0.1", "udp", c1, dns.TypeA, "172.30.0.10") // the daemon serves

	for _, proto := range []string{"udp", "tcp"} {
		start := time.Now()
		// glibc's resolver waits 5s per try.
		reply, err := askDNS(t, tp, c1, "172.30.0.1", proto, "nowhere.dnstest.example", dns.TypeA, 5*time.Second)
		took := time.Since(start)
		if err != nil || reply.Rcode != dns.RcodeServerFailure || took > 3*time.Second {
			t.Errorf("over %s, upstreams unreachable: %v %v after %v, want SERVFAIL within 3s", proto, reply, err, took)
		}
	}
}
