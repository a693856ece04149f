package integration

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
	"github.com/ebpfnet/ebpfnet/internal/testing/etcdtest"
)

// askIn sends one query from namespace ns to server:53 over UDP and returns
// the reply's records as strings (addresses, PTR targets) and its rcode.
func askIn(t *testing.T, ns, server, name string, qtype uint16) ([]string, int, error) {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Net: "udp", Timeout: 3 * time.Second}
	var reply *dns.Msg
	err := netnsutil.Do(namespace(t, ns), func() (err error) {
		reply, _, err = c.Exchange(q, net.JoinHostPort(server, "53"))
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	var out []string
	for _, rr := range reply.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.AAAA:
			out = append(out, rr.AAAA.String())
		case *dns.PTR:
			out = append(out, rr.Ptr)
		}
	}
	slices.Sort(out)
	return out, reply.Rcode, nil
}

// answersEventually waits until ns's query gets exactly want (nil: no
// records) from server, and says how long that took.
func answersEventually(t *testing.T, ns, server, name string, qtype uint16, want []string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var got []string
	var rcode int
	var err error
	for time.Since(start) < limit {
		if got, rcode, err = askIn(t, ns, server, name, qtype); err == nil && slices.Equal(got, want) {
			return time.Since(start)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("%s asks %s for %s %s: %v (rcode %s, err %v) after %s, want %v",
		ns, server, dns.TypeToString[qtype], name, got, dns.RcodeToString[rcode], err, limit, want)
	return limit
}

// Issue 21, item 10: the names of an overlay network's endpoints resolve on
// every host. Container a on host 1 and b on host 2 resolve each other by
// name through their own host's resolver (getent, as a program would), PTR
// of a's address names a; a local name wins over a remote one; when a
// detaches, its name stops resolving on host 2 within a sync.
func TestOverlayNamesAcrossHosts(t *testing.T) {
	t.Parallel()
	c, hs := newOverlayHosts(t, 2)
	// The hosts' resolver is the underlay address, where nothing serves
	// DNS: a forwarded name fails at once and no query leaves the test's
	// namespaces. `ip netns exec` binds this file over /etc/resolv.conf for
	// the daemons and attach; the cluster's cleanup removes it.
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
	hs[0].must("network", "create", "--driver", "overlay", "ov1", "--subnet", "10.210.0.0/24")
	const gateway = "10.210.0.1" // every host's, where its resolver listens

	nsA, _ := container(t, c, "a")
	nsB, _ := container(t, c, "b")
	ipOf := func(out string) string { f := strings.Fields(out); return f[len(f)-1] }
	ipA := ipOf(hs[0].must("attach", "--network", "ov1", "--name", "a", nsA))
	ipB := ipOf(hs[1].must("attach", "--network", "ov1", "--name", "b", nsB))
	t.Logf("a %s (host 1), b %s (host 2)", ipA, ipB)

	// By name, through each host's own resolver, as a program asks.
	mustResolve(t, nsB, "a", ipA)
	mustResolve(t, nsA, "b", ipB)
	answersEventually(t, nsB, gateway, "a.ov1", dns.TypeA, []string{ipA}, 10*time.Second)
	rev, err := dns.ReverseAddr(ipA)
	if err != nil {
		t.Fatal(err)
	}
	answersEventually(t, nsB, gateway, rev, dns.TypePTR, []string{"a.ov1."}, 10*time.Second)
	// DNS is the path: b's hosts file names b only.
	if hosts := readFile(t, filepath.Join("/etc/netns", nsB, "hosts")); strings.Contains(hosts, ipA) {
		t.Errorf("b's hosts names a:\n%s", hosts)
	}

	// A local name wins: a container on host 2 with the alias a.
	nsD, _ := container(t, c, "d")
	ipD := ipOf(hs[1].must("attach", "--network", "ov1", "--name", "d", "--network-alias", "a", nsD))
	answersEventually(t, nsB, gateway, "a", dns.TypeA, []string{ipD}, 10*time.Second)
	hs[1].must("detach", nsD)
	answersEventually(t, nsB, gateway, "a", dns.TypeA, []string{ipA}, 10*time.Second)

	// a goes: its name and address stop resolving on host 2 (the syncer
	// runs at each change the watcher sees, and every 2 s).
	hs[0].must("detach", nsA)
	took := answersEventually(t, nsB, gateway, "a", dns.TypeA, nil, 10*time.Second)
	answersEventually(t, nsB, gateway, rev, dns.TypePTR, nil, 5*time.Second)
	mustNotResolve(t, nsB, "a")
	t.Logf("a's name gone on host 2 %s after its detach", took.Round(10*time.Millisecond))
}
