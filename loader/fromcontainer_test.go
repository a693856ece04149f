package loader_test

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

const (
	tcActOK       = 0
	tcActShot     = 2
	tcActRedirect = 7
)

var (
	macA  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xa}
	macB  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xb}
	macC  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xc}
	macGW = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x1}

	ipA = netip.MustParseAddr("172.30.0.2")
	ipB = netip.MustParseAddr("172.30.0.3")
	ipC = netip.MustParseAddr("172.31.0.2")
)

const (
	ifA = 101
	ifB = 102
	ifC = 103
)

type fixture struct {
	dp    *loader.Datapath
	views *maps.Views
	prog  *ebpf.Program
}

// newFixture loads an unpinned datapath with network 1 (A, B) and network 2 (C).
func newFixture(t testing.TB, icc bool) *fixture {
	t.Helper()
	dp, err := loader.Load(loader.Options{})
	if err != nil {
		t.Fatalf("load datapath: %v", err)
	}
	t.Cleanup(dp.Close)
	v := maps.New(&dp.Maps)
	nets := []maps.Network{
		{ID: 1, Subnet: netip.MustParsePrefix("172.30.0.0/16"), Gateway: netip.MustParseAddr("172.30.0.1"), GatewayMAC: macGW, BridgeIfindex: 50, ICC: icc},
		{ID: 2, Subnet: netip.MustParsePrefix("172.31.0.0/16"), Gateway: netip.MustParseAddr("172.31.0.1"), GatewayMAC: macGW, BridgeIfindex: 51, ICC: true},
	}
	for _, n := range nets {
		if err := v.PutNetwork(n); err != nil {
			t.Fatal(err)
		}
	}
	eps := []maps.Endpoint{
		{IP: ipA, MAC: macA, NetID: 1, Ifindex: ifA},
		{IP: ipB, MAC: macB, NetID: 1, Ifindex: ifB},
		{IP: ipC, MAC: macC, NetID: 2, Ifindex: ifC},
	}
	for _, ep := range eps {
		if err := v.PutEndpoint(ep); err != nil {
			t.Fatal(err)
		}
	}
	return &fixture{dp: dp, views: v, prog: dp.Program(loader.ProgFromContainer)}
}

func (f *fixture) run(t *testing.T, ifindex int, frame []byte) (uint32, []byte) {
	t.Helper()
	out := make([]byte, len(frame)+256)
	opts := ebpf.RunOptions{
		Data:    frame,
		DataOut: out,
		Context: loader.SkBuff{IngressIfindex: uint32(ifindex)},
		Repeat:  1,
	}
	ret, err := f.prog.Run(&opts)
	if err != nil {
		t.Fatalf("BPF_PROG_TEST_RUN: %v", err)
	}
	return ret, out[:len(opts.DataOut)]
}

func udpFrame(t testing.TB, srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Id: 7, Protocol: layers.IPProtocolUDP, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	udp := &layers.UDP{SrcPort: 40000, DstPort: 53}
	udp.SetNetworkLayerForChecksum(ip)
	return serialize(t, eth, ip, udp, gopacket.Payload("hello"))
}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func (f *fixture) drops(t *testing.T, reason string) uint64 {
	t.Helper()
	d, err := f.views.Drops()
	if err != nil {
		t.Fatal(err)
	}
	return d[reason].Packets
}

func (f *fixture) verdict(t *testing.T, v loader.Verdict) uint64 {
	t.Helper()
	all, err := f.views.Verdicts()
	if err != nil {
		t.Fatal(err)
	}
	return all[maps.VerdictKey{Direction: loader.DirFromContainer, Verdict: v}].Packets
}

func TestFromContainerForwardsToPeer(t *testing.T) {
	f := newFixture(t, true)
	in := udpFrame(t, macA, macB, ipA, ipB)
	ret, out := f.run(t, ifA, in)
	if ret != tcActRedirect {
		t.Fatalf("verdict = %d, want TC_ACT_REDIRECT", ret)
	}
	if !bytes.Equal(out, in) {
		t.Fatalf("forwarded frame changed:\n got %x\nwant %x", out, in)
	}
	if got := f.verdict(t, loader.VerdictForward); got != 1 {
		t.Fatalf("forward counter = %d, want 1", got)
	}
	tx, _, err := f.views.EndpointCounters(ifA)
	if err != nil || tx.Packets != 1 || tx.Bytes != uint64(len(in)) {
		t.Fatalf("A tx = %+v (%v), want 1 packet of %d bytes", tx, err, len(in))
	}
	_, rx, err := f.views.EndpointCounters(ifB)
	if err != nil || rx.Packets != 1 {
		t.Fatalf("B rx = %+v (%v), want 1 packet", rx, err)
	}
}

func TestFromContainerFixesGatewayMAC(t *testing.T) {
	f := newFixture(t, true)
	in := udpFrame(t, macA, macGW, ipA, ipB)
	ret, out := f.run(t, ifA, in)
	if ret != tcActRedirect {
		t.Fatalf("verdict = %d, want TC_ACT_REDIRECT", ret)
	}
	want := udpFrame(t, macA, macB, ipA, ipB)
	if !bytes.Equal(out, want) {
		t.Fatalf("frame:\n got %x\nwant %x", out, want)
	}
}

func TestFromContainerDrops(t *testing.T) {
	for _, tc := range []struct {
		name    string
		icc     bool
		ifindex int
		frame   func(t *testing.T) []byte
		reason  string
	}{
		{"spoofed source IP", true, ifA, func(t *testing.T) []byte { return udpFrame(t, macA, macB, netip.MustParseAddr("172.30.0.99"), ipB) }, "spoofed_ip"},
		{"spoofed source MAC", true, ifA, func(t *testing.T) []byte { return udpFrame(t, macC, macB, ipA, ipB) }, "spoofed_mac"},
		{"endpoint on another network", true, ifA, func(t *testing.T) []byte { return udpFrame(t, macA, macC, ipA, ipC) }, "network_isolation"},
		{"unassigned address on another network", true, ifA, func(t *testing.T) []byte {
			return udpFrame(t, macA, macGW, ipA, netip.MustParseAddr("172.31.9.9"))
		}, "network_isolation"},
		{"icc disabled", false, ifA, func(t *testing.T) []byte { return udpFrame(t, macA, macB, ipA, ipB) }, "icc_disabled"},
		{"unknown interface", true, 999, func(t *testing.T) []byte { return udpFrame(t, macA, macB, ipA, ipB) }, "unknown_endpoint"},
		{"IPv4 header longer than the frame", true, ifA, func(t *testing.T) []byte {
			f := udpFrame(t, macA, macB, ipA, ipB)[:34]
			f[14] = 0x4f // IHL 15: 60 bytes of header in a 20-byte packet
			return f
		}, "malformed"},
		{"IPv4 header length below 20", true, ifA, func(t *testing.T) []byte {
			f := udpFrame(t, macA, macB, ipA, ipB)
			f[14] = 0x44
			return f
		}, "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.icc)
			ret, _ := f.run(t, tc.ifindex, tc.frame(t))
			if ret != tcActShot {
				t.Fatalf("verdict = %d, want TC_ACT_SHOT", ret)
			}
			if got := f.drops(t, tc.reason); got != 1 {
				t.Fatalf("drops[%s] = %d, want 1", tc.reason, got)
			}
			if got := f.verdict(t, loader.VerdictDrop); got != 1 {
				t.Fatalf("drop verdicts = %d, want 1", got)
			}
		})
	}
}

func TestFromContainerPassesToStack(t *testing.T) {
	arp := func(t *testing.T) []byte {
		eth := &layers.Ethernet{SrcMAC: macA, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP}
		a := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: macA, SourceProtAddress: ipA.AsSlice(),
			DstHwAddress: make([]byte, 6), DstProtAddress: ipB.AsSlice()}
		return serialize(t, eth, a)
	}
	for _, tc := range []struct {
		name  string
		frame func(t *testing.T) []byte
	}{
		{"ARP", arp},
		{"own gateway (host-bound)", func(t *testing.T) []byte { return udpFrame(t, macA, macGW, ipA, netip.MustParseAddr("172.30.0.1")) }},
		{"other network's gateway (host-bound)", func(t *testing.T) []byte { return udpFrame(t, macA, macGW, ipA, netip.MustParseAddr("172.31.0.1")) }},
		{"outside address", func(t *testing.T) []byte { return udpFrame(t, macA, macGW, ipA, netip.MustParseAddr("198.18.0.1")) }},
		{"broadcast", func(t *testing.T) []byte {
			return udpFrame(t, macA, layers.EthernetBroadcast, ipA, netip.MustParseAddr("255.255.255.255"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, true)
			in := tc.frame(t)
			ret, out := f.run(t, ifA, in)
			if ret != tcActOK {
				t.Fatalf("verdict = %d, want TC_ACT_OK", ret)
			}
			if !bytes.Equal(out, in) {
				t.Fatalf("passed frame changed:\n got %x\nwant %x", out, in)
			}
			if got := f.verdict(t, loader.VerdictPass); got != 1 {
				t.Fatalf("pass counter = %d, want 1", got)
			}
		})
	}
}

func TestDropReasonNamesCoverEnum(t *testing.T) {
	names, err := maps.DropReasonNames()
	if err != nil {
		t.Fatal(err)
	}
	for r := loader.DropReason(0); r < loader.NumDropReasons; r++ {
		if names[r] == "" {
			t.Errorf("drop reason %d has no name", r)
		}
	}
	if names[4] != "spoofed_ip" {
		t.Errorf("reason 4 = %q, want spoofed_ip", names[4])
	}
}
