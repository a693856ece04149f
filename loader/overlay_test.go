package loader_test

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket/layers"

	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

// The overlay fixture adds to newFixture's networks two overlay networks:
// 3 (VNI 4096) with local endpoint D and remote endpoint R on peer host
// 198.18.0.12, and 4 (VNI 4097) with remote endpoint S.
var (
	macD = net.HardwareAddr{0x02, 0x42, 10, 210, 0, 2}
	macR = net.HardwareAddr{0x02, 0x42, 10, 210, 0, 64}
	macS = net.HardwareAddr{0x02, 0x42, 10, 211, 0, 5}

	ipD     = netip.MustParseAddr("10.210.0.2")
	ipR     = netip.MustParseAddr("10.210.0.64")
	ipS     = netip.MustParseAddr("10.211.0.5")
	hostR   = netip.MustParseAddr("198.18.0.12")
	hostS   = netip.MustParseAddr("198.18.0.13")
	ifD     = 104
	ifVXLAN = 77
)

func newOverlayFixture(t testing.TB, icc bool) *fixture {
	t.Helper()
	f := newFixture(t, true)
	for _, n := range []maps.Network{
		{ID: 3, Subnet: netip.MustParsePrefix("10.210.0.0/24"), Gateway: netip.MustParseAddr("10.210.0.1"), GatewayMAC: macGW, BridgeIfindex: 52, ICC: icc, VNI: 4096, OverlayIfindex: ifVXLAN},
		{ID: 4, Subnet: netip.MustParsePrefix("10.211.0.0/24"), Gateway: netip.MustParseAddr("10.211.0.1"), GatewayMAC: macGW, BridgeIfindex: 53, ICC: true, VNI: 4097, OverlayIfindex: ifVXLAN},
	} {
		if err := f.views.PutNetwork(n); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.views.PutEndpoint(maps.Endpoint{IP: ipD, MAC: macD, NetID: 3, Ifindex: ifD, Overlay: true}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.views.SyncRemoteEndpoints([]uint32{3, 4}, []maps.RemoteEndpoint{
		{IP: ipR, MAC: macR, NetID: 3, Host: hostR},
		{IP: ipS, MAC: macS, NetID: 4, Host: hostS},
	}); err != nil {
		t.Fatal(err)
	}
	if err := f.views.SyncOverlayHosts([]netip.Addr{hostR, hostS}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) peer(t *testing.T, host netip.Addr) maps.OverlayHostStats {
	t.Helper()
	all, err := f.views.OverlayHosts()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range all {
		if p.Host == host {
			return p
		}
	}
	t.Fatalf("no peer host %v in %+v", host, all)
	return maps.OverlayHostStats{}
}

// To a remote endpoint: redirected (to the VXLAN device) with the inner
// frame addressed to the endpoint's MAC and nothing else changed, counted
// against its host.
func TestOverlayEncapsulatesToRemoteEndpoint(t *testing.T) {
	f := newOverlayFixture(t, true)
	for _, dstMAC := range []net.HardwareAddr{macR, macGW} {
		in := udpFrame(t, macD, dstMAC, ipD, ipR)
		ret, out := f.run(t, ifD, in)
		if ret != tcActRedirect {
			t.Fatalf("to %v: verdict = %d, want TC_ACT_REDIRECT", dstMAC, ret)
		}
		if want := udpFrame(t, macD, macR, ipD, ipR); !bytes.Equal(out, want) {
			t.Fatalf("to %v: frame:\n got %x\nwant %x", dstMAC, out, want)
		}
		verifyChecksums(t, out)
	}
	n := uint64(len(udpFrame(t, macD, macR, ipD, ipR)))
	if p := f.peer(t, hostR); p.TxPackets != 2 || p.TxBytes != 2*n || p.RxPackets != 0 {
		t.Errorf("peer %v counters %+v, want 2 packets (%d bytes) sent", hostR, p, 2*n)
	}
	if p := f.peer(t, hostS); p.TxPackets != 0 {
		t.Errorf("peer %v counted %+v, want nothing", hostS, p)
	}
	if got := f.verdict(t, loader.VerdictForward); got != 2 {
		t.Errorf("forward verdicts = %d, want 2", got)
	}
}

func TestOverlayDrops(t *testing.T) {
	for _, tc := range []struct {
		name    string
		icc     bool
		ifindex int
		frame   func(t *testing.T) []byte
		reason  string
	}{
		{"remote endpoint of another overlay network", true, ifD, func(t *testing.T) []byte { return udpFrame(t, macD, macGW, ipD, ipS) }, "network_isolation"},
		{"remote endpoint from a bridge network", true, ifA, func(t *testing.T) []byte { return udpFrame(t, macA, macGW, ipA, ipR) }, "network_isolation"},
		{"icc disabled across hosts", false, ifD, func(t *testing.T) []byte { return udpFrame(t, macD, macR, ipD, ipR) }, "icc_disabled"},
		{"spoofed source to a remote endpoint", true, ifD, func(t *testing.T) []byte {
			return udpFrame(t, macD, macR, netip.MustParseAddr("10.210.0.9"), ipR)
		}, "spoofed_ip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newOverlayFixture(t, tc.icc)
			if ret, _ := f.run(t, tc.ifindex, tc.frame(t)); ret != tcActShot {
				t.Fatalf("verdict = %d, want TC_ACT_SHOT", ret)
			}
			if got := f.drops(t, tc.reason); got != 1 {
				t.Fatalf("drops[%s] = %d, want 1", tc.reason, got)
			}
			if p := f.peer(t, hostR); p.TxPackets != 0 {
				t.Fatalf("dropped packet counted to peer: %+v", p)
			}
		})
	}
}

// arpReplyFrame is the reply an ARP responder with mac and ip sends to
// the requester (toMAC, toIP).
func arpReplyFrame(t *testing.T, mac net.HardwareAddr, ip netip.Addr, toMAC net.HardwareAddr, toIP netip.Addr) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: mac, DstMAC: toMAC, EthernetType: layers.EthernetTypeARP}
	arp := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: layers.ARPReply, SourceHwAddress: mac, SourceProtAddress: ip.AsSlice(), DstHwAddress: toMAC, DstProtAddress: toIP.AsSlice()}
	return serialize(t, eth, arp)
}

// ARP for a remote endpoint is answered on the spot, back into the
// container; ARP for anything else goes to the bridge as before.
func TestOverlayAnswersARP(t *testing.T) {
	f := newOverlayFixture(t, true)
	req := arpFrame(t, macD, layers.ARPRequest, macD, ipD, ipR)
	ret, out := f.run(t, ifD, req)
	if ret != tcActRedirect {
		t.Fatalf("ARP for a remote endpoint: verdict = %d, want TC_ACT_REDIRECT (back to the container)", ret)
	}
	want := arpReplyFrame(t, macR, ipR, macD, ipD)
	if !bytes.Equal(out, want) {
		t.Fatalf("ARP reply:\n got %x\nwant %x", out, want)
	}
	for _, tpa := range []netip.Addr{netip.MustParseAddr("10.210.0.1"), ipS, netip.MustParseAddr("10.210.0.77")} {
		req := arpFrame(t, macD, layers.ARPRequest, macD, ipD, tpa)
		ret, out := f.run(t, ifD, req)
		if ret != tcActOK || !bytes.Equal(out, req) {
			t.Errorf("ARP for %v: verdict %d, frame changed %v; want it passed unchanged", tpa, ret, !bytes.Equal(out, req))
		}
	}
	// A bridge network's container gets no answers for remote endpoints.
	req = arpFrame(t, macA, layers.ARPRequest, macA, ipA, ipR)
	if ret, _ := f.run(t, ifA, req); ret != tcActOK {
		t.Errorf("ARP from a bridge network for a remote endpoint: verdict %d, want TC_ACT_OK", ret)
	}
}

// from_overlay trusts only tunnel metadata: a frame without any (which
// BPF_PROG_TEST_RUN cannot attach; integration/overlay_test.go sends real
// VXLAN, fromoverlay_test.go runs the program's test build) is dropped.
func TestFromOverlayNeedsTunnelMetadata(t *testing.T) {
	f := newOverlayFixture(t, true)
	prog := f.dp.Program(loader.ProgFromOverlay)
	in := udpFrame(t, macR, macD, ipR, ipD)
	opts := ebpf.RunOptions{Data: in, DataOut: make([]byte, len(in)+256), Context: loader.SkBuff{IngressIfindex: uint32(ifVXLAN)}, Repeat: 1}
	ret, err := prog.Run(&opts)
	if err != nil {
		t.Fatal(err)
	}
	if ret != tcActShot || f.drops(t, "malformed") != 1 {
		t.Fatalf("verdict %d, malformed drops %d: want TC_ACT_SHOT and 1", ret, f.drops(t, "malformed"))
	}
}

// Overlay networks added a map rather than fields: the layouts of maps
// that pinned datapaths of older builds hold did not change, so an upgrade
// reuses them (a changed size would be ErrMapIncompatible).
func TestOverlayKeptPinnedLayouts(t *testing.T) {
	for name, got := range map[string]int{
		"network_info":  binary.Size(loader.NetworkInfo{}),
		"endpoint_info": binary.Size(loader.EndpointInfo{}),
	} {
		want := map[string]int{"network_info": 28, "endpoint_info": 20}[name]
		if got != want {
			t.Errorf("struct %s is %d bytes, was %d: pinned maps of older builds no longer fit", name, got, want)
		}
	}
}

// from_uplink hands VXLAN from a peer host to the stack (the VXLAN device)
// before conntrack and the published ports: even a published 4789/udp does
// not take it. From anyone else, the same packet is what it always was.
func TestFromUplinkPassesVXLANFromPeers(t *testing.T) {
	e := newNATEnv(t, envOpts{})
	peer := netip.MustParseAddr("198.18.0.12")
	if err := e.views.SyncOverlayHosts([]netip.Addr{peer}); err != nil {
		t.Fatal(err)
	}
	publish(t, e, maps.PortEntry{Proto: maps.ProtoUDP, HostPort: uint16(loader.VXLANPort), ContainerIP: ipA, ContainerPort: 4789, Ifindex: e.ifA})
	in := pkt{srcMAC: macRt, dstMAC: macUp, src: peer, dst: hostH, proto: layers.IPProtocolUDP, sport: 40000, dport: uint16(loader.VXLANPort)}.build(t)
	ret, out := e.fromUplink(t, in)
	if ret != tcActOK || !bytes.Equal(out, in) {
		t.Fatalf("VXLAN from a peer: verdict %d, changed %v; want TC_ACT_OK unchanged", ret, !bytes.Equal(out, in))
	}
	if n := len(e.flows(t)); n != 0 {
		t.Fatalf("VXLAN from a peer left %d conntrack entries", n)
	}
	other := pkt{srcMAC: macRt, dstMAC: macUp, src: cliC, dst: hostH, proto: layers.IPProtocolUDP, sport: 40000, dport: uint16(loader.VXLANPort)}.build(t)
	if ret, _ := e.fromUplink(t, other); ret != tcActRedirect {
		t.Fatalf("UDP 4789 from a non-peer: verdict %d, want the published port's DNAT (TC_ACT_REDIRECT)", ret)
	}
}
