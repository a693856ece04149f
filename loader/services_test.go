package loader_test

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/gopacket/layers"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

// Kubernetes Services reached from outside (bpf/from_uplink.c, serviced();
// bpf/lib/lb.h): a new flow to a NodePort on the uplink's address or to an
// external address is DNATed to a local endpoint with the client kept, or
// DNATed and SNATed to this node and routed by the FIB when its endpoint is
// elsewhere.
//
// The socket hooks (bpf/sock.c, connect4 and the others) are not tested
// here: BPF_PROG_TEST_RUN does not run cgroup sock_addr programs (on 6.18
// it answers ENOTSUPP, "kernel doesn't support running CGroupSockAddr": the
// kernel's cg_sock_addr_prog_ops has no test_run). Their rewrite of a
// ClusterIP to an endpoint, the frontend shown back, affinity and the
// refusal without endpoints are covered with real sockets by
// integration/services_test.go (TestServiceLoadBalancing).

var (
	svcExt    = netip.MustParseAddr("198.18.100.10") // a Service's external IP, routed to this node by the outside
	svcNode   = netip.MustParseAddr("198.18.9.9")    // another node's address: an endpoint reached through R
	svcRemote = netip.MustParseAddr("172.30.9.9")    // a pod on another node, behind the overlay
	svcUnder  = netip.MustParseAddr("192.0.2.2")     // this node's underlay address (overlay_self)
	svcPeer   = netip.MustParseAddr("198.18.0.20")   // the remote pod's node
	cliC2     = netip.MustParseAddr("198.18.7.8")    // a second outside client

	macVX     = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x5a} // the overlay device standing in for VXLAN
	macRemote = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x5b}
)

const svcNodePort = 30080

func syncServices(t *testing.T, e *natEnv, svcs ...maps.LBService) {
	t.Helper()
	if _, err := e.views.SyncServices(svcs, []netip.Addr{hostH}); err != nil {
		t.Fatalf("SyncServices: %v", err)
	}
}

// expectFrame compares every byte of an output frame with want's, checksums
// computed afresh: the incremental updates must give the same.
func expectFrame(t *testing.T, got []byte, want pkt) {
	t.Helper()
	if w := want.build(t); !bytes.Equal(got, w) {
		t.Errorf("frame differs:\n got %x\nwant %x", got, w)
	}
}

func (e *natEnv) totalDrops(t *testing.T) uint64 {
	t.Helper()
	d, err := e.views.Drops()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, c := range d {
		n += c.Packets
	}
	return n
}

// flowPair checks a new flow's two entries, in conntrack (or, inbound, the
// table of their class: embryonic for TCP) and nowhere else, and returns
// them.
func flowPair(t *testing.T, e *natEnv, tcp bool, fwdKey, repKey maps.Tuple, kind maps.FlowKind) (fwd, rep maps.Flow) {
	t.Helper()
	flows := e.flows(t)
	if tcp {
		if len(flows) != 0 {
			t.Fatalf("a SYN wrote conntrack: %v", flows)
		}
		flows = e.embryonic(t)
	} else if n := len(e.embryonic(t)); n != 0 {
		t.Fatalf("%d embryonic entries for a datagram flow", n)
	}
	fwd, okF := flows[fwdKey]
	rep, okR := flows[repKey]
	if len(flows) != 2 || !okF || !okR {
		t.Fatalf("entries %v; want exactly %v and %v", flows, fwdKey, repKey)
	}
	for _, f := range []maps.Flow{fwd, rep} {
		if f.Kind != kind || f.Embryonic != tcp || f.Inbound != !tcp {
			t.Errorf("entry %v: kind %v embryonic %v inbound %v; want %v, %v, %v", f.Tuple, f.Kind, f.Embryonic, f.Inbound, kind, tcp, !tcp)
		}
	}
	if fwd.Reply || !rep.Reply || fwd.Peer != repKey || rep.Peer != fwdKey {
		t.Errorf("pairing: fwd reply %v peer %v, rep reply %v peer %v", fwd.Reply, fwd.Peer, rep.Reply, rep.Peer)
	}
	return fwd, rep
}

// An outside client reaches a Service on its NodePort (the uplink's
// address) or its external IP: DNAT to the local endpoint B with the
// client's address and port kept, as a published port; B's answers leave
// with the frontend as their source.
func TestServiceToLocalEndpoint(t *testing.T) {
	for _, fe := range []struct {
		name     string
		frontend netip.AddrPort
	}{
		{"NodePort", ap(hostH, svcNodePort)},
		{"external IP", ap(svcExt, 80)},
	} {
		for _, proto := range []layers.IPProtocol{layers.IPProtocolTCP, layers.IPProtocolUDP} {
			t.Run(fe.name+"/"+proto.String(), func(t *testing.T) {
				e := newNATEnv(t, envOpts{netns: true})
				s := maps.LBService{Proto: uint8(proto), Backends: []netip.AddrPort{ap(ipB, 8080)}, LocalCount: 1}
				if fe.frontend.Addr() == hostH {
					s.NodePort = fe.frontend.Port()
				} else {
					s.Frontends = []netip.AddrPort{fe.frontend}
				}
				syncServices(t, e, s)
				tcp := proto == layers.IPProtocolTCP

				in := pkt{srcMAC: macRt, dstMAC: macUp, src: cliC, dst: fe.frontend.Addr(), proto: proto, sport: 5555,
					dport: fe.frontend.Port(), tcpFlags: "S", ttl: 60}
				ret, got := e.fromUplink(t, in.build(t))
				if ret != tcActRedirect {
					t.Fatalf("verdict %d, want TC_ACT_REDIRECT", ret)
				}
				verifyChecksums(t, got)
				decode(t, got).expect(t, macGW, macB, ap(cliC, 5555), ap(ipB, 8080), 59)
				want := in
				want.srcMAC, want.dstMAC, want.dst, want.dport, want.ttl = macGW, macB, ipB, 8080, 59
				expectFrame(t, got, want)
				if n := e.rx(t, e.ifB); n != 1 {
					t.Errorf("B received %d, want 1", n)
				}
				if n := e.verdictIn(t, loader.DirFromUplink, loader.VerdictDNAT); n != 1 {
					t.Errorf("from_uplink dnat verdicts %d, want 1", n)
				}
				fwdKey := maps.Tuple{Proto: uint8(proto), Src: ap(cliC, 5555), Dst: fe.frontend}
				repKey := maps.Tuple{Proto: uint8(proto), Src: ap(ipB, 8080), Dst: ap(cliC, 5555)}
				fwd, rep := flowPair(t, e, tcp, fwdKey, repKey, maps.FlowDNAT)
				if fwd.Ifindex != e.ifB || rep.Ifindex != 0 {
					t.Errorf("ifindexes: fwd %d rep %d; want B's %d and 0 (the FIB)", fwd.Ifindex, rep.Ifindex, e.ifB)
				}
				if fwd.Translated != (maps.Tuple{Proto: uint8(proto), Src: ap(cliC, 5555), Dst: ap(ipB, 8080)}) ||
					rep.Translated != (maps.Tuple{Proto: uint8(proto), Src: fe.frontend, Dst: ap(cliC, 5555)}) {
					t.Errorf("rewrites: fwd %v rep %v", fwd.Translated, rep.Translated)
				}

				// B answers: out through the FIB (to R) from the frontend.
				r := pkt{srcMAC: macB, dstMAC: macGW, src: ipB, dst: cliC, proto: proto, sport: 8080, dport: 5555, tcpFlags: "SA"}
				ret, got = e.fromContainer(t, e.ifB, r.build(t))
				if ret != tcActRedirect {
					t.Fatalf("reply verdict %d, want TC_ACT_REDIRECT", ret)
				}
				verifyChecksums(t, got)
				decode(t, got).expect(t, macUp, macRt, fe.frontend, ap(cliC, 5555), 63)
				wantR := r
				wantR.srcMAC, wantR.dstMAC, wantR.src, wantR.sport, wantR.ttl = macUp, macRt, fe.frontend.Addr(), fe.frontend.Port(), 63
				expectFrame(t, got, wantR)
				if !tcp {
					return
				}
				// The client's ACK completes the handshake: both entries
				// move into conntrack.
				ack := in
				ack.tcpFlags = "A"
				if ret, _ := e.fromUplink(t, ack.build(t)); ret != tcActRedirect {
					t.Fatalf("ACK verdict %d, want TC_ACT_REDIRECT", ret)
				}
				flows := e.flows(t)
				if len(flows) != 2 || flows[fwdKey].Kind != maps.FlowDNAT || flows[repKey].Translated.Src != fe.frontend {
					t.Errorf("conntrack after the ACK: %v", flows)
				}
				if n := len(e.embryonic(t)); n != 0 {
					t.Errorf("%d embryonic entries left after the promotion", n)
				}
			})
		}
	}
}

// externalTrafficPolicy Local: only this node's endpoints serve clients
// from outside; without one the packet is dropped, as kube-proxy does.
func TestServiceExternalTrafficPolicyLocal(t *testing.T) {
	t.Run("no local endpoint: dropped", func(t *testing.T) {
		e := newNATEnv(t, envOpts{})
		for _, proto := range []layers.IPProtocol{layers.IPProtocolTCP, layers.IPProtocolUDP} {
			syncServices(t, e, maps.LBService{Proto: uint8(proto), NodePort: svcNodePort,
				Backends: []netip.AddrPort{ap(svcNode, 9000)}, LocalCount: 0, ExternalLocal: true})
			before := e.drops(t, "service_no_local_endpoint")
			in := pkt{srcMAC: macRt, dstMAC: macUp, src: cliC, dst: hostH, proto: proto, sport: 5555, dport: svcNodePort, tcpFlags: "S"}
			if ret, _ := e.fromUplink(t, in.build(t)); ret != tcActShot {
				t.Fatalf("%v: verdict %d, want TC_ACT_SHOT", proto, ret)
			}
			if n := e.drops(t, "service_no_local_endpoint") - before; n != 1 {
				t.Errorf("%v: service_no_local_endpoint drops %d, want 1", proto, n)
			}
		}
		if n := e.totalDrops(t); n != 2 {
			t.Errorf("%d drops in all, want the 2 above", n)
		}
		if n := e.verdictIn(t, loader.DirFromUplink, loader.VerdictDrop); n != 2 {
			t.Errorf("from_uplink drop verdicts %d, want 2", n)
		}
		if f, emb := e.flows(t), e.embryonic(t); len(f)+len(emb) != 0 {
			t.Errorf("a dropped packet started flows: %v %v", f, emb)
		}
	})
	t.Run("local endpoints only", func(t *testing.T) {
		// B is local, svcNode is not: every flow goes to B. (Were the
		// policy ignored, about half would be routed to svcNode; without
		// the test namespace's routes, dropped.)
		e := newNATEnv(t, envOpts{})
		syncServices(t, e, maps.LBService{Proto: maps.ProtoUDP, NodePort: svcNodePort,
			Backends: []netip.AddrPort{ap(ipB, 8080), ap(svcNode, 9000)}, LocalCount: 1, ExternalLocal: true})
		for i := range uint16(32) {
			in := pkt{srcMAC: macRt, dstMAC: macUp, src: cliC, dst: hostH, proto: layers.IPProtocolUDP, sport: 6000 + i, dport: svcNodePort}
			ret, got := e.fromUplink(t, in.build(t))
			if ret != tcActRedirect {
				t.Fatalf("flow %d: verdict %d, want TC_ACT_REDIRECT", i, ret)
			}
			decode(t, got).expect(t, macGW, macB, ap(cliC, 6000+i), ap(ipB, 8080), 63)
		}
		if n := e.rx(t, e.ifB); n != 32 {
			t.Errorf("B received %d, want 32", n)
		}
	})
}

// A Service without endpoints leaves the packet to the stack, which
// answers it as for a closed port (kube-proxy's REJECT): no rewrite, no
// flow, no drop; whatever the traffic policy. What is no frontend of a
// Service is the stack's too.
func TestServiceWithoutEndpointsGoesToTheStack(t *testing.T) {
	e := newNATEnv(t, envOpts{})
	syncServices(t, e,
		maps.LBService{Proto: maps.ProtoTCP, NodePort: 30081},
		maps.LBService{Proto: maps.ProtoUDP, NodePort: 30081},
		maps.LBService{Proto: maps.ProtoTCP, NodePort: 30082, ExternalLocal: true},
		maps.LBService{Proto: maps.ProtoUDP, Frontends: []netip.AddrPort{ap(svcExt, 53)}},
		// One with an endpoint, for the frontends it does not have.
		maps.LBService{Proto: maps.ProtoTCP, NodePort: svcNodePort, Frontends: []netip.AddrPort{ap(svcExt, 80)},
			Backends: []netip.AddrPort{ap(ipB, 8080)}, LocalCount: 1},
	)
	for _, tc := range []struct {
		name  string
		proto layers.IPProtocol
		dst   netip.AddrPort
	}{
		{"NodePort without endpoints, TCP", layers.IPProtocolTCP, ap(hostH, 30081)},
		{"NodePort without endpoints, UDP", layers.IPProtocolUDP, ap(hostH, 30081)},
		{"externalTrafficPolicy Local without endpoints", layers.IPProtocolTCP, ap(hostH, 30082)},
		{"external IP without endpoints", layers.IPProtocolUDP, ap(svcExt, 53)},
		{"NodePort on another address of the host", layers.IPProtocolTCP, ap(netip.MustParseAddr("198.18.0.9"), svcNodePort)},
		{"NodePort's port on the external IP", layers.IPProtocolTCP, ap(svcExt, svcNodePort)},
		{"external IP's port on the uplink address", layers.IPProtocolTCP, ap(hostH, 80)},
		{"NodePort, another protocol", layers.IPProtocolUDP, ap(hostH, svcNodePort)},
		// Only a SYN starts a TCP flow to a Service: a segment of a flow
		// no entry knows (the host's own connections, a flow whose
		// entries are gone) is the stack's.
		{"NodePort with an endpoint, no SYN", layers.IPProtocolTCP, ap(hostH, svcNodePort)},
	} {
		flags := "S"
		if strings.HasSuffix(tc.name, "no SYN") {
			flags = "A"
		}
		in := pkt{srcMAC: macRt, dstMAC: macUp, src: cliC, dst: tc.dst.Addr(), proto: tc.proto, sport: 5555, dport: tc.dst.Port(), tcpFlags: flags}.build(t)
		ret, got := e.fromUplink(t, in)
		if ret != tcActOK {
			t.Errorf("%s: verdict %d, want TC_ACT_OK", tc.name, ret)
			continue
		}
		if !bytes.Equal(got, in) {
			t.Errorf("%s: the stack got a changed frame:\n got %x\nwant %x", tc.name, got, in)
		}
	}
	if n := e.verdictIn(t, loader.DirFromUplink, loader.VerdictPass); n != 9 {
		t.Errorf("from_uplink pass verdicts %d, want 9", n)
	}
	if n := e.totalDrops(t); n != 0 {
		t.Errorf("%d drops, want none", n)
	}
	if f, emb := e.flows(t), e.embryonic(t); len(f)+len(emb) != 0 {
		t.Errorf("flows started: %v %v", f, emb)
	}
	if n := e.rx(t, e.ifB); n != 0 {
		t.Errorf("B received %d, want 0", n)
	}
}

// Session affinity (ClientIP): a client's new flows go to the endpoint its
// first one got, even when the endpoints' order changes; without affinity
// flows spread over the endpoints.
func TestServiceSessionAffinity(t *testing.T) {
	svc := func(affinity uint32, backends ...netip.AddrPort) maps.LBService {
		return maps.LBService{Proto: maps.ProtoUDP, NodePort: svcNodePort, Backends: backends, LocalCount: len(backends), AffinitySeconds: affinity}
	}
	// endpoint sends a new flow from client:sport and says where it went.
	endpoint := func(t *testing.T, e *natEnv, client netip.Addr, sport uint16) netip.AddrPort {
		t.Helper()
		in := pkt{srcMAC: macRt, dstMAC: macUp, src: client, dst: hostH, proto: layers.IPProtocolUDP, sport: sport, dport: svcNodePort}
		ret, got := e.fromUplink(t, in.build(t))
		if ret != tcActRedirect {
			t.Fatalf("flow from %v:%d: verdict %d, want TC_ACT_REDIRECT", client, sport, ret)
		}
		verifyChecksums(t, got)
		d := decode(t, got)
		if ap(d.src, d.sport) != ap(client, sport) {
			t.Errorf("source %v:%d, want the client's %v:%d", d.src, d.sport, client, sport)
		}
		return ap(d.dst, d.dport)
	}
	epA, epB := ap(ipA, 8080), ap(ipB, 8080)

	t.Run("with affinity", func(t *testing.T) {
		e := newNATEnv(t, envOpts{})
		syncServices(t, e, svc(10800, epA, epB))
		for _, client := range []netip.Addr{cliC, cliC2} {
			first := endpoint(t, e, client, 10000)
			for i := range uint16(16) {
				if got := endpoint(t, e, client, 10001+i); got != first {
					t.Fatalf("%v's flow %d went to %v, its first to %v", client, i+1, got, first)
				}
			}
		}
		if n := len(e.flows(t)); n != 2*2*17 {
			t.Errorf("%d entries, want one pair for each of the 34 flows", n)
		}
		// The endpoints change places (another endpoint came and went): C
		// keeps its own, found in its new slot. (Picked anew instead, it
		// would be the same by chance half the time: hence the rounds.)
		first := endpoint(t, e, cliC, 10000+100)
		other := epA
		if first == epA {
			other = epB
		}
		for i := range uint16(16) {
			if i%2 == 0 {
				syncServices(t, e, svc(10800, other, first))
			} else {
				syncServices(t, e, svc(10800, first, other))
			}
			if got := endpoint(t, e, cliC, 10200+i); got != first {
				t.Fatalf("after reorder %d, the flow went to %v, want C's %v", i, got, first)
			}
		}
		// Its endpoint goes: the other one, and C keeps that.
		syncServices(t, e, svc(10800, other))
		for i := range uint16(4) {
			if got := endpoint(t, e, cliC, 10300+i); got != other {
				t.Fatalf("with its endpoint gone, flow %d went to %v, want %v", i, got, other)
			}
		}
		syncServices(t, e, svc(10800, first, other))
		if got := endpoint(t, e, cliC, 10400); got != other {
			t.Errorf("with both back, C's flow went to %v, want its new %v", got, other)
		}
	})
	t.Run("without affinity", func(t *testing.T) {
		e := newNATEnv(t, envOpts{})
		syncServices(t, e, svc(0, epA, epB))
		seen := map[netip.AddrPort]int{}
		for i := range uint16(64) {
			seen[endpoint(t, e, cliC, 10000+i)]++
		}
		// 2^-63 to fail by chance with a fair pick.
		if len(seen) != 2 || seen[epA] == 0 || seen[epB] == 0 {
			t.Errorf("64 flows from one client reached %v: want both endpoints", seen)
		}
		if n := e.rx(t, e.ifA) + e.rx(t, e.ifB); n != 64 {
			t.Errorf("A and B received %d, want 64", n)
		}
	})
}

// An endpoint not on this node (externalTrafficPolicy Cluster): DNAT and
// SNAT to this node, routed by the FIB, and the endpoint's answers
// translated back to the client. The test's namespace (newNATEnv) has
// forwarding on and routes svcNode through R, the default router.
func TestServiceToRemoteEndpoint(t *testing.T) {
	for _, proto := range []layers.IPProtocol{layers.IPProtocolTCP, layers.IPProtocolUDP} {
		t.Run("node address/"+proto.String(), func(t *testing.T) {
			e := newNATEnv(t, envOpts{netns: true})
			syncServices(t, e, maps.LBService{Proto: uint8(proto), NodePort: svcNodePort, Backends: []netip.AddrPort{ap(svcNode, 9000)}})
			tcp := proto == layers.IPProtocolTCP
			in := pkt{srcMAC: macRt, dstMAC: macUp, src: cliC, dst: hostH, proto: proto, sport: 5555, dport: svcNodePort, tcpFlags: "S", ttl: 60}
			ret, got := e.fromUplink(t, in.build(t))
			if ret != tcActRedirect {
				t.Fatalf("verdict %d, want TC_ACT_REDIRECT", ret)
			}
			verifyChecksums(t, got)
			// Out of the uplink again, to R: from H (the client's port
			// kept, free on H), to the endpoint.
			decode(t, got).expect(t, macUp, macRt, ap(hostH, 5555), ap(svcNode, 9000), 59)
			want := in
			want.srcMAC, want.dstMAC, want.src, want.dst, want.dport, want.ttl = macUp, macRt, hostH, svcNode, 9000, 59
			expectFrame(t, got, want)
			if n := e.verdictIn(t, loader.DirFromUplink, loader.VerdictSNAT); n != 1 {
				t.Errorf("from_uplink snat (FIB) verdicts %d, want 1", n)
			}
			fwdKey := maps.Tuple{Proto: uint8(proto), Src: ap(cliC, 5555), Dst: ap(hostH, svcNodePort)}
			repKey := maps.Tuple{Proto: uint8(proto), Src: ap(svcNode, 9000), Dst: ap(hostH, 5555)}
			fwd, rep := flowPair(t, e, tcp, fwdKey, repKey, maps.FlowServiceRouted)
			if fwd.Ifindex != 0 || rep.Ifindex != 0 {
				t.Errorf("ifindexes: fwd %d rep %d; want 0 (the FIB) both", fwd.Ifindex, rep.Ifindex)
			}
			if fwd.Translated != (maps.Tuple{Proto: uint8(proto), Src: ap(hostH, 5555), Dst: ap(svcNode, 9000)}) ||
				rep.Translated != (maps.Tuple{Proto: uint8(proto), Src: ap(hostH, svcNodePort), Dst: ap(cliC, 5555)}) {
				t.Errorf("rewrites: fwd %v rep %v", fwd.Translated, rep.Translated)
			}

			// The endpoint answers H, through R: back to the client from
			// the NodePort.
			r := pkt{srcMAC: macRt, dstMAC: macUp, src: svcNode, dst: hostH, proto: proto, sport: 9000, dport: 5555, tcpFlags: "SA"}
			ret, got = e.fromUplink(t, r.build(t))
			if ret != tcActRedirect {
				t.Fatalf("reply verdict %d, want TC_ACT_REDIRECT", ret)
			}
			verifyChecksums(t, got)
			decode(t, got).expect(t, macUp, macRt, ap(hostH, svcNodePort), ap(cliC, 5555), 63)
			wantR := r
			wantR.srcMAC, wantR.dstMAC, wantR.src, wantR.sport, wantR.dst, wantR.ttl = macUp, macRt, hostH, svcNodePort, cliC, 63
			expectFrame(t, got, wantR)
			if !tcp {
				if n := len(e.flows(t)); n != 2 {
					t.Errorf("%d entries after the reply, want 2", n)
				}
				return
			}
			// The client acknowledges the endpoint's SYN-ACK: promoted,
			// and on to the endpoint.
			ack := in
			ack.tcpFlags = "A"
			ret, got = e.fromUplink(t, ack.build(t))
			if ret != tcActRedirect {
				t.Fatalf("ACK verdict %d, want TC_ACT_REDIRECT", ret)
			}
			verifyChecksums(t, got)
			decode(t, got).expect(t, macUp, macRt, ap(hostH, 5555), ap(svcNode, 9000), 59)
			flows := e.flows(t)
			if len(flows) != 2 || flows[fwdKey].Kind != maps.FlowServiceRouted || flows[repKey].Kind != maps.FlowServiceRouted {
				t.Errorf("conntrack after the ACK: %v", flows)
			}
			if n := len(e.embryonic(t)); n != 0 {
				t.Errorf("%d embryonic entries left after the promotion", n)
			}
		})
	}
	// A pod behind the overlay: SNAT to this node's underlay address, out
	// of the overlay device (a veth with a route and a neighbour entry
	// standing in for VXLAN's). Its answers come back through from_overlay:
	// TestServicesAcrossHosts (integration/services_test.go) covers them.
	t.Run("pod on another node", func(t *testing.T) {
		e := newNATEnv(t, envOpts{netns: true})
		la := netlink.NewLinkAttrs()
		la.Name, la.HardwareAddr = "vx0", macVX
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "vx0-p"}); err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"vx0", "vx0-p"} {
			l, err := netlink.LinkByName(n)
			if err == nil {
				err = netlink.LinkSetUp(l)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		vx, err := netlink.LinkByName("vx0")
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.RouteAdd(&netlink.Route{LinkIndex: vx.Attrs().Index,
			Dst: &net.IPNet{IP: net.IP{172, 30, 9, 0}, Mask: net.CIDRMask(24, 32)}}); err != nil {
			t.Fatal(err)
		}
		if err := netlink.NeighAdd(&netlink.Neigh{LinkIndex: vx.Attrs().Index, Family: netlink.FAMILY_V4,
			State: netlink.NUD_PERMANENT, IP: svcRemote.AsSlice(), HardwareAddr: macRemote}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.views.SyncRemoteEndpoints([]uint32{1}, []maps.RemoteEndpoint{{IP: svcRemote, MAC: macRemote, NetID: 1, Host: svcPeer}}); err != nil {
			t.Fatal(err)
		}
		syncServices(t, e, maps.LBService{Proto: maps.ProtoUDP, NodePort: svcNodePort, Backends: []netip.AddrPort{ap(svcRemote, 8080)}})
		in := pkt{srcMAC: macRt, dstMAC: macUp, src: cliC, dst: hostH, proto: layers.IPProtocolUDP, sport: 5555, dport: svcNodePort, ttl: 60}

		// Before the node joined the overlay it has no underlay address.
		if ret, _ := e.fromUplink(t, in.build(t)); ret != tcActShot || e.drops(t, "fib_failed") != 1 {
			t.Fatalf("without an underlay address: verdict %d, fib_failed drops %d; want TC_ACT_SHOT and 1", ret, e.drops(t, "fib_failed"))
		}
		if err := e.views.SetOverlaySelf(svcUnder); err != nil {
			t.Fatal(err)
		}
		ret, got := e.fromUplink(t, in.build(t))
		if ret != tcActRedirect {
			t.Fatalf("verdict %d, want TC_ACT_REDIRECT", ret)
		}
		verifyChecksums(t, got)
		decode(t, got).expect(t, macVX, macRemote, ap(svcUnder, 5555), ap(svcRemote, 8080), 59)
		want := in
		want.srcMAC, want.dstMAC, want.src, want.dst, want.dport, want.ttl = macVX, macRemote, svcUnder, svcRemote, 8080, 59
		expectFrame(t, got, want)
		fwdKey := maps.Tuple{Proto: maps.ProtoUDP, Src: ap(cliC, 5555), Dst: ap(hostH, svcNodePort)}
		repKey := maps.Tuple{Proto: maps.ProtoUDP, Src: ap(svcRemote, 8080), Dst: ap(svcUnder, 5555)}
		fwd, rep := flowPair(t, e, false, fwdKey, repKey, maps.FlowServiceRouted)
		if fwd.Translated.Src != ap(svcUnder, 5555) || rep.Translated != (maps.Tuple{Proto: maps.ProtoUDP, Src: ap(hostH, svcNodePort), Dst: ap(cliC, 5555)}) {
			t.Errorf("rewrites: fwd %v rep %v", fwd.Translated, rep.Translated)
		}
	})
	// What cannot be forwarded is dropped before the flow's entries are
	// made: a packet at the end of its TTL, an endpoint without a route.
	for _, proto := range []layers.IPProtocol{layers.IPProtocolTCP, layers.IPProtocolUDP} {
		t.Run("refused without entries/"+proto.String(), func(t *testing.T) {
			e := newNATEnv(t, envOpts{netns: true})
			unroutable := netip.MustParseAddr("198.18.77.7")
			if err := netlink.RouteAdd(&netlink.Route{Type: unix.RTN_BLACKHOLE,
				Dst: &net.IPNet{IP: unroutable.AsSlice(), Mask: net.CIDRMask(32, 32)}}); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				name, reason string
				endpoint     netip.Addr
				ttl          uint8
			}{
				{"TTL 1", "ttl_exceeded", svcNode, 1},
				{"no route to the endpoint", "fib_failed", unroutable, 60},
			} {
				syncServices(t, e, maps.LBService{Proto: uint8(proto), NodePort: svcNodePort, Backends: []netip.AddrPort{ap(c.endpoint, 9000)}})
				before := e.drops(t, c.reason)
				in := pkt{srcMAC: macRt, dstMAC: macUp, src: cliC, dst: hostH, proto: proto, sport: 5555, dport: svcNodePort, tcpFlags: "S", ttl: c.ttl}
				if ret, _ := e.fromUplink(t, in.build(t)); ret != tcActShot || e.drops(t, c.reason)-before != 1 {
					t.Errorf("%s: verdict %d, %s drops %d; want TC_ACT_SHOT and 1", c.name, ret, c.reason, e.drops(t, c.reason)-before)
				}
				if f, emb := e.flows(t), e.embryonic(t); len(f)+len(emb) != 0 {
					t.Errorf("%s: entries left: conntrack %v, embryonic %v", c.name, f, emb)
				}
			}
		})
	}
}
