package integration

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
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

	expect := func(step string, want map[string]bool) { t.Helper(); expectReach(t, tp, step, want) }

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

// IPv6 clients of published ports are judged by IPv6 prefixes in the same
// scopes, with real TCP from two outside IPv6 addresses and one IPv4: an
// allow list is one for both families (naming IPv4 prefixes only, it
// refuses IPv6 clients, and the other way round), a deny of an IPv6 prefix
// leaves IPv4 alone, and --source any opens a scope to both.
func TestFirewallIPv6(t *testing.T) {
	tp := newTopology(t)
	dualStackUplink(tp)
	web := tp.AddContainer("web")
	const second6 = "2001:db8:18::3" // a second IPv6 client address outside
	tp.Exec(tp.Ext, "ip", "addr", "add", second6+"/64", "dev", "eth0", "nodad")
	tp.MustEbpfnet("network", "create", "d6", "--ipv6", "--subnet", "172.30.0.0/24", "--subnet", "fd00:30::/64")
	tp.MustEbpfnet("attach", "--network", "d6", "-p", "8080:80", "-p", "8081:81", web)
	tp.Exec(tp.Host, "ip6tables", "-P", "FORWARD", "DROP")
	for _, port := range []string{":80", ":81"} {
		testutil.Serve(t, tp.Namespace(web), "web", port)
		testutil.Serve6(t, tp.Namespace(web), "web", port)
	}
	ext4 := testutil.ExtIP
	expect := func(step string, want map[string]bool) { t.Helper(); expectReach(t, tp, step, want) }

	expect("no rules", map[string]bool{extIP6 + " 8080": true, second6 + " 8080": true, ext4 + " 8080": true})

	v := tp.Views()
	fw := dropCount(t, v, "firewall")
	tp.MustEbpfnet("firewall", "add", "--port", "8080/tcp", "--source", extIP6)
	expect("8080 allows only "+extIP6, map[string]bool{extIP6 + " 8080": true, second6 + " 8080": false, ext4 + " 8080": false, second6 + " 8081": true})
	if dropCount(t, v, "firewall") == fw {
		t.Error("no firewall drop counted")
	}
	tp.MustEbpfnet("firewall", "add", "--port", "8080/tcp", "--source", ext4)
	expect("and "+ext4, map[string]bool{extIP6 + " 8080": true, second6 + " 8080": false, ext4 + " 8080": true})

	tp.MustEbpfnet("firewall", "add", "--source", "2001:db8:18::3/128", "--action", "deny")
	expect(second6+" denied everywhere", map[string]bool{second6 + " 8081": false, extIP6 + " 8081": true, ext4 + " 8081": true})
	ls := tp.MustEbpfnet("firewall", "ls")
	for _, want := range []string{
		"8080/tcp  198.18.0.1/32       allow\n8080/tcp  2001:db8:18::1/128  allow\n" +
			"8080/tcp  0.0.0.0/0           deny (implied)\n8080/tcp  ::/0                deny (implied)\n",
		"all       2001:db8:18::3/128  deny",
	} {
		if !strings.Contains(ls, want) {
			t.Errorf("firewall ls lacks %q:\n%s", want, ls)
		}
	}

	// An allow list of IPv6 prefixes only refuses IPv4; any opens both.
	tp.MustEbpfnet("firewall", "add", "--port", "8081/tcp", "--source", "2001:db8:18::/64")
	expect("8081 allows an IPv6 prefix", map[string]bool{extIP6 + " 8081": true, second6 + " 8081": true, ext4 + " 8081": false})
	tp.MustEbpfnet("firewall", "add", "--port", "8081/tcp", "--source", "any", "--action", "deny")
	tp.MustEbpfnet("firewall", "rm", "--port", "8081/tcp", "--source", "2001:db8:18::/64")
	expect("8081 denies any", map[string]bool{extIP6 + " 8081": false, ext4 + " 8081": false})

	if out := tp.MustEbpfnet("firewall", "flush"); !strings.Contains(out, "5 rule(s) removed") {
		t.Errorf("flush said %q", out)
	}
	expect("flushed", map[string]bool{extIP6 + " 8080": true, second6 + " 8080": true, ext4 + " 8080": true, second6 + " 8081": true})
}

// reachWeb reports whether a TCP connection from the outside namespace's
// address from to the host's port reaches the "web" server (a timeout: it
// was dropped). An IPv6 from goes to the host's IPv6 address (hostIP6).
func reachWeb(t *testing.T, tp *testutil.Topology, from, port string) bool {
	t.Helper()
	network, src, dst, seen := "tcp4", from+":0", testutil.HostIP+":"+port, from
	if strings.Contains(from, ":") {
		network, src, dst, seen = "tcp6", "["+from+"]:0", "["+hostIP6+"]:"+port, "["+from+"]"
	}
	c, err := testutil.DialFrom(tp.Namespace(tp.Ext), network, src, dst, time.Second)
	if err != nil {
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("%s -> %s: %v (want a connection or a timeout)", from, port, err)
		}
		return false
	}
	defer c.Close()
	line, err := testutil.AskOn(c)
	if err != nil || !strings.HasPrefix(line, "web "+seen+":") {
		t.Fatalf("%s -> %s: reply %q, %v", from, port, line, err)
	}
	return true
}

// expectReach checks reachWeb for each "FROM PORT" in want.
func expectReach(t *testing.T, tp *testutil.Topology, step string, want map[string]bool) {
	t.Helper()
	for k, ok := range want {
		from, port, _ := strings.Cut(k, " ")
		if got := reachWeb(t, tp, from, port); got != ok {
			t.Errorf("%s: %s reaches %s: %v, want %v", step, from, port, got, ok)
		}
	}
}

// A firewall change that fails after the kernel took it changes nothing; one
// killed between the store and the kernel leaves the kernel behind, and the
// daemon's reconcile applies the stored rules, as it does when the map is
// emptied behind ebpfnet's back.
func TestFirewallFailedChangeAndRepair(t *testing.T) {
	tp := newTopology(t)
	web := tp.AddContainer("web")
	const second = "198.18.0.3"
	tp.Exec(tp.Ext, "ip", "addr", "add", second+"/24", "dev", "eth0")
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	tp.MustEbpfnet("attach", "--network", "n1", "-p", "8080:80", web)
	testutil.Serve(t, tp.Namespace(web), "web", ":80")
	views := tp.Views()
	trie := func() (int, uint32) {
		t.Helper()
		entries, err := views.FirewallEntries()
		if err != nil {
			t.Fatal(err)
		}
		n, err := views.FirewallCount()
		if err != nil {
			t.Fatal(err)
		}
		return len(entries), n
	}
	allowExt := []string{"firewall", "add", "--port", "8080/tcp", "--source", testutil.ExtIP}
	listed := "8080/tcp  198.18.0.1/32  allow"

	// A kernel-side failure after the trie was written: the store and the
	// trie are put back.
	cmd := tp.EbpfnetCmd(allowExt...)
	cmd.Env = append(cmd.Environ(), "EBPFNET_TEST_FAULT=after-firewall-apply")
	out, err := cmd.CombinedOutput()
	if err == nil || string(out) != "ebpfnet: injected fault at after-firewall-apply\n" {
		t.Fatalf("faulted add: %v, output %q (want exit 1 and one line)", err, out)
	}
	if ls := tp.MustEbpfnet("firewall", "ls", "-q"); ls != "" {
		t.Errorf("after the failed add the store lists:\n%s", ls)
	}
	if n, count := trie(); n != 0 || count != 0 {
		t.Errorf("after the failed add the trie holds %d entries, count %d", n, count)
	}
	expectReach(t, tp, "after the failed add", map[string]bool{second + " 8080": true})

	// Killed between the store and the kernel: stored, not applied.
	killedAt(t, tp, "before-firewall-apply", allowExt...)
	if ls := tp.MustEbpfnet("firewall", "ls"); !strings.Contains(ls, listed) {
		t.Fatalf("the killed add's rule is not stored:\n%s", ls)
	}
	if n, _ := trie(); n != 0 {
		t.Fatalf("the killed add reached the trie (%d entries): nothing to repair", n)
	}
	expectReach(t, tp, "killed before the kernel", map[string]bool{second + " 8080": true})

	// The daemon's reconcile applies it: the rule and its implied denies
	// (0.0.0.0/0 and ::/0).
	startDaemon(t, tp, "127.0.0.1:9481")
	waitFor(t, 10*time.Second, func() bool { n, count := trie(); return n == 3 && count == 3 })
	expectReach(t, tp, "reconciled", map[string]bool{testutil.ExtIP + " 8080": true, second + " 8080": false})

	// Emptied behind ebpfnet's back (as bpftool could): applied again.
	if err := views.SyncFirewall(nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool { n, count := trie(); return n == 3 && count == 3 })
	expectReach(t, tp, "reconciled again", map[string]bool{testutil.ExtIP + " 8080": true, second + " 8080": false})
}

// TestREADMEFirewall runs docs/firewall.md's block: its listings stay true.
func TestREADMEFirewall(t *testing.T) {
	runREADMEBlock(t, newTopology(t), "<!-- readme-test firewall -->")
}

// A refused connection shows in `monitor -o json` as a drop with reason
// firewall and the client's tuple, before any translation.
func TestFirewallDropInMonitor(t *testing.T) {
	tp := natHost(t)
	publishedServer(tp)
	tp.MustEbpfnet("firewall", "add", "--port", "8080/tcp", "--source", extAddr, "--action", "deny")
	events := monitorEvents(t, tp.EbpfnetCmd("monitor", "-o", "json"))
	deadline := time.After(30 * time.Second) // generous: a loaded 2-core machine
	for {
		// The monitor may still be starting: new attempts until it reports.
		if c, err := testutil.DialFrom(tp.Namespace(tp.Ext), "tcp4", extAddr+":0", hostAddr+":8080", time.Second); err == nil {
			c.Close()
			t.Fatal("the denied source reached 8080")
		}
		for drained := false; !drained; {
			select {
			case ev, ok := <-events:
				if !ok {
					t.Fatal("monitor exited")
				}
				if ev["type"] != "drop" || ev["reason"] != "firewall" {
					continue
				}
				if ev["direction"] != "from_uplink" || ev["protocol"] != "tcp" || ev["src"] != extAddr ||
					ev["dst"] != hostAddr || ev["dst_port"] != float64(8080) {
					t.Fatalf("firewall drop event %v: want from_uplink tcp %s:PORT -> %s:8080", ev, extAddr, hostAddr)
				}
				return
			case <-deadline:
				t.Fatal("no firewall drop event within 30s")
			case <-time.After(500 * time.Millisecond):
				drained = true
			}
		}
	}
}

// An IPv6 client the firewall refuses shows in `monitor -o json` with its
// IPv6 tuple, as an IPv4 one does (TestFirewallDropInMonitor).
func TestFirewallIPv6DropInMonitor(t *testing.T) {
	tp := newTopology(t)
	dualStackUplink(tp)
	web := tp.AddContainer("web")
	tp.MustEbpfnet("network", "create", "d6", "--ipv6", "--subnet", "172.30.0.0/24", "--subnet", "fd00:30::/64")
	tp.MustEbpfnet("attach", "--network", "d6", "-p", "8080:80", web)
	testutil.Serve6(t, tp.Namespace(web), "web", ":80")
	tp.MustEbpfnet("firewall", "add", "--port", "8080/tcp", "--source", extIP6, "--action", "deny")
	events := monitorEvents(t, tp.EbpfnetCmd("monitor", "-o", "json"))
	deadline := time.After(30 * time.Second) // generous: a loaded 2-core machine
	for {
		// The monitor may still be starting: new attempts until it reports.
		if c, err := testutil.DialFrom(tp.Namespace(tp.Ext), "tcp6", "["+extIP6+"]:0", "["+hostIP6+"]:8080", time.Second); err == nil {
			c.Close()
			t.Fatal("the denied IPv6 source reached 8080")
		}
		for drained := false; !drained; {
			select {
			case ev, ok := <-events:
				if !ok {
					t.Fatal("monitor exited")
				}
				if ev["type"] != "drop" || ev["reason"] != "firewall" {
					continue
				}
				if ev["direction"] != "from_uplink" || ev["protocol"] != "tcp" || ev["src"] != extIP6 ||
					ev["src_port"] == nil || ev["dst"] != hostIP6 || ev["dst_port"] != float64(8080) {
					t.Fatalf("firewall drop event %v: want from_uplink tcp [%s]:PORT -> [%s]:8080", ev, extIP6, hostIP6)
				}
				return
			case <-deadline:
				t.Fatal("no firewall drop event within 30s")
			case <-time.After(500 * time.Millisecond):
				drained = true
			}
		}
	}
}
