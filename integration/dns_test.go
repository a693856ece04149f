package integration

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

// outsideName is the one name the test's own DNS server (in the outside
// namespace) knows; no real resolver is ever asked.
const (
	outsideName = "outside.dnstest.example"
	outsideIP   = "198.18.0.77"
)

// dnsSandbox gives the sandbox host a resolv.conf naming a DNS server of
// the test's own in the outside namespace (`ip netns exec` binds
// /etc/netns/HOST/resolv.conf over /etc/resolv.conf for every ebpfnet
// command and the daemon), and starts that server.
func dnsSandbox(t *testing.T, tp *testutil.Topology) {
	t.Helper()
	// Topology's cleanup removes /etc/netns/<prefix>-*.
	dir := filepath.Join("/etc/netns", tp.Host)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := "nameserver " + testutil.ExtIP + "\nsearch dnstest.example\n"
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		switch {
		case strings.EqualFold(q.Name, outsideName+".") && q.Qtype == dns.TypeA:
			rr, _ := dns.NewRR(outsideName + ". 60 IN A " + outsideIP)
			m.Answer = append(m.Answer, rr)
		case strings.EqualFold(q.Name, outsideName+"."):
		default:
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})
	var pc net.PacketConn
	var ln net.Listener
	err := netnsutil.Do(tp.Namespace(tp.Ext), func() (err error) {
		if pc, err = net.ListenPacket("udp4", testutil.ExtIP+":53"); err != nil {
			return err
		}
		ln, err = net.Listen("tcp4", testutil.ExtIP+":53")
		return err
	})
	if err != nil {
		t.Fatalf("outside DNS server: %v", err)
	}
	udp, tcp := &dns.Server{PacketConn: pc, Handler: h}, &dns.Server{Listener: ln, Handler: h}
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	t.Cleanup(func() { udp.Shutdown(); tcp.Shutdown() })
}

// lookup runs `getent hosts NAME` (glibc: /etc/hosts, then DNS) in a
// namespace, as `ip netns exec` gives it resolv.conf and hosts.
func lookup(ns, name string) (string, error) {
	out, err := exec.Command("ip", "netns", "exec", ns, "timeout", "10", "getent", "hosts", name).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func mustResolve(t *testing.T, ns, name, wantIP string) {
	t.Helper()
	var out string
	var err error
	// The daemon notices new names within a second (and at once on a miss).
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if out, err = lookup(ns, name); err == nil && strings.Fields(out)[0] == wantIP {
			return
		}
	}
	t.Errorf("getent hosts %s in %s: %q %v, want %s", name, ns, out, err, wantIP)
}

func mustNotResolve(t *testing.T, ns, name string) {
	t.Helper()
	if out, err := lookup(ns, name); err == nil {
		t.Errorf("getent hosts %s in %s: %q, want no answer", name, ns, out)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// Docker's embedded DNS, the ebpfnet way: containers on a user-defined
// network resolve each other's names and aliases through the daemon's
// resolver on the gateway; other networks' names do not resolve; other
// names are forwarded to the host's resolvers; the default network gets
// the host's resolvers and no container names; --add-host and --dns land in
// hosts and resolv.conf; networks made after the daemon started are served.
func TestEmbeddedDNS(t *testing.T) {
	tp := newTopology(t)
	dnsSandbox(t, tp)
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	tp.MustEbpfnet("network", "create", "n2", "--subnet", "172.31.0.0/24")
	startDaemon(t, tp, "127.0.0.1:9479")

	c1, c2, c3, b1 := tp.AddContainer("c1"), tp.AddContainer("c2"), tp.AddContainer("c3"), tp.AddContainer("b1")
	tp.MustEbpfnet("attach", "--network", "n1", "--ip", "172.30.0.10", c1)
	tp.MustEbpfnet("attach", "--network", "n1", "--ip", "172.30.0.20", "--network-alias", "db", "--network-alias", "cache", c2)
	tp.MustEbpfnet("attach", "--network", "n2", "--ip", "172.31.0.30", c3)
	tp.MustEbpfnet("attach", "--ip", "172.17.0.40", b1) // the default network

	resolv := readFile(t, filepath.Join("/etc/netns", c1, "resolv.conf"))
	for _, want := range []string{"nameserver 172.30.0.1\n", "search dnstest.example\n", "options ndots:0\n", "ExtServers: [" + testutil.ExtIP + "] (host)"} {
		if !strings.Contains(resolv, want) {
			t.Errorf("%s's resolv.conf lacks %q:\n%s", c1, want, resolv)
		}
	}
	if hosts := readFile(t, filepath.Join("/etc/netns", c2, "hosts")); !strings.Contains(hosts, "127.0.0.1\tlocalhost") || !strings.Contains(hosts, "172.30.0.20\t"+c2+" db cache") {
		t.Errorf("%s's hosts:\n%s", c2, hosts)
	}

	// Same network: name and aliases, also NAME.NETWORK.
	mustResolve(t, c1, c2, "172.30.0.20")
	mustResolve(t, c1, "db", "172.30.0.20")
	mustResolve(t, c1, "CACHE", "172.30.0.20")
	mustResolve(t, c1, c2+".n1", "172.30.0.20")
	mustResolve(t, c2, c1, "172.30.0.10")
	// Other networks' names do not resolve.
	mustNotResolve(t, c1, c3)
	mustNotResolve(t, c3, c1)
	mustNotResolve(t, c3, "db")
	// Another network's gateway answers nothing about its network.
	if out, err := exec.Command("ip", "netns", "exec", c3, "timeout", "10", "busybox", "nslookup", c2, "172.30.0.1").CombinedOutput(); err == nil || strings.Contains(string(out), "172.30.0.20") {
		t.Errorf("busybox nslookup %s 172.30.0.1 from n2's %s: %v\n%s", c2, c3, err, out)
	}
	// Anything else goes to the host's resolvers: the test's own server.
	mustResolve(t, c1, outsideName, outsideIP)
	mustResolve(t, c3, outsideName, outsideIP)
	mustNotResolve(t, c1, "nonexistent.dnstest.example")
	// busybox's nslookup asks the gateway directly.
	if out, err := exec.Command("ip", "netns", "exec", c1, "timeout", "10", "busybox", "nslookup", "db", "172.30.0.1").CombinedOutput(); err != nil || !strings.Contains(string(out), "172.30.0.20") {
		t.Errorf("busybox nslookup db 172.30.0.1 in %s: %v\n%s", c1, err, out)
	}

	// The default network: the host's resolvers, no embedded DNS.
	resolv = readFile(t, filepath.Join("/etc/netns", b1, "resolv.conf"))
	if !strings.Contains(resolv, "nameserver "+testutil.ExtIP+"\n") || strings.Contains(resolv, "172.17.0.1") {
		t.Errorf("default network's resolv.conf:\n%s\nwant the host's resolver", resolv)
	}
	mustResolve(t, b1, outsideName, outsideIP) // straight to the outside server, masqueraded
	mustNotResolve(t, b1, c1)
	mustResolve(t, b1, b1, "172.17.0.40") // its own name, from its hosts

	// A multi-network endpoint resolves by its base name on each network,
	// with the aliases connect gave it.
	tp.MustEbpfnet("network", "connect", "--ip", "172.31.0.11", "--alias", "api", "n2", c1)
	mustResolve(t, c3, c1, "172.31.0.11")
	mustResolve(t, c3, "api", "172.31.0.11")
	mustNotResolve(t, c2, "api")
	mustResolve(t, c1, c3, "172.31.0.30") // c1 now sees n2's names too

	// --add-host and --dns.
	c4, b2 := tp.AddContainer("c4"), tp.AddContainer("b2")
	tp.MustEbpfnet("attach", "--network", "n1", "--add-host", "myhost:10.1.2.3", "--add-host", "gw:host-gateway", "--dns", testutil.ExtIP, c4)
	mustResolve(t, c4, "myhost", "10.1.2.3")
	mustResolve(t, c4, "gw", "172.30.0.1")
	mustResolve(t, c4, outsideName, outsideIP) // forwarded to its --dns server
	mustResolve(t, c4, c1, "172.30.0.10")
	if resolv := readFile(t, filepath.Join("/etc/netns", c4, "resolv.conf")); !strings.Contains(resolv, "ExtServers: ["+testutil.ExtIP+"] (--dns)") {
		t.Errorf("--dns on a user network: resolv.conf\n%s", resolv)
	}
	tp.MustEbpfnet("attach", "--dns", "198.18.0.53", b2)
	if resolv := readFile(t, filepath.Join("/etc/netns", b2, "resolv.conf")); !strings.Contains(resolv, "nameserver 198.18.0.53\n") || strings.Contains(resolv, "nameserver "+testutil.ExtIP) {
		t.Errorf("--dns on the default network: resolv.conf\n%s", resolv)
	}
	if _, errOut, err := tp.Ebpfnet("attach", "--network", "n1", "--add-host", "bad", tp.AddContainer("c9")); err == nil || !strings.Contains(errOut, "--add-host") {
		t.Errorf("--add-host bad: %v %s", err, errOut)
	}

	// ebpfnet run gives CMD the files.
	out := tp.MustEbpfnet("run", "--rm", "--network", "n1", "--name", tp.Prefix+"-r1", "--", "sh", "-c", "grep ^nameserver /etc/resolv.conf; getent hosts db")
	if !strings.Contains(out, "nameserver 172.30.0.1") || !strings.Contains(out, "172.30.0.20") {
		t.Errorf("run on n1 saw:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join("/etc/netns", tp.Prefix+"-r1")); !os.IsNotExist(err) {
		t.Errorf("run --rm left /etc/netns/%s-r1: %v", tp.Prefix, err)
	}

	// Detach removes the files.
	tp.MustEbpfnet("detach", c4)
	if _, err := os.Stat(filepath.Join("/etc/netns", c4)); !os.IsNotExist(err) {
		t.Errorf("detach left /etc/netns/%s: %v", c4, err)
	}

	// A network made while the daemon runs is served.
	tp.MustEbpfnet("network", "create", "n3", "--subnet", "172.29.0.0/24")
	c5, c6 := tp.AddContainer("c5"), tp.AddContainer("c6")
	tp.MustEbpfnet("attach", "--network", "n3", "--ip", "172.29.0.5", c5)
	tp.MustEbpfnet("attach", "--network", "n3", "--ip", "172.29.0.6", c6)
	mustResolve(t, c5, c6, "172.29.0.6")
	mustResolve(t, c6, outsideName, outsideIP)
}
