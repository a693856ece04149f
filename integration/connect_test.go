package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

// One endpoint on two networks, as docker network connect makes it: it
// reaches and is reached on both, isolation between the networks still
// holds for everyone else, its published port keeps working, and
// disconnect takes the second interface away again.
func TestNetworkConnectDisconnect(t *testing.T) {
	tp := newTopology(t)
	tp.Exec(tp.Host, "iptables", "-P", "FORWARD", "DROP")
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	tp.MustEbpfnet("network", "create", "n2", "--subnet", "172.31.0.0/24")
	c1, c2, c3 := tp.AddContainer("c1"), tp.AddContainer("c2"), tp.AddContainer("c3")
	tp.MustEbpfnet("attach", "--network", "n1", "--ip", "172.30.0.10", "-p", "8080:80", c1)
	tp.MustEbpfnet("attach", "--network", "n2", "--ip", "172.31.0.20", c2)
	tp.MustEbpfnet("attach", "--network", "n1", "--ip", "172.30.0.30", c3)
	for _, c := range []string{c1, c2, c3} {
		testutil.Serve(t, tp.Namespace(c), c, "0.0.0.0:80")
	}

	out := tp.MustEbpfnet("network", "connect", "--ip", "172.31.0.11", "n2", c1)
	if want := c1 + ".n2 n2 eth1 172.31.0.11\n"; out != want {
		t.Fatalf("network connect: %q, want %q", out, want)
	}
	if r := testutil.MustAsk(t, tp.Namespace(c2), "tcp4", "172.31.0.11:80"); r.Server != c1 || r.Source != "172.31.0.20" {
		t.Errorf("n2 peer -> c1's n2 address: %+v", r)
	}
	if r := testutil.MustAsk(t, tp.Namespace(c1), "tcp4", "172.31.0.20:80"); r.Server != c2 || r.Source != "172.31.0.11" {
		t.Errorf("c1 -> n2 peer: %+v (want it to leave through eth1)", r)
	}
	if r := testutil.MustAsk(t, tp.Namespace(c1), "tcp4", "172.30.0.30:80"); r.Server != c3 {
		t.Errorf("c1 -> n1 peer: %+v", r)
	}
	if !testutil.TimesOut(tp.Namespace(c3), "172.31.0.20:80", time.Second) {
		t.Error("n1's c3 reached n2's c2: isolation broken by a multi-network endpoint")
	}
	if r := testutil.MustAsk(t, tp.Namespace(tp.Ext), "tcp4", testutil.HostIP+":8080"); r.Server != c1 || r.Source != testutil.ExtIP {
		t.Errorf("published port after connect: %+v", r)
	}
	if route := tp.Exec(c1, "ip", "-4", "route", "show", "default"); !strings.Contains(route, "via 172.30.0.1 dev eth0") || strings.Count(route, "default") != 1 {
		t.Errorf("default route after connect:\n%s\nwant only the first network's", route)
	}
	// The namespace's hosts names its new address; its resolver stays n1's
	// embedded one (n1 is user-defined).
	if hosts := tp.Exec(c1, "cat", "/etc/hosts"); !strings.Contains(hosts, "172.31.0.11\t"+c1+"\n") || !strings.Contains(hosts, "172.30.0.10\t"+c1+"\n") {
		t.Errorf("/etc/hosts of %s after connect:\n%s", c1, hosts)
	}
	if resolv := tp.Exec(c1, "cat", "/etc/resolv.conf"); !strings.Contains(resolv, "nameserver 172.30.0.1\n") {
		t.Errorf("/etc/resolv.conf of %s after connect:\n%s", c1, resolv)
	}
	if _, errOut, err := tp.Ebpfnet("network", "connect", "n2", c1); err == nil || !strings.Contains(errOut, "is already connected to network n2") {
		t.Errorf("connecting twice: %v %s", err, errOut)
	}

	if out := tp.MustEbpfnet("network", "disconnect", "n2", c1); out != c1+".n2\n" {
		t.Fatalf("network disconnect: %q", out)
	}
	if hosts := tp.Exec(c1, "cat", "/etc/hosts"); strings.Contains(hosts, "172.31.0.11") || !strings.Contains(hosts, "172.30.0.10\t"+c1+"\n") {
		t.Errorf("/etc/hosts of %s after disconnect:\n%s", c1, hosts)
	}
	if links := tp.Exec(c1, "ip", "-o", "link"); strings.Contains(links, "eth1") {
		t.Errorf("eth1 still in %s after disconnect:\n%s", c1, links)
	}
	if !testutil.TimesOut(tp.Namespace(c2), "172.31.0.11:80", time.Second) {
		t.Error("c1's n2 address still answers after disconnect")
	}
	if r := testutil.MustAsk(t, tp.Namespace(tp.Ext), "tcp4", testutil.HostIP+":8080"); r.Server != c1 {
		t.Errorf("published port after disconnect: %+v", r)
	}
	if _, errOut, err := tp.Ebpfnet("network", "disconnect", "n2", c1); err == nil || !strings.Contains(errOut, "is not connected to network n2") {
		t.Errorf("second disconnect: %v %s", err, errOut)
	}
}
