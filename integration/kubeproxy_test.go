package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
	"github.com/ebpfnet/ebpfnet/internal/testing/etcdtest"
	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

// Kubernetes Services through stock kube-proxy, with the rules kube-proxy
// writes reduced to what each case needs, in both of its modes. The node
// runs as kubeadm sets it up: bridge-nf-call-iptables on, forwarding on;
// the network names the service CIDR (the CNI config's serviceCIDRs).
const (
	podClient  = "10.244.0.2"
	podBackend = "10.244.0.3"
	podGateway = "10.244.0.1"
	svcBackend = "10.96.0.10" // backend's Service
	svcSelf    = "10.96.0.11" // client's own Service (hairpin)
	nodePort   = "30080"
)

// kubeProxyRules are, per mode, DNATs for the two Services (TCP and UDP),
// a NodePort with externalTrafficPolicy Local (DNAT, no masquerade), and
// the masquerade of a pod reaching itself through its Service.
var kubeProxyRules = map[string][]string{
	"iptables": {
		"-t nat -N KUBE-SERVICES",
		"-t nat -A PREROUTING -j KUBE-SERVICES",
		"-t nat -A OUTPUT -j KUBE-SERVICES",
		"-t nat -A KUBE-SERVICES -d " + svcBackend + " -p tcp --dport 80 -j DNAT --to-destination " + podBackend + ":8080",
		"-t nat -A KUBE-SERVICES -d " + svcBackend + " -p udp --dport 53 -j DNAT --to-destination " + podBackend + ":8080",
		"-t nat -A KUBE-SERVICES -d " + svcSelf + " -p tcp --dport 80 -j DNAT --to-destination " + podClient + ":8080",
		"-t nat -A KUBE-SERVICES -d " + testutil.HostIP + " -p tcp --dport " + nodePort + " -j DNAT --to-destination " + podBackend + ":8080",
		"-t nat -A POSTROUTING -s " + podClient + " -d " + podClient + " -j MASQUERADE",
	},
	"nftables": {`
table ip kube-proxy {
	chain services {
		ip daddr ` + svcBackend + ` tcp dport 80 dnat to ` + podBackend + `:8080
		ip daddr ` + svcBackend + ` udp dport 53 dnat to ` + podBackend + `:8080
		ip daddr ` + svcSelf + ` tcp dport 80 dnat to ` + podClient + `:8080
		ip daddr ` + testutil.HostIP + ` tcp dport ` + nodePort + ` dnat to ` + podBackend + `:8080
	}
	chain prerouting { type nat hook prerouting priority -100; jump services; }
	chain output { type nat hook output priority -100; jump services; }
	chain postrouting {
		type nat hook postrouting priority 100;
		ip saddr ` + podClient + ` ip daddr ` + podClient + ` masquerade
	}
}
`},
}

func TestKubeProxyServices(t *testing.T) {
	for _, mode := range []string{"iptables", "nftables"} {
		t.Run(mode, func(t *testing.T) {
			tp := newTopology(t)
			tp.Exec(tp.Host, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1", "net.ipv4.ip_forward=1")
			tp.MustEbpfnet("network", "create", "k8s", "--subnet", "10.244.0.0/24", "--service-cidr", "10.96.0.0/12")
			client, backend := tp.AddContainer("client"), tp.AddContainer("backend")
			tp.MustEbpfnet("attach", "--network", "k8s", "--ip", podClient, client)
			tp.MustEbpfnet("attach", "--network", "k8s", "--ip", podBackend, backend)
			testutil.Serve(t, tp.Namespace(client), "client", ":8080")
			testutil.Serve(t, tp.Namespace(backend), "backend", ":8080")
			testutil.Serve(t, tp.Namespace(tp.Ext), "outside", ":9000")
			writeKubeProxyRules(t, tp, mode)

			c, node, ext := tp.Namespace(client), tp.Namespace(tp.Host), tp.Namespace(tp.Ext)
			views := tp.Views()
			handedBefore := verdicts(t, views, loader.VerdictKernelNAT)
			// Pod to a Service: DNAT by netfilter, the pod's address kept,
			// the reply un-NATed by netfilter. Several connections, so a
			// reply that skipped netfilter would show (a RST, a timeout).
			for range 5 {
				expect(t, testutil.MustAsk(t, c, "tcp4", svcBackend+":80"), "backend", podClient)
			}
			expect(t, testutil.MustAsk(t, c, "udp4", svcBackend+":53"), "backend", podClient)
			// A datagram beyond the MTU, both ways: every fragment of the
			// reply crosses netfilter, not only the first, which alone
			// carries the ports.
			if line, err := testutil.AskLarge(c, svcBackend+":53", 4000); err != nil || !strings.HasPrefix(line, "backend "+podClient+":") {
				t.Errorf("4000-byte datagram to a Service: %q, %v", line, err)
			}
			// A pod to its own Service: masqueraded to the gateway.
			expect(t, testutil.MustAsk(t, c, "tcp4", svcSelf+":80"), "client", podGateway)
			// NodePort from outside with externalTrafficPolicy Local: the
			// client's address reaches the pod, the reply leaves un-NATed.
			expect(t, testutil.MustAsk(t, ext, "tcp4", testutil.HostIP+":"+nodePort), "backend", extAddr)
			// The node itself to a Service (OUTPUT DNAT).
			if r := testutil.MustAsk(t, node, "tcp4", svcBackend+":80"); r.Server != "backend" {
				t.Errorf("node to Service: reply from %s", r.Server)
			}
			handed := verdicts(t, views, loader.VerdictKernelNAT) - handedBefore

			// The rest stays in eBPF: pod to pod forwarded, pod to
			// outside masqueraded by the datapath.
			fwdBefore, snatBefore := verdicts(t, views, loader.VerdictForward), verdicts(t, views, loader.VerdictSNAT)
			expect(t, testutil.MustAsk(t, c, "tcp4", podBackend+":8080"), "backend", podClient)
			expect(t, testutil.MustAsk(t, c, "tcp4", extAddr+":9000"), "outside", hostAddr)
			if handed == 0 || verdicts(t, views, loader.VerdictForward) == fwdBefore || verdicts(t, views, loader.VerdictSNAT) == snatBefore {
				t.Errorf("verdicts: %d handed to netfilter (want > 0), pod-to-pod forwarded and masquerade in eBPF (want both to grow): %v",
					handed, tp.MustEbpfnet("stats"))
			}
		})
	}
}

func writeKubeProxyRules(t *testing.T, tp *testutil.Topology, mode string) {
	t.Helper()
	switch mode {
	case "iptables":
		for _, r := range kubeProxyRules[mode] {
			tp.Exec(tp.Host, append([]string{"iptables", "-w"}, strings.Fields(r)...)...)
		}
	case "nftables":
		f := filepath.Join(t.TempDir(), "kube-proxy.nft")
		if err := os.WriteFile(f, []byte(kubeProxyRules[mode][0]), 0o644); err != nil {
			t.Fatal(err)
		}
		tp.Exec(tp.Host, "nft", "-f", f)
	default:
		t.Fatalf("unknown mode %s", mode)
	}
}

func verdicts(t *testing.T, v *maps.Views, verdict loader.Verdict) uint64 {
	t.Helper()
	all, err := v.Verdicts()
	if err != nil {
		t.Fatal(err)
	}
	return all[maps.VerdictKey{Direction: loader.DirFromContainer, Verdict: verdict}].Packets
}

// TestKubeProxyServicesAcrossHosts: the same on an overlay network of two
// hosts (the CNI plugin's driver overlay), where netfilter on one host
// sends Service traffic to a backend on the other: the host's stack reaches
// the other host's pods through from_host and the tunnel, netfilter's
// replies come back through it, and a NodePort that masquerades (the
// default externalTrafficPolicy) reaches a backend on the other host.
func TestKubeProxyServicesAcrossHosts(t *testing.T) {
	t.Parallel()
	c, ovs := newOverlayHosts(t, 2)
	var hs []*cniOverlayHost
	for _, h := range ovs {
		// A kubeadm node: forwarding on, bridged traffic through netfilter,
		// and a FORWARD chain that lets kube-proxy's DNATed flows through.
		c.Exec(h.ns, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1", "net.ipv4.ip_forward=1")
		c.Exec(h.ns, "iptables", "-P", "FORWARD", "ACCEPT")
		h.startDaemon()
		hs = append(hs, newCNIOverlayHost(t, h))
	}
	settings := map[string]any{"serviceCIDRs": []string{"10.96.0.0/12"}}
	a, ipA := hs[0].addPod(c, settings, "a", "client")
	b, ipB := hs[1].addPod(c, settings, "b", "backend")
	host1, host2 := etcdtest.HostIP(1), etcdtest.HostIP(2)
	testutil.Serve(t, a, "client", ":8080")
	testutil.Serve(t, b, "backend", ":8080")
	testutil.Serve(t, namespace(t, c.Hosts[0]), "host1", ":9000")
	// kube-proxy's rules on every node: a Service on each pod, and a
	// NodePort to b that masquerades.
	for i, h := range hs {
		for _, r := range []string{
			"-t nat -N KUBE-SERVICES",
			"-t nat -A PREROUTING -j KUBE-SERVICES",
			"-t nat -A OUTPUT -j KUBE-SERVICES",
			"-t nat -A KUBE-SERVICES -d 10.96.0.10 -p tcp --dport 80 -j DNAT --to-destination " + ipB + ":8080",
			"-t nat -A KUBE-SERVICES -d 10.96.0.10 -p udp --dport 53 -j DNAT --to-destination " + ipB + ":8080",
			"-t nat -A KUBE-SERVICES -d 10.96.0.11 -p tcp --dport 80 -j DNAT --to-destination " + ipA + ":8080",
			// The API server's Service: its endpoint is host 1's own address.
			"-t nat -A KUBE-SERVICES -d 10.96.0.1 -p tcp --dport 443 -j DNAT --to-destination " + host1 + ":9000",
			"-t nat -A KUBE-SERVICES -d " + etcdtest.HostIP(i+1) + " -p tcp --dport 30080 -j MARK --set-xmark 0x4000/0x4000",
			"-t nat -A KUBE-SERVICES -d " + etcdtest.HostIP(i+1) + " -p tcp --dport 30080 -j DNAT --to-destination " + ipB + ":8080",
			"-t nat -A POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE",
		} {
			c.Exec(h.ns, append([]string{"iptables", "-w"}, strings.Fields(r)...)...)
		}
	}

	node1, underlay := namespace(t, c.Hosts[0]), namespace(t, c.Underlay)
	for _, tc := range []struct {
		name      string
		from      netnsutil.Namespace
		network   string
		addr      string
		server    string
		sourceSet string // the source the server sees
	}{
		{"pod to a Service whose backend is on the other host", a, "tcp4", "10.96.0.10:80", "backend", ipA},
		{"the same over UDP", a, "udp4", "10.96.0.10:53", "backend", ipA},
		{"pod to a Service whose backend is on the other host, the other way", b, "tcp4", "10.96.0.11:80", "client", ipB},
		{"host to another host's pod", node1, "tcp4", ipB + ":8080", "backend", host1},
		{"host to a Service whose backend is on the other host", node1, "tcp4", "10.96.0.10:80", "backend", host1},
		{"outside to a NodePort whose backend is on the other host", underlay, "tcp4", host1 + ":30080", "backend", host1},
		{"pod to another host's address (not tunnelled: masqueraded)", b, "tcp4", host1 + ":9000", "host1", host2},
		{"pod to a Service whose endpoint is another host's address", b, "tcp4", "10.96.0.1:443", "host1", ipB},
		{"pod to a Service whose endpoint is its own host's address", a, "tcp4", "10.96.0.1:443", "host1", ipA},
	} {
		r, err := askWithin(tc.from, tc.network, tc.addr, 15*time.Second)
		if err != nil || r.Server != tc.server || r.Source != tc.sourceSet {
			t.Errorf("%s: reply from %s seeing %s (%v), want %s seeing %s", tc.name, r.Server, r.Source, err, tc.server, tc.sourceSet)
		}
	}
	// A datagram beyond the overlay's MTU, both ways (e2e's "large
	// requests: udp"): every fragment of the reply from host 2 crosses
	// host 1's netfilter, not only the first, which alone carries the
	// ports.
	if line, err := testutil.AskLarge(a, "10.96.0.10:53", 4000); err != nil || !strings.HasPrefix(line, "backend "+ipA+":") {
		t.Errorf("4000-byte datagram to a Service whose backend is on the other host: %q, %v", line, err)
	}
	if t.Failed() {
		for _, h := range hs {
			t.Logf("host %d stats:\n%s", h.i, h.must("stats"))
		}
	}
}
