package integration

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/datapath"
	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

func inspect(t *testing.T, tp *testutil.Topology, target string) datapath.EndpointDetail {
	t.Helper()
	var d []datapath.EndpointDetail
	if err := json.Unmarshal([]byte(tp.MustEbpfnet("inspect", target)), &d); err != nil {
		t.Fatal(err)
	}
	if len(d) != 1 {
		t.Fatalf("inspect %s: %d endpoints, want 1", target, len(d))
	}
	return d[0]
}

// txPackets reads an interface's transmit counter in the host namespace.
func txPackets(t *testing.T, tp *testutil.Topology, ifname string) uint64 {
	t.Helper()
	out := tp.Exec(tp.Host, "cat", "/sys/class/net/"+ifname+"/statistics/tx_packets")
	n, err := strconv.ParseUint(strings.TrimSpace(out), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestBridgeForwardingBypassesBridgeAndNetfilter(t *testing.T) {
	tp := newTopology(t)
	c1, c2 := tp.AddContainer("c1"), tp.AddContainer("c2")
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/16")
	tp.MustEbpfnet("attach", "--network", "n1", c1)
	tp.MustEbpfnet("attach", "--network", "n1", "--ip", "172.30.0.20", c2)
	// The fast path must not depend on netfilter: forwarding is denied.
	tp.Exec(tp.Host, "iptables", "-P", "FORWARD", "DROP")

	ep1, ep2 := inspect(t, tp, c1), inspect(t, tp, c2)
	if ep1.IP.String() != "172.30.0.2" || ep2.IP.String() != "172.30.0.20" {
		t.Fatalf("addresses: %s, %s", ep1.IP, ep2.IP)
	}
	if ep1.ProgramID == 0 || ep1.ProgramID != ep2.ProgramID {
		t.Fatalf("both endpoints should run the one pinned program: %d, %d", ep1.ProgramID, ep2.ProgramID)
	}

	testutil.Serve(t, tp.Namespace(c2), "c2", ":8080")
	// Warm up ARP so the counts below are data packets only.
	tp.Exec(c1, "ping", "-c", "1", "-W", "2", "172.30.0.20")
	bridgeTxBefore := txPackets(t, tp, ep2.HostVeth)
	before := inspect(t, tp, c2).Rx.Packets

	const pings = 100
	tp.Exec(c1, "ping", "-c", strconv.Itoa(pings), "-i", "0.002", "-W", "2", "172.30.0.20")
	for i := 0; i < 5; i++ {
		r := testutil.MustAsk(t, tp.Namespace(c1), "tcp4", "172.30.0.20:8080")
		if r.Server != "c2" || r.Source != "172.30.0.2" {
			t.Fatalf("TCP reply %+v: want server c2 seeing source 172.30.0.2", r)
		}
	}
	r := testutil.MustAsk(t, tp.Namespace(c1), "udp4", "172.30.0.20:8080")
	if r.Server != "c2" || r.Source != "172.30.0.2" {
		t.Fatalf("UDP reply %+v", r)
	}

	delivered := inspect(t, tp, c2).Rx.Packets - before
	if delivered < pings+5*3 {
		t.Fatalf("datapath delivered %d packets to c2, want at least %d", delivered, pings+15)
	}
	// Packets the bridge forwarded to c2 would be transmitted by its host
	// veth; redirect_peer skips it. Allow a little for ARP and IPv6
	// neighbour discovery, which the bridge floods.
	if viaBridge := txPackets(t, tp, ep2.HostVeth) - bridgeTxBefore; viaBridge > pings/10 {
		t.Fatalf("%d of %d packets to c2 went through the bridge, want the eBPF path", viaBridge, delivered)
	}
	verdicts, err := tp.Views().Verdicts()
	if err != nil {
		t.Fatal(err)
	}
	fwd := verdicts[maps.VerdictKey{Direction: loader.DirFromContainer, Verdict: loader.VerdictForward}]
	if fwd.Packets < 2*pings {
		t.Fatalf("forward verdicts = %d, want >= %d (echo requests and replies)", fwd.Packets, 2*pings)
	}
}

func TestNetworksAreIsolated(t *testing.T) {
	tp := newTopology(t)
	a, b := tp.AddContainer("a"), tp.AddContainer("b")
	tp.MustEbpfnet("network", "create", "red", "--subnet", "172.30.0.0/24")
	tp.MustEbpfnet("network", "create", "blue", "--subnet", "172.31.0.0/24")
	tp.MustEbpfnet("attach", "--network", "red", a)
	tp.MustEbpfnet("attach", "--network", "blue", b)
	testutil.Serve(t, tp.Namespace(b), "b", ":80")

	views := tp.Views()
	drops := func() uint64 {
		d, err := views.Drops()
		if err != nil {
			t.Fatal(err)
		}
		return d["network_isolation"].Packets
	}
	before := drops()
	if !testutil.TimesOut(tp.Namespace(a), "172.31.0.2:80", time.Second) {
		t.Fatal("red container reached a blue container")
	}
	if drops() <= before {
		t.Fatal("no network_isolation drop counted")
	}
	// The other network's gateway is the host, which stays reachable (as in Docker).
	tp.Exec(a, "ping", "-c", "1", "-W", "2", "172.31.0.1")
}

func TestICCDisabledDropsContainerToContainer(t *testing.T) {
	tp := newTopology(t)
	a, b := tp.AddContainer("a"), tp.AddContainer("b")
	tp.MustEbpfnet("network", "create", "quiet", "--subnet", "10.77.0.0/24", "--icc=false")
	tp.MustEbpfnet("attach", "--network", "quiet", a)
	tp.MustEbpfnet("attach", "--network", "quiet", b)
	testutil.Serve(t, tp.Namespace(b), "b", ":80")
	if !testutil.TimesOut(tp.Namespace(a), "10.77.0.3:80", time.Second) {
		t.Fatal("containers talked with --icc=false")
	}
	d, err := tp.Views().Drops()
	if err != nil {
		t.Fatal(err)
	}
	if d["icc_disabled"].Packets == 0 {
		t.Fatal("no icc_disabled drop counted")
	}
	tp.Exec(a, "ping", "-c", "1", "-W", "2", "10.77.0.1") // the gateway is still there
}

func TestNoneModeHasOnlyLoopback(t *testing.T) {
	tp := newTopology(t)
	c := tp.AddContainer("c")
	tp.Exec(c, "ip", "link", "set", "lo", "down")
	tp.MustEbpfnet("attach", "--net=none", c)
	out := tp.Exec(c, "ip", "-o", "link")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], ": lo:") || !strings.Contains(lines[0], "UP") {
		t.Fatalf("--net=none links:\n%s", out)
	}
	if d := inspect(t, tp, c); d.Mode != datapath.ModeNone {
		t.Fatalf("mode = %s", d.Mode)
	}
	tp.MustEbpfnet("detach", c)
}

func TestRunModes(t *testing.T) {
	tp := newTopology(t)
	// host: the host namespace's interfaces.
	if out := tp.MustEbpfnet("run", "--net=host", "--", "ip", "-o", "link"); !strings.Contains(out, testutil.UplinkIf) {
		t.Fatalf("--net=host does not see %s:\n%s", testutil.UplinkIf, out)
	}
	// bridge: a named netns visible in ip netns while CMD runs, gone after --rm.
	web := tp.Prefix + "-web"
	srv := tp.EbpfnetCmd("run", "--net=bridge", "--name", web, "--rm", "--", "sleep", "30")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	var ip string
	waitFor(t, 10*time.Second, func() bool {
		out, _, err := tp.Ebpfnet("inspect", web)
		if err != nil {
			return false
		}
		var d []datapath.EndpointDetail
		if json.Unmarshal([]byte(out), &d) != nil || len(d) != 1 {
			return false
		}
		ip = d[0].IP.String()
		return d[0].IP.IsValid()
	})
	if !strings.Contains(testutil.Run(t, "ip", "netns", "list"), web) {
		t.Fatalf("netns %s not listed by ip netns", web)
	}
	// container:NAME shares web's namespace, so it sees web's address.
	out := tp.MustEbpfnet("run", "--net=container:"+web, "--", "ip", "-4", "-o", "addr", "show", "eth0")
	if !strings.Contains(out, ip+"/") {
		t.Fatalf("--net=container:%s sees\n%s\nwant %s", web, out, ip)
	}
	// none: only lo, and the exit code is CMD's.
	_, _, err := tp.Ebpfnet("run", "--net=none", "--rm", "--", "sh", "-c", "ip -o link | grep -qv ': lo:' && exit 9; exit 3")
	if code := exitCode(err); code != 3 {
		t.Fatalf("run --net=none exit code %d (%v), want 3 (only lo, CMD's status)", code, err)
	}
	// Stopping the bridge run removes its endpoint and netns (--rm).
	srv.Process.Signal(os.Interrupt)
	srv.Wait()
	if strings.Contains(testutil.Run(t, "ip", "netns", "list"), web) {
		t.Fatalf("netns %s still present after --rm", web)
	}
	if out := tp.MustEbpfnet("ls"); strings.Contains(out, web) {
		t.Fatalf("endpoint %s still listed after --rm:\n%s", web, out)
	}
}

func TestDetachRemovesEverything(t *testing.T) {
	tp := newTopology(t)
	c := tp.AddContainer("c")
	tp.MustEbpfnet("attach", c) // default network, created on first use
	d := inspect(t, tp, c)
	if d.Network != datapath.DefaultNetwork {
		t.Fatalf("network = %s, want the default", d.Network)
	}
	if want := pinnedProgramID(t, tp); d.ProgramID != want {
		t.Fatalf("the host veth runs program %d, want from_container's %d", d.ProgramID, want)
	}
	views := tp.Views()
	if _, err := views.LookupEndpoint(d.HostIfindex); err != nil {
		t.Fatalf("endpoint not in map: %v", err)
	}

	tp.MustEbpfnet("detach", c)
	if _, err := views.LookupEndpoint(d.HostIfindex); err == nil {
		t.Fatal("endpoint left in map")
	}
	if out := tp.Exec(tp.Host, "ip", "-o", "link"); strings.Contains(out, d.HostVeth) {
		t.Fatalf("host veth left:\n%s", out)
	}
	if out := tp.Exec(c, "ip", "-o", "link"); strings.Contains(out, "eth0") {
		t.Fatalf("eth0 left in the container:\n%s", out)
	}
	if out := tp.MustEbpfnet("ls", "-o", "json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("state still lists endpoints: %s", out)
	}
	// Removing the last network releases the pinned datapath.
	tp.MustEbpfnet("network", "rm", datapath.DefaultNetwork)
	if _, err := os.Stat(tp.PinRoot); !os.IsNotExist(err) {
		t.Fatalf("pin root left behind: %v", err)
	}
	// Read-only commands on the empty instance load nothing that stays.
	tp.MustEbpfnet("stats")
	tp.MustEbpfnet("ct", "ls")
	if _, err := os.Stat(tp.PinRoot); !os.IsNotExist(err) {
		t.Fatalf("read-only commands left pins: %v", err)
	}
}

func TestTwoInstancesAreIndependent(t *testing.T) {
	h1, h2 := newTopology(t), testutil.NewTopology(t, ebpfnetBin)
	c1, c2 := h1.AddContainer("c"), h2.AddContainer("c")
	// Same network name and subnet on both simulated hosts.
	for _, tp := range []*testutil.Topology{h1, h2} {
		tp.MustEbpfnet("network", "create", "n", "--subnet", "172.30.0.0/24")
	}
	h1.MustEbpfnet("attach", "--network", "n", c1)
	h2.MustEbpfnet("attach", "--network", "n", c2)
	if out := h1.MustEbpfnet("ls"); strings.Contains(out, c2) {
		t.Fatalf("host 1 sees host 2's endpoint:\n%s", out)
	}
	h1.Exec(c1, "ping", "-c", "1", "-W", "2", "172.30.0.1")
	h2.Exec(c2, "ping", "-c", "1", "-W", "2", "172.30.0.1")
}

func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
