package integration

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/internal/testutil"
)

// Issue 9 item 5: ebpfnet firewall restricts published ports by source,
// with real TCP from two outside addresses, and keeps its rules while the
// instance has no datapath (last network removed, a new one made).
func TestFirewallRestrictsPublishedPorts(t *testing.T) {
	tp := newTopology(t)
	web := tp.AddContainer("web")
	const second = "198.18.0.3" // a second client address outside
	tp.Exec(tp.Ext, "ip", "addr", "add", second+"/24", "dev", "eth0")
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	tp.MustEbpfnet("attach", "--network", "n1", "-p", "8080:80", "-p", "8081:81", web)
	// The check is at TC: the host's netfilter never sees this traffic.
	tp.Exec(tp.Host, "iptables", "-P", "FORWARD", "DROP")
	testutil.Serve(t, tp.Namespace(web), "web", ":80")
	testutil.Serve(t, tp.Namespace(web), "web", ":81")

	ext := tp.Namespace(tp.Ext)
	reach := func(from, port string) bool {
		t.Helper()
		c, err := testutil.DialFrom(ext, "tcp4", from+":0", testutil.HostIP+":"+port, time.Second)
		if err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("%s -> %s: %v (want a connection or a timeout)", from, port, err)
			}
			return false
		}
		defer c.Close()
		line, err := testutil.AskOn(c)
		if err != nil || !strings.HasPrefix(line, "web "+from+":") {
			t.Fatalf("%s -> %s: reply %q, %v", from, port, line, err)
		}
		return true
	}
	expect := func(step string, want map[string]bool) {
		t.Helper()
		for k, ok := range want {
			from, port, _ := strings.Cut(k, " ")
			if got := reach(from, port); got != ok {
				t.Errorf("%s: %s reaches %s: %v, want %v", step, from, port, got, ok)
			}
		}
	}

	expect("no rules", map[string]bool{testutil.ExtIP + " 8080": true, second + " 8080": true, second + " 8081": true})

	tp.MustEbpfnet("firewall", "add", "--port", "8080/tcp", "--source", testutil.ExtIP)
	expect("8080 allows only "+testutil.ExtIP, map[string]bool{testutil.ExtIP + " 8080": true, second + " 8080": false, second + " 8081": true})
	drops, err := tp.Views().Drops()
	if err != nil {
		t.Fatal(err)
	}
	if drops["firewall"].Packets == 0 {
		t.Error("no drop counted as firewall")
	}

	tp.MustEbpfnet("firewall", "add", "--source", second, "--action", "deny")
	expect("and "+second+" denied everywhere", map[string]bool{testutil.ExtIP + " 8081": true, second + " 8081": false})
	ls := tp.MustEbpfnet("firewall", "ls")
	for _, want := range []string{"8080/tcp  198.18.0.1/32  allow", "8080/tcp  0.0.0.0/0      deny (implied)", "all       198.18.0.3/32  deny"} {
		if !strings.Contains(ls, want) {
			t.Errorf("firewall ls lacks %q:\n%s", want, ls)
		}
	}

	// The rules outlive the datapath: the last network goes (and its pins
	// with it), a new one is made, and they hold again.
	tp.MustEbpfnet("detach", web)
	tp.MustEbpfnet("network", "rm", "n1")
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	tp.MustEbpfnet("attach", "--network", "n1", "-p", "8080:80", "-p", "8081:81", web)
	expect("after the datapath was made anew", map[string]bool{testutil.ExtIP + " 8080": true, second + " 8080": false, second + " 8081": false})

	tp.MustEbpfnet("firewall", "rm", "--source", second)
	expect("global deny removed", map[string]bool{second + " 8081": true, second + " 8080": false})
	if out := tp.MustEbpfnet("firewall", "flush"); !strings.Contains(out, "1 rule(s) removed") {
		t.Errorf("flush said %q", out)
	}
	expect("flushed", map[string]bool{testutil.ExtIP + " 8080": true, second + " 8080": true, second + " 8081": true})
}
