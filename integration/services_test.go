package integration

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/datapath"
	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
	"github.com/ebpfnet/ebpfnet/internal/testing/etcdtest"
	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
	"github.com/ebpfnet/ebpfnet/maps"
)

// ebpfnet's own service path (the kube-proxy replacement's datapath):
// services balanced at the socket for pods and the host, NodePorts and
// external addresses DNATed in from_uplink. No netfilter rule exists in
// the host; the table is what package kubeproxy would hand the datapath.
const (
	podA       = "10.244.1.2" // client
	podB       = "10.244.1.3" // backend
	podC       = "10.244.1.4" // backend
	remotePod  = "10.244.9.9" // an endpoint on another node
	svcBoth    = "10.96.1.10" // podB and podC
	svcSticky  = "10.96.1.11" // podB and podC, sessionAffinity ClientIP
	svcEmpty   = "10.96.1.12" // no endpoints
	svcRemote  = "10.96.1.13" // only remotePod, internalTrafficPolicy Local
	svcExtIP   = "198.18.0.77"
	nodePortLB = 30080
	nodePortET = 30081 // externalTrafficPolicy Local, endpoint elsewhere
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func servicesTable() datapath.ServiceTable {
	local := func(a string) datapath.ServiceBackend { return datapath.ServiceBackend{Addr: ap(a), Local: true} }
	both := []datapath.ServiceBackend{local(podB + ":8080"), local(podC + ":8080")}
	return datapath.ServiceTable{
		NodeIPs: []netip.Addr{netip.MustParseAddr(testutil.HostIP)},
		Services: []datapath.Service{
			{Name: "default/both:http", Proto: "tcp", Frontends: []netip.AddrPort{ap(svcBoth + ":80"), ap(svcExtIP + ":80")},
				NodePort: nodePortLB, Backends: both},
			{Name: "default/both:dns", Proto: "udp", Frontends: []netip.AddrPort{ap(svcBoth + ":53")}, Backends: both},
			{Name: "default/sticky", Proto: "tcp", Frontends: []netip.AddrPort{ap(svcSticky + ":80")}, Backends: both,
				Affinity: 30 * time.Second},
			{Name: "default/empty", Proto: "tcp", Frontends: []netip.AddrPort{ap(svcEmpty + ":80")}},
			{Name: "default/remote", Proto: "tcp", Frontends: []netip.AddrPort{ap(svcRemote + ":80")}, NodePort: nodePortET,
				Backends: []datapath.ServiceBackend{{Addr: ap(remotePod + ":8080")}}, InternalLocal: true, ExternalLocal: true},
		},
	}
}

// syncServices programs t into the host's instance in process, as the
// daemon's kube-proxy replacement does.
func syncServices(t *testing.T, tp *testutil.Topology, table datapath.ServiceTable) {
	t.Helper()
	syncServicesIn(t, tp.Namespace(tp.Host), tp.StateDir, tp.PinRoot, table)
}

func syncServicesIn(t *testing.T, host netnsutil.Namespace, state, pins string, table datapath.ServiceTable) {
	t.Helper()
	err := netnsutil.Do(host, func() error {
		inst, err := datapath.Open(datapath.Config{StateDir: state, PinRoot: pins})
		if err != nil {
			return err
		}
		defer inst.Close()
		return inst.SyncServices(table)
	})
	if err != nil {
		t.Fatalf("sync services: %v", err)
	}
}

// askPeer asks over TCP and returns the reply and the peer address the
// socket shows (getpeername).
func askPeer(t *testing.T, ns netnsutil.Namespace, addr string) (testutil.Reply, string) {
	t.Helper()
	c, err := testutil.Dial(ns, "tcp4", addr, 3*time.Second)
	if err != nil {
		t.Fatalf("connect %s from %s: %v", addr, ns.Path, err)
	}
	defer c.Close()
	line, err := testutil.AskOn(c)
	if err != nil {
		t.Fatalf("ask %s from %s: %v", addr, ns.Path, err)
	}
	return parseReply(t, line), c.RemoteAddr().String()
}

func parseReply(t *testing.T, line string) testutil.Reply {
	t.Helper()
	name, src, ok := strings.Cut(line, " ")
	host, _, err := net.SplitHostPort(src)
	if !ok || err != nil {
		t.Fatalf("malformed reply %q", line)
	}
	return testutil.Reply{Server: name, Source: host}
}

func TestServiceLoadBalancing(t *testing.T) {
	tp := newTopology(t)
	// A Kubernetes node: forwarding on (for NodePorts whose endpoint is
	// elsewhere), but nothing crosses netfilter's FORWARD.
	tp.Exec(tp.Host, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	tp.Exec(tp.Host, "iptables", "-P", "FORWARD", "DROP")
	tp.MustEbpfnet("network", "create", "k8s", "--subnet", "10.244.1.0/24")
	a, b, c := tp.AddContainer("a"), tp.AddContainer("b"), tp.AddContainer("c")
	tp.MustEbpfnet("attach", "--network", "k8s", "--ip", podA, a)
	tp.MustEbpfnet("attach", "--network", "k8s", "--ip", podB, b)
	tp.MustEbpfnet("attach", "--network", "k8s", "--ip", podC, c)
	testutil.Serve(t, tp.Namespace(b), "b", ":8080")
	testutil.Serve(t, tp.Namespace(c), "c", ":8080")
	syncServices(t, tp, servicesTable())
	pod, node, ext := tp.Namespace(a), tp.Namespace(tp.Host), tp.Namespace(tp.Ext)

	t.Run("pod to ClusterIP is balanced, the pod's address kept, the frontend shown", func(t *testing.T) {
		seen := map[string]int{}
		for range 24 {
			r, peer := askPeer(t, pod, svcBoth+":80")
			if r.Source != podA {
				t.Fatalf("backend saw %s, want the pod %s", r.Source, podA)
			}
			if peer != svcBoth+":80" {
				t.Fatalf("getpeername shows %s, want the ClusterIP %s:80", peer, svcBoth)
			}
			seen[r.Server]++
		}
		if seen["b"] == 0 || seen["c"] == 0 {
			t.Fatalf("24 connections reached %v: want both endpoints", seen)
		}
	})
	t.Run("unconnected UDP sees the ClusterIP answer", func(t *testing.T) {
		var line, from string
		err := netnsutil.Do(pod, func() error {
			pc, err := net.ListenPacket("udp4", ":0")
			if err != nil {
				return err
			}
			defer pc.Close()
			pc.SetDeadline(time.Now().Add(3 * time.Second))
			dst := net.UDPAddrFromAddrPort(ap(svcBoth + ":53"))
			if _, err := pc.WriteTo([]byte("hello\n"), dst); err != nil {
				return err
			}
			buf := make([]byte, 256)
			n, src, err := pc.ReadFrom(buf)
			line, from = strings.TrimSpace(string(buf[:n])), src.String()
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if r := parseReply(t, line); r.Source != podA {
			t.Fatalf("backend saw %s, want %s", r.Source, podA)
		}
		if from != svcBoth+":53" {
			t.Fatalf("recvfrom shows %s, want the ClusterIP %s:53", from, svcBoth)
		}
	})
	t.Run("session affinity keeps the endpoint", func(t *testing.T) {
		first, _ := askPeer(t, pod, svcSticky+":80")
		for range 12 {
			if r, _ := askPeer(t, pod, svcSticky+":80"); r.Server != first.Server {
				t.Fatalf("affinity broken: %s after %s", r.Server, first.Server)
			}
		}
	})
	t.Run("no endpoints: refused at once", func(t *testing.T) {
		for _, addr := range []string{svcEmpty + ":80", svcRemote + ":80"} {
			start := time.Now()
			_, err := testutil.Dial(pod, "tcp4", addr, 3*time.Second)
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("connect %s: %v, want connection refused", addr, err)
			}
			if d := time.Since(start); d > time.Second {
				t.Fatalf("refusal of %s took %v", addr, d)
			}
		}
	})
	t.Run("node to ClusterIP and to its NodePort", func(t *testing.T) {
		r, peer := askPeer(t, node, svcBoth+":80")
		if r.Server != "b" && r.Server != "c" || peer != svcBoth+":80" {
			t.Fatalf("node to ClusterIP: %+v via %s", r, peer)
		}
		if r, _ := askPeer(t, pod, testutil.HostIP+":30080"); r.Source != podA {
			t.Fatalf("pod to NodePort: backend saw %s", r.Source)
		}
	})
	t.Run("outside to NodePort and external IP: DNAT, client kept", func(t *testing.T) {
		tp.Exec(tp.Ext, "ip", "route", "add", svcExtIP+"/32", "via", testutil.HostIP)
		for _, addr := range []string{testutil.HostIP + ":30080", svcExtIP + ":80"} {
			seen := map[string]int{}
			for range 16 {
				r := testutil.MustAsk(t, ext, "tcp4", addr)
				if r.Source != testutil.ExtIP {
					t.Fatalf("%s: backend saw %s, want the client %s", addr, r.Source, testutil.ExtIP)
				}
				seen[r.Server]++
			}
			if seen["b"] == 0 || seen["c"] == 0 {
				t.Fatalf("%s: 16 connections reached %v: want both endpoints", addr, seen)
			}
		}
	})
	t.Run("outside to a NodePort whose endpoint is a node address: DNAT and SNAT", func(t *testing.T) {
		testutil.Serve(t, ext, "ext", ":9000")
		table := servicesTable()
		table.Services = append(table.Services, datapath.Service{Name: "default/node", Proto: "tcp", NodePort: 30082,
			Backends: []datapath.ServiceBackend{{Addr: ap(testutil.ExtIP + ":9000")}}})
		syncServices(t, tp, table)
		r, err := askWithin(ext, "tcp4", testutil.HostIP+":30082", 3*time.Second)
		if err != nil {
			t.Fatalf("%v\n%s", err, tp.MustEbpfnet("stats"))
		}
		if r.Server != "ext" || r.Source != testutil.HostIP {
			t.Fatalf("reply from %s seeing %s, want ext seeing the node %s", r.Server, r.Source, testutil.HostIP)
		}
		if !strings.Contains(tp.MustEbpfnet("ct", "ls"), "service") {
			t.Fatalf("no flow of kind service in:\n%s", tp.MustEbpfnet("ct", "ls"))
		}
		syncServices(t, tp, servicesTable())
	})
	t.Run("externalTrafficPolicy Local without a local endpoint drops", func(t *testing.T) {
		before := dropCount(t, tp.Views(), "service_no_local_endpoint")
		if !testutil.TimesOut(ext, testutil.HostIP+":30081", 500*time.Millisecond) {
			t.Fatal("NodePort with no local endpoint answered")
		}
		if dropCount(t, tp.Views(), "service_no_local_endpoint") == before {
			t.Fatal("drop not counted as service_no_local_endpoint")
		}
	})
	t.Run("a table change moves no other service", func(t *testing.T) {
		table := servicesTable()
		table.Services = table.Services[:2]
		syncServices(t, tp, table)
		svcs, err := tp.Views().LBServices()
		if err != nil {
			t.Fatal(err)
		}
		if len(svcs) != 2 {
			t.Fatalf("%d services after dropping three: %+v", len(svcs), svcs)
		}
		if !testutil.TimesOut(pod, svcSticky+":80", 300*time.Millisecond) {
			t.Fatal("a removed service still answers")
		}
		askPeer(t, pod, svcBoth+":80")
	})
	t.Run("detach forgets the namespace", func(t *testing.T) {
		if n := lbClients(t, tp.Views()); n != 3 {
			t.Fatalf("%d client namespaces, want 3", n)
		}
		tp.MustEbpfnet("detach", a)
		if n := lbClients(t, tp.Views()); n != 2 {
			t.Fatalf("%d client namespaces after a detach, want 2", n)
		}
	})
}

func lbClients(t *testing.T, v *maps.Views) int {
	t.Helper()
	n, err := v.LBClientCount()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// The service path across two nodes of an overlay network: pods and
// nodes reach Services whose endpoints are on the other node, and a
// NodePort from outside reaches an endpoint on the other node
// (externalTrafficPolicy Cluster: SNATed to the node it entered) or on
// its own (the client kept). No netfilter rule anywhere; every host's
// FORWARD policy drops.
func TestServicesAcrossHosts(t *testing.T) {
	t.Parallel()
	c, ovs := newOverlayHosts(t, 2)
	var hs []*cniOverlayHost
	for _, h := range ovs {
		c.Exec(h.ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
		h.startDaemon()
		hs = append(hs, newCNIOverlayHost(t, h))
	}
	a, ipA := hs[0].addPod(c, nil, "a", "client")
	b, ipB := hs[1].addPod(c, nil, "b", "backend")
	host1, host2 := etcdtest.HostIP(1), etcdtest.HostIP(2)
	testutil.Serve(t, a, "client", ":8080")
	testutil.Serve(t, b, "backend", ":8080")
	node1, node2, underlay := namespace(t, c.Hosts[0]), namespace(t, c.Hosts[1]), namespace(t, c.Underlay)
	testutil.Serve(t, node1, "host1", ":9000")
	for i, h := range hs {
		table := datapath.ServiceTable{
			NodeIPs: []netip.Addr{netip.MustParseAddr(host1), netip.MustParseAddr(host2)},
			Services: []datapath.Service{
				{Name: "default/b", Proto: "tcp", Frontends: []netip.AddrPort{ap("10.96.0.10:80")}, NodePort: 30080,
					Backends: []datapath.ServiceBackend{{Addr: ap(ipB + ":8080"), Local: i == 1}}},
				{Name: "default/b:udp", Proto: "udp", Frontends: []netip.AddrPort{ap("10.96.0.10:53")},
					Backends: []datapath.ServiceBackend{{Addr: ap(ipB + ":8080"), Local: i == 1}}},
				{Name: "default/a", Proto: "tcp", Frontends: []netip.AddrPort{ap("10.96.0.11:80")},
					Backends: []datapath.ServiceBackend{{Addr: ap(ipA + ":8080"), Local: i == 0}}},
				{Name: "default/kubernetes", Proto: "tcp", Frontends: []netip.AddrPort{ap("10.96.0.1:443")},
					Backends: []datapath.ServiceBackend{{Addr: ap(host1 + ":9000"), Local: i == 0}}},
			},
		}
		syncServicesIn(t, namespace(t, h.ns), h.state, h.pinRoot, table)
	}
	for _, tc := range []struct {
		name      string
		from      netnsutil.Namespace
		network   string
		addr      string
		server    string
		sourceSet string // the source the server sees
	}{
		{"pod to a Service whose endpoint is on the other host", a, "tcp4", "10.96.0.10:80", "backend", ipA},
		{"the same over UDP", a, "udp4", "10.96.0.10:53", "backend", ipA},
		{"the other way", b, "tcp4", "10.96.0.11:80", "client", ipB},
		{"host to a Service whose endpoint is on the other host", node1, "tcp4", "10.96.0.10:80", "backend", host1},
		{"pod to the other host's NodePort (balanced at the socket)", a, "tcp4", host2 + ":30080", "backend", ipA},
		{"outside to a NodePort whose endpoint is on the other host", underlay, "tcp4", host1 + ":30080", "backend", host1},
		{"outside to a NodePort whose endpoint is on that host", underlay, "tcp4", host2 + ":30080", "backend", etcdtest.UnderlayIP},
		// Balanced at the socket, the pod connects to host 1 itself: as
		// any pod's connection to another host's address, masqueraded.
		{"pod to a Service whose endpoint is another host's address", b, "tcp4", "10.96.0.1:443", "host1", host2},
		{"pod to a Service whose endpoint is its own host's address", a, "tcp4", "10.96.0.1:443", "host1", ipA},
		{"host to a Service whose endpoint is another host", node2, "tcp4", "10.96.0.1:443", "host1", host2},
	} {
		r, err := askWithin(tc.from, tc.network, tc.addr, 15*time.Second)
		if err != nil || r.Server != tc.server || r.Source != tc.sourceSet {
			t.Errorf("%s: reply from %s seeing %s (%v), want %s seeing %s", tc.name, r.Server, r.Source, err, tc.server, tc.sourceSet)
		}
	}
	if t.Failed() {
		for _, h := range hs {
			t.Logf("host %d stats:\n%s", h.i, h.must("stats"))
		}
	}
}
