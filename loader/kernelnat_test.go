package loader_test

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

// Living beside kube-proxy (bpf/lib/kernel_nat.h): on a network with service
// prefixes, from_container hands service traffic and the replies of flows
// netfilter translated to the stack, unchanged, and forwards the rest in
// eBPF as before. The netfilter flows here are real: the test makes them by
// sending through iptables DNAT rules in its private namespace.

var (
	serviceCIDR = netip.MustParsePrefix("10.96.0.0/12")
	clusterIP   = netip.MustParseAddr("10.96.0.10")
)

func TestServiceCIDRGoesToTheKernel(t *testing.T) {
	for _, tc := range []struct {
		name     string
		services []netip.Prefix
		dst      netip.Addr
		want     uint32 // TC_ACT_OK: to the stack, unchanged; else masqueraded
	}{
		{"service address", []netip.Prefix{serviceCIDR}, clusterIP, tcActOK},
		{"service prefix's last address", []netip.Prefix{serviceCIDR}, netip.MustParseAddr("10.111.255.255"), tcActOK},
		{"outside the prefix", []netip.Prefix{serviceCIDR}, srvD, tcActRedirect},
		{"network without service prefixes", nil, clusterIP, tcActRedirect},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newNATEnv(t, envOpts{netns: true, serviceCIDRs: tc.services})
			for _, proto := range []layers.IPProtocol{layers.IPProtocolTCP, layers.IPProtocolUDP} {
				in := pkt{srcMAC: macA, dstMAC: macGW, src: ipA, dst: tc.dst, proto: proto, sport: 40000, dport: 80, tcpFlags: "S"}.build(t)
				ret, out := e.fromContainer(t, e.ifA, in)
				if ret != tc.want {
					t.Fatalf("%v: verdict %d, want %d", proto, ret, tc.want)
				}
				if ret == tcActOK && !bytes.Equal(out, in) {
					t.Errorf("%v: the stack got a changed frame:\n got %x\nwant %x", proto, out, in)
				}
			}
			handed := e.verdictIn(t, loader.DirFromContainer, loader.VerdictKernelNAT)
			tracked := len(e.flows(t))
			if tc.want == tcActOK && (handed != 2 || tracked != 0) {
				t.Errorf("kernel_nat verdicts %d, conntrack entries %d; want 2 and 0 (netfilter tracks them)", handed, tracked)
			}
			if tc.want != tcActOK && (handed != 0 || tracked != 4) {
				t.Errorf("kernel_nat verdicts %d, conntrack entries %d; want 0 and 4 (masqueraded)", handed, tracked)
			}
		})
	}
}

func TestKernelNATRepliesGoToTheKernel(t *testing.T) {
	e := newNATEnv(t, envOpts{netns: true, serviceCIDRs: []netip.Prefix{serviceCIDR}})
	nf := newNetfilter(t)
	// A pod (A) reached a Service whose backend is B: netfilter's entry is
	// A:40000 -> 10.96.0.10:80, its reply B:8080 -> A:40000.
	nf.dnatFlow(t, "udp", ap(ipA, 40000), ap(clusterIP, 80), ap(ipB, 8080))
	// An outside client reached a NodePort with externalTrafficPolicy
	// Local: DNAT to B, the client's address kept.
	nf.dnatFlow(t, "udp", ap(cliC, 5555), ap(hostH, 30080), ap(ipB, 8080))

	// No subtests: the programs must run on this goroutine's thread, the
	// one in the test's namespace.
	for _, tc := range []struct {
		name string
		p    pkt
		want uint32
	}{
		{"backend to pod", pkt{src: ipB, dst: ipA, sport: 8080, dport: 40000}, tcActOK},
		{"backend to outside client", pkt{src: ipB, dst: cliC, sport: 8080, dport: 5555}, tcActOK},
		// The same addresses, another port: no netfilter flow, eBPF's.
		{"pod to pod", pkt{src: ipB, dst: ipA, sport: 8081, dport: 40000}, tcActRedirect},
		{"to the outside", pkt{src: ipB, dst: cliC, sport: 8081, dport: 5555}, tcActRedirect},
	} {
		p := tc.p
		p.srcMAC, p.dstMAC, p.proto = macB, macA, layers.IPProtocolUDP
		if p.dst != ipA {
			p.dstMAC = macGW
		}
		before := e.verdictIn(t, loader.DirFromContainer, loader.VerdictKernelNAT)
		in := p.build(t)
		ret, out := e.fromContainer(t, e.ifB, in)
		if ret != tc.want {
			t.Errorf("%s: verdict %d, want %d", tc.name, ret, tc.want)
			continue
		}
		handed := e.verdictIn(t, loader.DirFromContainer, loader.VerdictKernelNAT) - before
		if tc.want == tcActOK {
			if !bytes.Equal(out, in) {
				t.Errorf("%s: the stack got a changed frame:\n got %x\nwant %x", tc.name, out, in)
			}
			if handed != 1 {
				t.Errorf("%s: kernel_nat verdicts %d, want 1", tc.name, handed)
			}
			continue
		}
		if handed != 0 {
			t.Errorf("%s: kernel_nat verdicts %d, want 0", tc.name, handed)
		}
		verifyChecksums(t, out)
	}

	// Without service prefixes the network does not ask netfilter: the
	// same reply is forwarded in eBPF (the behaviour before this feature).
	if err := e.views.PutNetwork(maps.Network{ID: 1, Subnet: netip.MustParsePrefix("172.30.0.0/16"), Gateway: gw1,
		GatewayMAC: macGW, BridgeIfindex: 50, ICC: true, Masquerade: true}); err != nil {
		t.Fatal(err)
	}
	in := pkt{srcMAC: macB, dstMAC: macA, src: ipB, dst: ipA, proto: layers.IPProtocolUDP, sport: 8080, dport: 40000}.build(t)
	if ret, _ := e.fromContainer(t, e.ifB, in); ret != tcActRedirect {
		t.Errorf("without service prefixes: verdict %d, want TC_ACT_REDIRECT", ret)
	}
	if got, err := e.views.ServiceCIDRs(1); err != nil || len(got) != 0 {
		t.Errorf("service prefixes left behind: %v %v", got, err)
	}
}

func TestServiceCIDRsPerNetwork(t *testing.T) {
	e := newNATEnv(t, envOpts{serviceCIDRs: []netip.Prefix{serviceCIDR, netip.MustParsePrefix("192.0.2.0/24")}})
	got, err := e.views.ServiceCIDRs(1)
	if err != nil || len(got) != 2 {
		t.Fatalf("ServiceCIDRs(1) = %v, %v; want 2", got, err)
	}
	if err := e.views.PutNetwork(maps.Network{ID: 2, Subnet: netip.MustParsePrefix("172.31.0.0/16"), Gateway: netip.MustParseAddr("172.31.0.1"),
		GatewayMAC: macGW, ServiceCIDRs: []netip.Prefix{serviceCIDR}}); err != nil {
		t.Fatal(err)
	}
	if err := e.views.DeleteNetwork(1, netip.MustParsePrefix("172.30.0.0/16")); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.views.ServiceCIDRs(1); len(got) != 0 {
		t.Errorf("network 1's prefixes outlived it: %v", got)
	}
	if got, _ := e.views.ServiceCIDRs(2); len(got) != 1 || got[0] != serviceCIDR {
		t.Errorf("network 2's prefixes = %v, want [%v]", got, serviceCIDR)
	}
}

// netfilter makes real netfilter NAT flows in the test's namespace (the
// calling goroutine's, which newNATEnv locked to its thread).
type netfilter struct{ netns string }

func newNetfilter(t *testing.T) *netfilter {
	t.Helper()
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Fatalf("iptables is needed (make deps installs it): %v", err)
	}
	// Named by path, so nothing reaches the machine's own namespace even
	// if the child ran on another thread.
	return &netfilter{netns: fmt.Sprintf("/proc/%d/task/%d/ns/net", unix.Getpid(), unix.Gettid())}
}

func (n *netfilter) run(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("nsenter", append([]string{"--net=" + n.netns}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// dnatFlow makes netfilter hold a confirmed flow client -> service DNATed to
// backend: an OUTPUT DNAT rule, and one datagram sent from client (an
// address lent to lo for the send).
func (n *netfilter) dnatFlow(t *testing.T, proto string, client, service, backend netip.AddrPort) {
	t.Helper()
	rule := []string{"-p", proto, "-s", client.Addr().String(), "-d", service.Addr().String(), "--dport", fmt.Sprint(service.Port()),
		"-j", "DNAT", "--to-destination", backend.String()}
	n.run(t, append([]string{"iptables", "-w", "-t", "nat", "-A", "OUTPUT"}, rule...)...)
	n.run(t, "ip", "addr", "add", client.Addr().String()+"/32", "dev", "lo")
	// The backend is routed out of a veth whose other end is in this
	// namespace too: the datagram goes nowhere.
	n.run(t, "ip", "route", "replace", backend.Addr().String()+"/32", "dev", "epb")
	conn, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(client), net.UDPAddrFromAddrPort(service))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	n.run(t, "ip", "addr", "del", client.Addr().String()+"/32", "dev", "lo")
	n.run(t, "ip", "route", "del", backend.Addr().String()+"/32", "dev", "epb")
}

// BenchmarkPodToPod is what asking netfilter costs on the fast path: one
// container-to-container UDP datagram through from_container on a network
// without and with service prefixes (go test -run '^$' -bench PodToPod
// ./loader; the kernel runs the program b.N times in one
// BPF_PROG_TEST_RUN).
func BenchmarkPodToPod(b *testing.B) {
	for _, bc := range []struct {
		name     string
		services []netip.Prefix
	}{{"plain", nil}, {"service-cidrs", []netip.Prefix{serviceCIDR}}} {
		b.Run(bc.name, func(b *testing.B) {
			e := newNATEnv(b, envOpts{netns: true, serviceCIDRs: bc.services})
			in := pkt{srcMAC: macA, dstMAC: macB, src: ipA, dst: ipB, proto: layers.IPProtocolUDP, sport: 40000, dport: 8080}.build(b)
			opts := ebpf.RunOptions{Data: in, DataOut: make([]byte, len(in)+256), Context: loader.SkBuff{IngressIfindex: uint32(e.ifA)}, Repeat: uint32(b.N)}
			b.ResetTimer()
			ret, err := e.prog.Run(&opts)
			if err != nil || ret != tcActRedirect {
				b.Fatalf("verdict %d, %v", ret, err)
			}
		})
	}
}

// Fragments between two pods of a network beside kube-proxy go to the
// stack, first and later ones alike: only the first carries the ports that
// would tell a reply netfilter must un-NAT (a backend's large UDP answer
// through a Service), so the stack reassembles and decides. Without
// service prefixes they are forwarded in eBPF.
func TestKernelNATFragmentsGoToTheKernel(t *testing.T) {
	for _, tc := range []struct {
		name     string
		services []netip.Prefix
		want     uint32
	}{
		{"network beside kube-proxy", []netip.Prefix{serviceCIDR}, tcActOK},
		{"network without service prefixes", nil, tcActRedirect},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newNATEnv(t, envOpts{netns: true, serviceCIDRs: tc.services})
			for _, f := range []struct {
				name   string
				flags  layers.IPv4Flag
				offset uint16
			}{
				{"first fragment", layers.IPv4MoreFragments, 0},
				{"middle fragment", layers.IPv4MoreFragments, 185},
				{"last fragment", 0, 370},
			} {
				in := pkt{srcMAC: macB, dstMAC: macA, src: ipB, dst: ipA, proto: layers.IPProtocolUDP, sport: 8080, dport: 40000,
					flags: f.flags, fragOffset: f.offset, payload: bytes.Repeat([]byte{'x'}, 1472)}.build(t)
				ret, out := e.fromContainer(t, e.ifB, in)
				if ret != tc.want {
					t.Fatalf("%s: verdict %d, want %d", f.name, ret, tc.want)
				}
				if ret == tcActOK && !bytes.Equal(out, in) {
					t.Errorf("%s: the stack got a changed frame", f.name)
				}
			}
			handed := e.verdictIn(t, loader.DirFromContainer, loader.VerdictKernelNAT)
			if want := map[uint32]uint64{tcActOK: 3, tcActRedirect: 0}[tc.want]; handed != want {
				t.Errorf("kernel_nat verdicts %d, want %d", handed, want)
			}
		})
	}
}
