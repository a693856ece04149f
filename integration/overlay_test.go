package integration

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/datapath"
	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
	"github.com/ebpfnet/ebpfnet/internal/testing/etcdtest"
	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

// ovHost is a simulated cluster host running its own ebpfnet instance.
type ovHost struct {
	t                  *testing.T
	i                  int // 1-based, as etcdtest.HostIP
	ns, state, pinRoot string
	store              string
	daemon             *exec.Cmd
	daemonDone         chan struct{}
	daemonLog          *bytes.Buffer
}

func newOverlayHosts(t *testing.T, n int) (*etcdtest.Cluster, []*ovHost) {
	t.Helper()
	c := etcdtest.NewCluster(t, n)
	var hs []*ovHost
	for i, ns := range c.Hosts {
		h := &ovHost{t: t, i: i + 1, ns: ns, state: filepath.Join(t.TempDir(), "state"),
			pinRoot: testutil.NewPinRoot(t, ns), store: c.Etcd.Store()}
		// Every host forwards nothing itself: what crosses is the datapath's.
		c.Exec(ns, "iptables", "-P", "FORWARD", "DROP")
		hs = append(hs, h)
	}
	return c, hs
}

func (h *ovHost) cmd(args ...string) *exec.Cmd {
	full := append([]string{"netns", "exec", h.ns, ebpfnetBin, "--state-dir", h.state, "--pin-root", h.pinRoot, "--cluster-store", h.store}, args...)
	return exec.Command("ip", full...)
}

func (h *ovHost) run(args ...string) (string, string, error) {
	cmd := h.cmd(args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), strings.TrimSpace(stderr.String()), err
}

func (h *ovHost) must(args ...string) string {
	h.t.Helper()
	out, errOut, err := h.run(args...)
	if err != nil {
		h.t.Fatalf("host %d: ebpfnet %s: %v: %s", h.i, strings.Join(args, " "), err, errOut)
	}
	return out
}

// vxlanRx is the packets the host's VXLAN device has received.
func (h *ovHost) vxlanRx() uint64 {
	h.t.Helper()
	out := testutil.Run(h.t, "ip", "netns", "exec", h.ns, "cat", "/sys/class/net/"+datapath.OverlayDevice+"/statistics/rx_packets")
	n, err := strconv.ParseUint(strings.TrimSpace(out), 10, 64)
	if err != nil {
		h.t.Fatalf("host %d: VXLAN rx_packets %q: %v", h.i, out, err)
	}
	return n
}

// startDaemon joins the cluster and waits until the host is a member.
func (h *ovHost) startDaemon() {
	h.t.Helper()
	h.daemon = h.cmd("daemon", "--advertise-addr", etcdtest.HostIP(h.i), "--lease-ttl", "3s", "--metrics-addr", "127.0.0.1:9469", "--gc-interval", "1s")
	h.daemonLog = &bytes.Buffer{}
	h.daemon.Stdout, h.daemon.Stderr = h.daemonLog, h.daemonLog
	if err := h.daemon.Start(); err != nil {
		h.t.Fatal(err)
	}
	cmd, done := h.daemon, make(chan struct{})
	h.daemonDone = done
	go func() { cmd.Wait(); close(done) }()
	h.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL) // by PID; a no-op if it is gone
		<-done
		if h.t.Failed() {
			h.t.Logf("host %d daemon log:\n%s", h.i, h.daemonLog.String())
		}
	})
	waitUntil(h.t, 30*time.Second, fmt.Sprintf("host %d joining the cluster", h.i), func() bool {
		_, err := os.Stat(filepath.Join(h.state, "cluster-host"))
		return err == nil
	})
}

// killDaemon kills the daemon by PID, as a crash would.
func (h *ovHost) killDaemon() {
	h.daemon.Process.Signal(syscall.SIGKILL)
	<-h.daemonDone
}

func (h *ovHost) remoteIPs() string {
	h.t.Helper()
	return strings.Join(strings.Fields(h.must("overlay", "ls", "-q")), " ")
}

// monitor runs `ebpfnet monitor -o json` on the host until the test ends.
func (h *ovHost) monitor() <-chan map[string]any {
	h.t.Helper()
	return monitorEvents(h.t, h.cmd("monitor", "-o", "json"))
}

func (h *ovHost) drops() map[string]uint64 {
	h.t.Helper()
	var s struct {
		Drops map[string]struct {
			Packets uint64 `json:"packets"`
		} `json:"drops"`
	}
	if err := json.Unmarshal([]byte(h.must("stats", "-o", "json")), &s); err != nil {
		h.t.Fatal(err)
	}
	out := map[string]uint64{}
	for k, v := range s.Drops {
		out[k] = v.Packets
	}
	return out
}

// waitUntil is waitFor that says what it waited for.
func waitUntil(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// askEventually asks until the server answers (the other hosts learn a new
// endpoint from the store within a sync).
func askEventually(t *testing.T, from netnsutil.Namespace, network, addr string) testutil.Reply {
	t.Helper()
	r, err := askWithin(from, network, addr, 15*time.Second)
	if err != nil {
		t.Fatalf("%s %s: %v", network, addr, err)
	}
	return r
}

// askWithin asks until the server answers or the time is up, and returns
// the last error then.
func askWithin(from netnsutil.Namespace, network, addr string, limit time.Duration) (testutil.Reply, error) {
	var line string
	var err error
	for end := time.Now().Add(limit); ; time.Sleep(200 * time.Millisecond) {
		if line, err = testutil.Ask(from, network, addr); err == nil || time.Now().After(end) {
			break
		}
	}
	if err != nil {
		return testutil.Reply{}, err
	}
	name, src, _ := strings.Cut(line, " ")
	host, _, _ := net.SplitHostPort(src)
	return testutil.Reply{Server: name, Source: host}, nil
}

func namespace(t *testing.T, ns string) netnsutil.Namespace {
	t.Helper()
	n, err := netnsutil.Resolve(ns)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func container(t *testing.T, c *etcdtest.Cluster, name string) (string, netnsutil.Namespace) {
	t.Helper()
	ns := c.Prefix + "-" + name
	testutil.Run(t, "ip", "netns", "add", ns)
	testutil.Run(t, "ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
	n, err := netnsutil.Resolve(ns)
	if err != nil {
		t.Fatal(err)
	}
	return ns, n
}

// TestOverlayAcrossHosts: three hosts, containers of one overlay network on
// each reach each other by their overlay addresses over VXLAN, with the
// hosts' FORWARD policy DROP, isolated from a second overlay network; a
// forged VXLAN packet is dropped; a dead host's endpoints go with its
// lease; with etcd down existing traffic flows and attaches fail in one
// line, and work again when it returns.
func TestOverlayAcrossHosts(t *testing.T) {
	t.Parallel()
	c, hs := newOverlayHosts(t, 3)
	for _, h := range hs {
		h.startDaemon()
	}
	hs[0].must("network", "create", "--driver", "overlay", "ov1", "--subnet", "10.210.0.0/24")
	hs[1].must("network", "create", "--driver", "overlay", "ov2", "--subnet", "10.211.0.0/24")

	nsA, a := container(t, c, "a")
	nsB, b := container(t, c, "b")
	nsC, cc := container(t, c, "c")
	nsX, x := container(t, c, "x")
	ipOf := func(out string) string { f := strings.Fields(out); return f[len(f)-1] }
	ipA := ipOf(hs[0].must("attach", "--network", "ov1", "--name", "a", "-p", "8080:7000", nsA))
	ipB := ipOf(hs[1].must("attach", "--network", "ov1", "--name", "b", nsB))
	ipC := ipOf(hs[2].must("attach", "--network", "ov1", "--name", "c", nsC))
	ipX := ipOf(hs[1].must("attach", "--network", "ov2", "--name", "x", nsX))
	t.Logf("a %s (h1), b %s (h2), c %s (h3), x %s (h2, ov2)", ipA, ipB, ipC, ipX)

	// A path that would take an address from the local IPAM is refused.
	if _, errOut, err := hs[1].run("network", "connect", "ov1", "x"); err == nil || !strings.Contains(errOut, "overlay network") {
		t.Errorf("network connect to an overlay network: err %v, stderr %q", err, errOut)
	}

	// The overlay MTU leaves room for VXLAN on the 1500-byte underlay.
	if out := testutil.Run(t, "ip", "netns", "exec", nsA, "ip", "-o", "link", "show", "eth0"); !strings.Contains(out, "mtu 1450") {
		t.Errorf("container MTU: %s", out)
	}

	testutil.Serve(t, b, "b", ":7000")
	testutil.Serve(t, a, "a", ":7000")
	testutil.Serve(t, cc, "c", ":7000")
	testutil.Serve(t, x, "x", ":7000")
	for _, p := range []struct {
		from       netnsutil.Namespace
		fromIP, to string
		server     string
	}{
		{a, ipA, ipB, "b"}, {b, ipB, ipA, "a"}, {a, ipA, ipC, "c"}, {cc, ipC, ipB, "b"},
	} {
		for _, network := range []string{"tcp4", "udp4"} {
			r := askEventually(t, p.from, network, net.JoinHostPort(p.to, "7000"))
			if r.Server != p.server || r.Source != p.fromIP {
				t.Errorf("%s %s -> %s: reply %+v, want server %s seeing %s", network, p.fromIP, p.to, r, p.server, p.fromIP)
			}
		}
	}
	testutil.Run(t, "ip", "netns", "exec", nsA, "ping", "-c", "2", "-W", "2", ipC)
	// The receiving host decapsulates in from_uplink: its VXLAN device
	// sees none of it (it keeps what the datapath leaves it: GSO, refusals).
	rxBefore := hs[1].vxlanRx()
	testutil.Run(t, "ip", "netns", "exec", nsA, "ping", "-c", "10", "-i", "0.05", "-W", "2", ipB)
	for _, network := range []string{"tcp4", "udp4"} {
		testutil.MustAsk(t, a, network, net.JoinHostPort(ipB, "7000"))
	}
	n := hs[1].vxlanRx() - rxBefore
	t.Logf("host 2's VXLAN device: %d packets received of 10 pings and two requests", n)
	if n >= 10 {
		t.Errorf("host 2's VXLAN device received %d packets of 10 pings and two requests: the datapath did not decapsulate them", n)
	}
	// run takes its address from the cluster too, and gives it back with --rm.
	if out, errOut, err := hs[0].run("run", "--network", "ov1", "--rm", "--", "ping", "-c", "3", "-W", "2", ipB); err != nil {
		t.Errorf("run --network ov1 -- ping b: %v\n%s%s", err, out, errOut)
	}
	waitUntil(t, 10*time.Second, "host 2 forgetting the run's address", func() bool { return hs[1].remoteIPs() == ipA+" "+ipC })

	// Counted per peer host: the traffic took the eBPF path.
	var peers []struct {
		Host      string `json:"host"`
		TxPackets uint64 `json:"tx_packets"`
		RxPackets uint64 `json:"rx_packets"`
	}
	if err := json.Unmarshal([]byte(hs[0].must("overlay", "peers", "-o", "json")), &peers); err != nil {
		t.Fatal(err)
	}
	if len(peers) != 2 {
		t.Errorf("host 1 peers %+v, want hosts 2 and 3", peers)
	}
	for _, p := range peers {
		if p.TxPackets == 0 || p.RxPackets == 0 {
			t.Errorf("host 1 peer %+v: no traffic counted", p)
		}
	}

	metricsBody := get(t, httpIn(namespace(t, c.Hosts[0])), "http://127.0.0.1:9469/metrics")
	for _, series := range []string{"ebpfnet_overlay_peer_packets_total", "ebpfnet_overlay_peer_bytes_total"} {
		if v := sample(metricsBody, series, `direction="tx"`, `peer="`+etcdtest.HostIP(2)+`"`); v == 0 {
			t.Errorf("%s to host 2: %v", series, v)
		}
	}
	if v := sample(metricsBody, "ebpfnet_cluster_view_synced"); v != 1 {
		t.Errorf("ebpfnet_cluster_view_synced = %v, want 1", v)
	}
	if !strings.Contains(metricsBody, "ebpfnet_cluster_sync_lag_seconds ") {
		t.Errorf("no ebpfnet_cluster_sync_lag_seconds in the metrics")
	}

	// Bulk TCP across hosts: full-size segments fit the overlay MTU.
	if got := iperf(t, nil, nsB, nsA, ipB, 5201); got < 10<<20 {
		t.Errorf("iperf3 a -> b moved %.0f bytes in 2 s", got)
	}

	// Each host's own uplink: a's traffic to the underlay is masqueraded
	// to host 1's address, and a's published port answers there.
	under := namespace(t, c.Underlay)
	testutil.Serve(t, under, "underlay", etcdtest.UnderlayIP+":7100")
	if r := testutil.MustAsk(t, a, "tcp4", etcdtest.UnderlayIP+":7100"); r.Source != etcdtest.HostIP(1) {
		t.Errorf("a -> underlay: seen from %s, want host 1's %s (masquerade)", r.Source, etcdtest.HostIP(1))
	}
	if r := testutil.MustAsk(t, under, "tcp4", etcdtest.HostIP(1)+":8080"); r.Server != "a" || r.Source != etcdtest.UnderlayIP {
		t.Errorf("underlay -> host 1:8080: %+v, want a seeing %s", r, etcdtest.UnderlayIP)
	}

	// Isolation between overlay networks, across hosts and on one host.
	if !testutil.TimesOut(a, net.JoinHostPort(ipX, "7000"), time.Second) {
		t.Errorf("ov1 container a reached ov2 container x")
	}
	if !testutil.TimesOut(b, net.JoinHostPort(ipX, "7000"), time.Second) {
		t.Errorf("ov1 container b reached ov2 container x on its own host")
	}

	// A forged VXLAN packet from host 3 claiming a's address (a lives on
	// host 1) is dropped by host 2; so is one with the wrong VNI.
	before := hs[1].drops()
	var nets []struct {
		Name string `json:"name"`
		VNI  uint32 `json:"vni"`
	}
	if err := json.Unmarshal([]byte(hs[1].must("network", "ls", "-o", "json")), &nets); err != nil {
		t.Fatal(err)
	}
	var vni uint32
	for _, n := range nets {
		if n.Name == "ov1" {
			vni = n.VNI
		}
	}
	if vni == 0 {
		t.Fatalf("no VNI for ov1 in network ls: %+v", nets)
	}
	events := hs[1].monitor()
	sendVXLAN(t, c.Hosts[2], etcdtest.HostIP(2), vni+1, ipC, ipB) // c is host 3's, wrong VNI
	// a is host 1's; sent until host 2's monitor (which may still be
	// starting) shows the drop, with the inner packet's addresses.
	deadline := time.After(30 * time.Second)
	for seen := false; !seen; {
		sendVXLAN(t, c.Hosts[2], etcdtest.HostIP(2), vni, ipA, ipB)
		for drained := false; !drained && !seen; {
			select {
			case ev, ok := <-events:
				if !ok {
					t.Fatal("monitor exited")
				}
				if ev["type"] != "drop" || ev["reason"] != "overlay_spoofed" {
					continue
				}
				if ev["direction"] != "from_overlay" || ev["protocol"] != "udp" || ev["src"] != ipA || ev["dst"] != ipB {
					t.Fatalf("overlay drop event %v: want from_overlay udp %s -> %s", ev, ipA, ipB)
				}
				seen = true
			case <-deadline:
				t.Fatal("no overlay_spoofed drop event in host 2's monitor within 30s")
			case <-time.After(500 * time.Millisecond):
				drained = true
			}
		}
	}
	waitUntil(t, 5*time.Second, "the forged packets' drops", func() bool {
		d := hs[1].drops()
		return d["overlay_spoofed"] > before["overlay_spoofed"] && d["overlay_vni"] > before["overlay_vni"]
	})

	// Host 3 dies: after its lease, the others forget c; a and b still talk.
	if !strings.Contains(hs[0].remoteIPs(), ipC) {
		t.Fatalf("host 1 does not know c (%s): %s", ipC, hs[0].remoteIPs())
	}
	hs[2].killDaemon()
	waitUntil(t, 15*time.Second, "host 1 forgetting c", func() bool { return !strings.Contains(hs[0].remoteIPs(), ipC) })
	if r := askEventually(t, a, "tcp4", net.JoinHostPort(ipB, "7000")); r.Server != "b" {
		t.Errorf("a -> b after host 3 died: %+v", r)
	}
	// It comes back: it re-registers c from its local record, the others
	// learn c again, and nothing else appears.
	hs[2].startDaemon()
	waitUntil(t, 15*time.Second, "host 1 relearning c", func() bool { return strings.Contains(hs[0].remoteIPs(), ipC) })
	if got, want := hs[0].remoteIPs(), ipB+" "+ipC; got != want {
		t.Errorf("host 1 remote endpoints after host 3 returned: %q, want %q", got, want)
	}
	if r := askEventually(t, a, "tcp4", net.JoinHostPort(ipC, "7000")); r.Server != "c" {
		t.Errorf("a -> c after host 3 returned: %+v", r)
	}

	// --icc=false holds across hosts.
	hs[0].must("network", "create", "--driver", "overlay", "ov3", "--subnet", "10.212.0.0/24", "--icc=false")
	nsE, e := container(t, c, "e")
	nsF, fns := container(t, c, "f")
	hs[0].must("attach", "--network", "ov3", "--name", "e", nsE)
	ipF := ipOf(hs[1].must("attach", "--network", "ov3", "--name", "f", nsF))
	testutil.Serve(t, fns, "f", ":7000")
	waitUntil(t, 15*time.Second, "host 1 learning f", func() bool { return strings.Contains(hs[0].remoteIPs(), ipF) })
	iccBefore := hs[0].drops()["icc_disabled"]
	if !testutil.TimesOut(e, net.JoinHostPort(ipF, "7000"), time.Second) {
		t.Errorf("--icc=false: e reached f on another host")
	}
	if hs[0].drops()["icc_disabled"] == iccBefore {
		t.Errorf("--icc=false: no icc_disabled drop counted on host 1")
	}

	// etcd down: a long-lived connection and new ones keep working (the
	// maps are pinned); a new attach fails in one line; etcd back, it works.
	conn, err := testutil.Dial(a, "tcp4", net.JoinHostPort(ipB, "7000"), 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := c.Etcd.Stop(); err != nil {
		t.Fatal(err)
	}
	if r, err := testutil.AskOn(conn); err != nil || !strings.HasPrefix(r, "b ") {
		t.Errorf("open connection a -> b with etcd down: %q %v", r, err)
	}
	if r := testutil.MustAsk(t, b, "udp4", net.JoinHostPort(ipA, "7000")); r.Server != "a" {
		t.Errorf("b -> a with etcd down: %+v", r)
	}
	nsD, dns := container(t, c, "d")
	testutil.Serve(t, dns, "d", ":7000")
	_, errOut, err := hs[0].run("attach", "--network", "ov1", "--name", "d", nsD)
	if err == nil || strings.Contains(errOut, "\n") || !strings.Contains(errOut, "unreachable") {
		t.Errorf("attach with etcd down: err %v, stderr %q: want a one-line unreachable error", err, errOut)
	}
	if err := c.Etcd.Start(); err != nil {
		t.Fatal(err)
	}
	ipD := ipOf(hs[0].must("attach", "--network", "ov1", "--name", "d", nsD))
	if r := askEventually(t, b, "tcp4", net.JoinHostPort(ipD, "7000")); r.Server != "d" || r.Source != ipB {
		t.Errorf("b -> d after etcd returned: %+v", r)
	}

	// d's namespace dies without a detach: host 1's daemon frees the
	// endpoint and, after a grace period, its address in the cluster.
	testutil.Run(t, "ip", "netns", "delete", nsD)
	waitUntil(t, 40*time.Second, "host 2 forgetting d, whose namespace died", func() bool { return !strings.Contains(hs[1].remoteIPs(), ipD) })

	// Detach gives the address back: the other hosts forget it.
	hs[1].must("detach", "b")
	waitUntil(t, 15*time.Second, "host 1 forgetting b", func() bool { return !strings.Contains(hs[0].remoteIPs(), ipB) })

	// ov2 removed from the cluster on host 1, which never had a part of
	// it: host 2's daemon removes its own part once x is detached.
	hs[1].must("detach", "x")
	hs[0].must("network", "rm", "ov2")
	waitUntil(t, 30*time.Second, "host 2 removing its part of ov2", func() bool {
		_, _, err := hs[1].run("network", "inspect", "ov2")
		return err != nil
	})
}

// sendVXLAN sends, from namespace ns, one VXLAN packet to host's port 4789
// carrying a UDP datagram from src to dst (inner MACs: Docker's, from the
// addresses).
func sendVXLAN(t *testing.T, ns, host string, vni uint32, src, dst string) {
	t.Helper()
	s, d := net.ParseIP(src).To4(), net.ParseIP(dst).To4()
	mac := func(ip net.IP) []byte { return []byte{0x02, 0x42, ip[0], ip[1], ip[2], ip[3]} }
	var b []byte
	b = binary.BigEndian.AppendUint32(b, 0x08000000) // VXLAN: I flag
	b = binary.BigEndian.AppendUint32(b, vni<<8)
	b = append(b, mac(d)...)
	b = append(b, mac(s)...)
	b = append(b, 0x08, 0x00)
	payload := []byte("forged")
	ip := []byte{0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0}
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(payload)))
	ip = append(append(ip, s...), d...)
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	udp := make([]byte, 8)
	binary.BigEndian.PutUint16(udp[0:], 40000)
	binary.BigEndian.PutUint16(udp[2:], 7000)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	b = append(append(append(b, ip...), udp...), payload...)
	n, err := netnsutil.Resolve(ns)
	if err != nil {
		t.Fatal(err)
	}
	err = netnsutil.Do(n, func() error {
		c, err := net.Dial("udp4", net.JoinHostPort(host, "4789"))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
