package loader_test

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"runtime"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket/layers"

	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

// The decapsulation world: newEncapWorld's (endpoint D of overlay network 3,
// VNI 4096, remote endpoint R on host R) with up0 as this host's uplink
// (hostH) and host S a peer too. The test runs name up0 as the skb's device,
// so a frame to its MAC arrives as PACKET_HOST, as on the wire.
type decapWorld struct {
	*fixture
	up   *ebpf.Program
	ifEp int
	ifUp int
}

func newDecapWorld(t testing.TB) *decapWorld {
	t.Helper()
	f, ifEp, ifUp := newEncapWorld(t, true)
	if err := f.views.PutUplink(maps.Uplink{Ifindex: ifUp, IP: hostH, MAC: macUp}); err != nil {
		t.Fatal(err)
	}
	if err := f.views.SyncOverlayHosts([]netip.Addr{hostR, hostS}); err != nil {
		t.Fatal(err)
	}
	return &decapWorld{fixture: f, up: f.dp.Program(loader.ProgFromUplink), ifEp: ifEp, ifUp: ifUp}
}

func (w *decapWorld) fromUplink(t *testing.T, frame []byte) (uint32, []byte) {
	t.Helper()
	out := make([]byte, len(frame)+256)
	opts := ebpf.RunOptions{Data: frame, DataOut: out, Repeat: 1,
		Context: loader.SkBuff{IngressIfindex: uint32(w.ifUp), Ifindex: uint32(w.ifUp)}}
	ret, err := w.up.Run(&opts)
	if err != nil {
		t.Fatalf("BPF_PROG_TEST_RUN: %v", err)
	}
	return ret, out[:len(opts.DataOut)]
}

// outerVXLAN is what a peer sends for inner: VXLAN over IPv4 from src to
// hostH (up0's MAC), UDP 4789 without a checksum, flag I and vni, the IPv4
// header checksum right.
type outerVXLAN struct {
	src     netip.Addr
	vni     uint32
	tos     byte
	fragOff uint16
	udpSum  uint16
	vxFlags uint32
	options bool // one 4-byte option of NOPs
}

func (o outerVXLAN) frame(inner []byte) []byte {
	if o.src == (netip.Addr{}) {
		o.src = hostR
	}
	if o.vxFlags == 0 {
		o.vxFlags = 0x08000000
	}
	b := append(append(bytes.Clone(macUp), macHostR...), 0x08, 0x00)
	ihl := 20
	if o.options {
		ihl = 24
	}
	ip := []byte{0x40 | byte(ihl/4), o.tos}
	ip = binary.BigEndian.AppendUint16(ip, uint16(ihl+8+8+len(inner)))
	ip = append(ip, 0x12, 0x34)
	ip = binary.BigEndian.AppendUint16(ip, o.fragOff)
	ip = append(ip, 64, 17, 0, 0)
	ip = append(append(ip, o.src.AsSlice()...), hostH.AsSlice()...)
	if o.options {
		ip = append(ip, 1, 1, 1, 1)
	}
	binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip))
	b = append(b, ip...)
	b = binary.BigEndian.AppendUint16(b, 45000)
	b = binary.BigEndian.AppendUint16(b, uint16(loader.VXLANPort))
	b = binary.BigEndian.AppendUint16(b, uint16(8+8+len(inner)))
	b = binary.BigEndian.AppendUint16(b, o.udpSum)
	b = binary.BigEndian.AppendUint32(b, o.vxFlags)
	b = binary.BigEndian.AppendUint32(b, o.vni<<8)
	return append(b, inner...)
}

func (w *decapWorld) counts(t *testing.T) (overlayFwd, uplinkPass, peerRx, epRx uint64) {
	t.Helper()
	all, err := w.views.Verdicts()
	if err != nil {
		t.Fatal(err)
	}
	_, rx, err := w.views.EndpointCounters(w.ifEp)
	if err != nil {
		t.Fatal(err)
	}
	return all[maps.VerdictKey{Direction: loader.DirFromOverlay, Verdict: loader.VerdictForward}].Packets,
		all[maps.VerdictKey{Direction: loader.DirFromUplink, Verdict: loader.VerdictPass}].Packets,
		w.peer(t, hostR).RxPackets, rx.Packets
}

// VXLAN from host R for D: the outer headers stripped, the inner frame
// delivered into D's container exactly as sent but for its destination MAC
// (D's, whatever the sender put there), every checksum intact, counted as
// from_overlay's delivery, not as a pass on the uplink.
func TestFromUplinkDecapsulatesForLocalEndpoints(t *testing.T) {
	w := newDecapWorld(t)
	tcp := pkt{srcMAC: macR, dstMAC: macD, src: ipR, dst: ipD, proto: layers.IPProtocolTCP, sport: 41000, dport: 80,
		tcpFlags: "S", payload: []byte("GET / HTTP/1.0\r\n")}.build(t)
	icmp := pkt{srcMAC: macR, dstMAC: macGW, src: ipR, dst: ipD, proto: layers.IPProtocolICMPv4, sport: 9}.build(t)
	udp6 := frame6(macR, macD, ip6R, ip6D, 64, nil, 17, []byte{0x9c, 0x40, 0, 53, 0, 13, 0, 0, 'h', 'e', 'l', 'l', 'o'})
	for _, c := range []struct {
		name  string
		inner []byte
		tos   byte
	}{
		{"udp", udpFrame(t, macR, macD, ipR, ipD), 0},
		{"tcp ECT(0) outside", tcp, 0x02},
		{"icmp to the gateway MAC", icmp, 0},
		{"udp6", udp6, 0x01},
	} {
		fwd, pass, peerRx, epRx := w.counts(t)
		want := bytes.Clone(c.inner)
		copy(want[0:6], macD)
		ret, out := w.fromUplink(t, outerVXLAN{vni: 4096, tos: c.tos}.frame(c.inner))
		if ret != tcActRedirect {
			t.Errorf("%s: verdict %d, want TC_ACT_REDIRECT", c.name, ret)
			continue
		}
		if !bytes.Equal(out, want) {
			t.Errorf("%s: delivered\n got %x\nwant %x", c.name, out, want)
		}
		if binary.BigEndian.Uint16(want[12:]) == 0x0800 {
			verifyChecksums(t, out)
		} else if s := udp6Sum(out); s != 0xffff {
			t.Errorf("%s: UDP checksum over IPv6 sums to %#x", c.name, s)
		}
		fwd2, pass2, peerRx2, epRx2 := w.counts(t)
		if fwd2 != fwd+1 || pass2 != pass || peerRx2 != peerRx+1 || epRx2 != epRx+1 {
			t.Errorf("%s: overlay forward %d->%d, uplink pass %d->%d, peer rx %d->%d, endpoint rx %d->%d; want +1, +0, +1, +1",
				c.name, fwd, fwd2, pass, pass2, peerRx, peerRx2, epRx, epRx2)
		}
	}
}

// udp6Sum is the ones' complement sum over an IPv6 frame's UDP datagram and
// its pseudo header: 0xffff when the checksum is right.
func udp6Sum(frame []byte) uint32 {
	ip := frame[14:]
	l4 := ip[40 : 40+int(binary.BigEndian.Uint16(ip[4:]))]
	pseudo := append(bytes.Clone(ip[8:40]), 0, 0, 0, 0, 0, 0, 0, 17)
	binary.BigEndian.PutUint16(pseudo[34:], uint16(len(l4)))
	return onesSum(onesSum(0, pseudo), l4)
}

// What from_overlay would refuse or hand to the stack, and what the stack
// would not take from the wire as it is, goes to the stack (the VXLAN
// device) unchanged and is neither dropped nor counted here but as the
// uplink's pass: from_overlay judges it as before.
func TestFromUplinkLeavesTheRestToTheVXLANDevice(t *testing.T) {
	w := newDecapWorld(t)
	good := udpFrame(t, macR, macD, ipR, ipD)
	ipNowhere := netip.MustParseAddr("10.210.0.99")
	badSum := outerVXLAN{vni: 4096}.frame(good)
	badSum[24] ^= 0xff
	// A first fragment's payload (UDP, VXLAN, the frame) is a multiple of 8 bytes.
	padded := append(bytes.Clone(good), make([]byte, (8-(16+len(good))%8)%8)...)
	for _, c := range []struct {
		name string
		in   []byte
	}{
		{"wrong VNI", outerVXLAN{vni: 4097}.frame(good)},
		{"unknown inner destination", outerVXLAN{vni: 4096}.frame(udpFrame(t, macR, macD, ipR, ipNowhere))},
		{"inner source on another host", outerVXLAN{src: hostS, vni: 4096}.frame(good)},
		{"inner source with another MAC", outerVXLAN{vni: 4096}.frame(udpFrame(t, macS, macD, ipR, ipD))},
		{"inner to this host's underlay address", outerVXLAN{vni: 4096}.frame(udpFrame(t, macR, macD, ipR, hostSelf))},
		{"inner ARP", outerVXLAN{vni: 4096}.frame(arpFrame(t, macR, layers.ARPRequest, macR, ipR, ipD))},
		{"outer UDP checksum", outerVXLAN{vni: 4096, udpSum: 0x1234}.frame(good)},
		{"outer CE", outerVXLAN{vni: 4096, tos: 0x03}.frame(good)},
		{"outer first fragment", outerVXLAN{vni: 4096, fragOff: 0x2000}.frame(padded)},
		{"outer header checksum", badSum},
		{"outer options", outerVXLAN{vni: 4096, options: true}.frame(good)},
		{"VXLAN flags", outerVXLAN{vni: 4096, vxFlags: 0x0c000000}.frame(good)},
		{"truncated VXLAN", outerVXLAN{vni: 4096}.frame(nil)},
	} {
		drops, _ := w.views.Drops()
		fwd, pass, peerRx, _ := w.counts(t)
		ret, out := w.fromUplink(t, c.in)
		if ret != tcActOK || !bytes.Equal(out, c.in) {
			t.Errorf("%s: verdict %d, changed %v; want TC_ACT_OK unchanged", c.name, ret, !bytes.Equal(out, c.in))
		}
		fwd2, pass2, peerRx2, _ := w.counts(t)
		if fwd2 != fwd || pass2 != pass+1 || peerRx2 != peerRx {
			t.Errorf("%s: overlay forward %d->%d, uplink pass %d->%d, peer rx %d->%d; want +0, +1, +0", c.name, fwd, fwd2, pass, pass2, peerRx, peerRx2)
		}
		if after, _ := w.views.Drops(); !sameDrops(drops, after) {
			t.Errorf("%s: drops counted: %v -> %v", c.name, drops, after)
		}
	}
	// A network beside the kernel's NAT: its replies may need netfilter,
	// which sees them only on the device.
	if err := w.views.PutNetwork(maps.Network{ID: 3, Subnet: netip.MustParsePrefix("10.210.0.0/24"), Gateway: netip.MustParseAddr("10.210.0.1"), GatewayMAC: macGW, BridgeIfindex: 52,
		ICC: true, VNI: 4096, OverlayIfindex: ifVXLAN, ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12")}}); err != nil {
		t.Fatal(err)
	}
	in := outerVXLAN{vni: 4096}.frame(good)
	if ret, out := w.fromUplink(t, in); ret != tcActOK || !bytes.Equal(out, in) {
		t.Errorf("network beside the kernel's NAT: verdict %d, changed %v; want TC_ACT_OK unchanged", ret, !bytes.Equal(out, in))
	}
	// From no peer: not VXLAN for this host at all, whatever it carries.
	in = outerVXLAN{src: netip.MustParseAddr("198.18.0.99"), vni: 4096}.frame(good)
	if ret, out := w.fromUplink(t, in); ret == tcActRedirect || !bytes.Equal(out, in) {
		t.Errorf("VXLAN from no peer: verdict %d, changed %v", ret, !bytes.Equal(out, in))
	}
}

func sameDrops(a, b map[string]maps.Counter) bool {
	for k, v := range b {
		if a[k].Packets != v.Packets {
			return false
		}
	}
	return true
}

// A peer host's own stack (from_host there) to an endpoint here: delivered,
// and its flow remembered so that the endpoint's answers take the tunnel
// back (as from_overlay does). With --icc=false a remote endpoint's frame is
// the device's (from_overlay drops it with its reason); the host's is not
// a container's and still goes in.
func TestFromUplinkDecapsulatesFromThePeerHost(t *testing.T) {
	w := newDecapWorld(t)
	in := pkt{srcMAC: macHostR, dstMAC: macD, src: hostR, dst: ipD, proto: layers.IPProtocolTCP, sport: 45000, dport: 80, tcpFlags: "S"}.build(t)
	if ret, out := w.fromUplink(t, outerVXLAN{vni: 4096}.frame(in)); ret != tcActRedirect || !bytes.Equal(out, in) {
		t.Fatalf("from host R's stack: verdict %d, frame %x", ret, out)
	}
	// D's SYN-ACK goes back into the tunnel, not out of the uplink.
	back := pkt{srcMAC: macD, dstMAC: macGW, src: ipD, dst: hostR, proto: layers.IPProtocolTCP, sport: 80, dport: 45000, tcpFlags: "SA"}.build(t)
	if ret, out := w.run(t, w.ifEp, back); ret != tcActRedirect || len(out) != len(back)+50 {
		t.Errorf("D's answer to host R: verdict %d, %d bytes; want it encapsulated (%d)", ret, len(out), len(back)+50)
	}

	if err := w.views.PutNetwork(maps.Network{ID: 3, Subnet: netip.MustParsePrefix("10.210.0.0/24"), Gateway: netip.MustParseAddr("10.210.0.1"), GatewayMAC: macGW, BridgeIfindex: 52,
		ICC: false, VNI: 4096, OverlayIfindex: ifVXLAN, Subnet6: netip.MustParsePrefix("fd00:210::/64"), Gateway6: netip.MustParseAddr("fd00:210::1")}); err != nil {
		t.Fatal(err)
	}
	fromR := outerVXLAN{vni: 4096}.frame(udpFrame(t, macR, macD, ipR, ipD))
	if ret, out := w.fromUplink(t, fromR); ret != tcActOK || !bytes.Equal(out, fromR) {
		t.Errorf("--icc=false, from R: verdict %d, changed %v; want the device's", ret, !bytes.Equal(out, fromR))
	}
	if ret, _ := w.fromUplink(t, outerVXLAN{vni: 4096}.frame(in)); ret != tcActRedirect {
		t.Errorf("--icc=false, from host R's stack: verdict %d, want TC_ACT_REDIRECT", ret)
	}
}

// FuzzFromUplinkDecap: whatever a peer's VXLAN packet carries, from_uplink
// leaves it unchanged (for the VXLAN device), drops it as from_overlay
// would drop its malformed inner frame, or delivers exactly its inner frame
// addressed to D, from R or from host R, with the 50 outer bytes gone.
func FuzzFromUplinkDecap(f *testing.F) {
	reqs := make(chan func())
	ready := make(chan *decapWorld)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		ready <- newDecapWorld(f)
		for fn := range reqs {
			fn()
		}
	}()
	w := <-ready
	f.Cleanup(func() { close(reqs) })
	good := udpFrame(f, macR, macD, ipR, ipD)
	for _, s := range [][]byte{
		outerVXLAN{vni: 4096}.frame(good),
		outerVXLAN{vni: 4096}.frame(frame6(macR, macD, ip6R, ip6D, 64, nil, 17, []byte{0x9c, 0x40, 0, 53, 0, 13, 0, 0, 'h', 'e', 'l', 'l', 'o'})),
		outerVXLAN{vni: 4097}.frame(good),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var ret uint32
		var out []byte
		var err error
		done := make(chan struct{})
		reqs <- func() { // on the namespace's thread, where up0 is
			defer close(done)
			buf := make([]byte, len(in)+256)
			opts := ebpf.RunOptions{Data: in, DataOut: buf, Repeat: 1,
				Context: loader.SkBuff{IngressIfindex: uint32(w.ifUp), Ifindex: uint32(w.ifUp)}}
			ret, err = w.up.Run(&opts)
			out = buf[:len(opts.DataOut)]
		}
		<-done
		if err != nil {
			if len(in) < 14+40 || len(in) > 3000 {
				t.Skip("frame refused by BPF_PROG_TEST_RUN") // as FuzzFromUplink's
			}
			t.Fatalf("BPF_PROG_TEST_RUN: %v", err)
		}
		switch ret {
		case tcActOK:
			if !bytes.Equal(out, in) {
				t.Fatalf("passed changed:\n in %x\nout %x", in, out)
			}
		case tcActRedirect:
			if len(in) < 50+34 || !bytes.Equal(out[6:], in[50+6:]) || !bytes.Equal(out[:6], macD) {
				t.Fatalf("delivered something but the inner frame to D:\n in %x\nout %x", in, out)
			}
			src, _ := netip.AddrFromSlice(out[26:30])
			if et := binary.BigEndian.Uint16(out[12:]); et == 0x86dd {
				src, _ = netip.AddrFromSlice(out[22:38])
			}
			if src != ipR && src != ip6R && src != hostR {
				t.Fatalf("delivered from %v, neither R nor host R:\n in %x", src, in)
			}
		case tcActShot:
		default:
			t.Fatalf("verdict %d", ret)
		}
	})
}
