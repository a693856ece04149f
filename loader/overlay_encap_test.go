package loader_test

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"

	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

// macHostR is host R's MAC on up0's link.
var macHostR = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0c}

// The encapsulation world: setupNetns's namespace (the host veth epa with
// forwarding, the uplink up0 on host R's link, 198.18.0.0/24, with a
// permanent neighbour entry for it), endpoint D of overlay network 3 on
// epa, remote endpoint R on host R, and this host's underlay address
// hostSelf.
func newEncapWorld(t testing.TB, self bool) (*fixture, int, int) {
	t.Helper()
	ifEp, _, ifUp := setupNetns(t)
	if err := netlink.NeighAdd(&netlink.Neigh{LinkIndex: ifUp, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
		IP: hostR.AsSlice(), HardwareAddr: macHostR}); err != nil {
		t.Fatal(err)
	}
	dp, err := loader.Load(loader.Options{CTMapSize: 4096})
	if err != nil {
		t.Fatalf("load datapath: %v", err)
	}
	t.Cleanup(dp.Close)
	v := maps.New(&dp.Maps)
	f := &fixture{dp: dp, views: v, prog: dp.Program(loader.ProgFromContainer)}
	if err := v.PutNetwork(maps.Network{ID: 3, Subnet: netip.MustParsePrefix("10.210.0.0/24"), Gateway: netip.MustParseAddr("10.210.0.1"), GatewayMAC: macGW, BridgeIfindex: 52,
		ICC: true, VNI: 4096, OverlayIfindex: ifVXLAN, Subnet6: netip.MustParsePrefix("fd00:210::/64"), Gateway6: netip.MustParseAddr("fd00:210::1")}); err != nil {
		t.Fatal(err)
	}
	if err := v.PutEndpoint(maps.Endpoint{IP: ipD, MAC: macD, NetID: 3, Ifindex: ifEp, Overlay: true, IP6: ip6D}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := v.SyncRemoteEndpoints([]uint32{3}, []maps.RemoteEndpoint{{IP: ipR, MAC: macR, NetID: 3, Host: hostR}, {IP: ip6R, MAC: macR, NetID: 3, Host: hostR}}); err != nil {
		t.Fatal(err)
	}
	if err := v.SyncOverlayHosts([]netip.Addr{hostR}); err != nil {
		t.Fatal(err)
	}
	if self {
		if err := v.SetOverlaySelf(hostSelf); err != nil {
			t.Fatal(err)
		}
	}
	return f, ifEp, ifUp
}

// withTOS sets an IPv4 frame's TOS byte and its header checksum.
func withTOS(frame []byte, tos byte) []byte {
	out := bytes.Clone(frame)
	ip := out[14:34]
	ip[1] = tos
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip))
	return out
}

func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// To a remote endpoint with a route to its host: the frame leaves
// encapsulated as the VXLAN device would send it, every byte checked (the
// IP id is random, the UDP source port the inner flow's hash in the local
// port range), and the route is cached for the next packets.
func TestOverlayEncapsulatesInTheDatapath(t *testing.T) {
	f, ifEp, ifUp := newEncapWorld(t, true)
	for _, c := range []struct {
		tos, outerTOS byte
	}{{0, 0}, {0x02, 0x02}, {0xb9, 0x01}, {0x03, 0x02}} { // ECN: ECT(0), DSCP with ECT(1), CE as ECT(0)
		inner := withTOS(udpFrame(t, macD, macR, ipD, ipR), c.tos)
		in := withTOS(udpFrame(t, macD, macGW, ipD, ipR), c.tos)
		ret, out := f.run(t, ifEp, in)
		if ret != tcActRedirect {
			t.Fatalf("tos %#x: verdict = %d, want TC_ACT_REDIRECT", c.tos, ret)
		}
		if len(out) != 50+len(inner) {
			t.Errorf("tos %#x: %d bytes, want %d (50 of VXLAN over IPv4 and the frame)\n%x", c.tos, len(out), 50+len(inner), out)
			break
		}
		ip, udp, vx := out[14:34], out[34:42], out[42:50]
		sport := binary.BigEndian.Uint16(udp[0:])
		want := []byte{}
		want = append(want, macHostR...)
		want = append(want, macUp...)
		want = append(want, 0x08, 0x00)
		want = append(want, 0x45, c.outerTOS)
		want = binary.BigEndian.AppendUint16(want, uint16(20+8+8+len(inner)))
		want = append(want, ip[4], ip[5], 0, 0, 64, 17, ip[10], ip[11]) // id random, no DF, TTL 64, UDP
		want = append(want, hostSelf.AsSlice()...)
		want = append(want, hostR.AsSlice()...)
		want = binary.BigEndian.AppendUint16(want, sport)
		want = binary.BigEndian.AppendUint16(want, 4789)
		want = binary.BigEndian.AppendUint16(want, uint16(8+8+len(inner)))
		want = append(want, 0, 0)                         // no UDP checksum (RFC 7348 over IPv4)
		want = append(want, 0x08, 0, 0, 0, 0, 0x10, 0, 0) // flag I, VNI 4096
		want = append(want, inner...)
		if !bytes.Equal(out, want) {
			t.Errorf("tos %#x: frame:\n got %x\nwant %x", c.tos, out, want)
		}
		if ipChecksum(ip) != 0 {
			t.Errorf("tos %#x: outer IPv4 checksum %x is wrong", c.tos, ip[10:12])
		}
		if sport < 32768 || sport >= 60999 {
			t.Errorf("tos %#x: UDP source port %d outside 32768-60998", c.tos, sport)
		}
		if vx[0] != 0x08 {
			t.Errorf("tos %#x: VXLAN flags %x", c.tos, vx[:4])
		}
		verifyChecksums(t, out[50:])
	}
	// IPv6 inside the same way: traffic class 0x2e with ECT(1) (0xb9).
	inner := frame6(macD, macR, ip6D, ip6R, 64, nil, 17, []byte{0x9c, 0x40, 0, 53, 0, 13, 0, 0, 'h', 'e', 'l', 'l', 'o'})
	inner[14], inner[15] = 0x6b, 0x90
	in := bytes.Clone(inner)
	copy(in[0:6], macGW)
	if ret, out := f.run(t, ifEp, in); ret != tcActRedirect || len(out) != 50+len(inner) {
		t.Errorf("IPv6: verdict %d, %d bytes; want TC_ACT_REDIRECT, %d", ret, len(out), 50+len(inner))
	} else {
		if !bytes.Equal(out[50:], inner) || !bytes.Equal(out[0:12], append(bytes.Clone(macHostR), macUp...)) {
			t.Errorf("IPv6: frame %x", out)
		}
		if out[12] != 0x08 || out[13] != 0 || out[15] != 0x01 || ipChecksum(out[14:34]) != 0 || out[23] != 17 {
			t.Errorf("IPv6: outer IPv4 header %x (want ECN ECT(1), UDP, a valid checksum)", out[14:34])
		}
		if binary.BigEndian.Uint16(out[36:]) != 4789 || binary.BigEndian.Uint16(out[38:]) != uint16(16+len(inner)) || !bytes.Equal(out[42:50], []byte{8, 0, 0, 0, 0, 0x10, 0, 0}) {
			t.Errorf("IPv6: UDP and VXLAN headers %x", out[34:50])
		}
	}
	// The same flow, the same source port (ECMP on the underlay keeps it
	// in order).
	_, a := f.run(t, ifEp, udpFrame(t, macD, macR, ipD, ipR))
	_, b := f.run(t, ifEp, udpFrame(t, macD, macR, ipD, ipR))
	if !bytes.Equal(a[34:36], b[34:36]) {
		t.Errorf("one flow, two source ports: %x, %x", a[34:36], b[34:36])
	}
	var rt struct {
		Expires uint64
		Ifindex uint32
		MTU     uint32
		SMAC    [6]byte
		DMAC    [6]byte
		_       uint32
	}
	if err := f.dp.Maps.OverlayRoutes.Lookup(hostR.As4(), &rt); err != nil {
		t.Fatalf("no cached route to host R: %v", err)
	}
	if int(rt.Ifindex) != ifUp || rt.MTU != 1500 || !bytes.Equal(rt.SMAC[:], macUp) || !bytes.Equal(rt.DMAC[:], macHostR) {
		t.Errorf("cached route %+v, want up0 (%d), MTU 1500, %v to %v", rt, ifUp, macUp, macHostR)
	}
	n := uint64(len(udpFrame(t, macD, macR, ipD, ipR)))
	if p := f.peer(t, hostR); p.TxPackets != 7 || p.TxBytes != 6*n+uint64(len(inner)) {
		t.Errorf("peer %v counters %+v, want 7 packets (%d bytes) sent", hostR, p, 6*n+uint64(len(inner)))
	}
	if got := f.verdict(t, loader.VerdictForward); got != 7 {
		t.Errorf("forward verdicts = %d, want 7", got)
	}
}

// What the datapath does not encapsulate goes to the VXLAN device as
// before (the frame only readdressed): without this host's underlay
// address, beyond the underlay MTU (the device's PMTU handling), without
// a route to the peer host or its neighbour entry (the stack resolves it).
func TestOverlayEncapsulationFallsBackToTheDevice(t *testing.T) {
	big := func(t *testing.T, dstMAC net.HardwareAddr) []byte {
		fr := udpFrame(t, macD, dstMAC, ipD, ipR)
		// 1451 bytes of IPv4: 1501 with VXLAN, one beyond up0's MTU.
		pad := make([]byte, 1451-(len(fr)-14))
		fr = append(fr, pad...)
		ip := fr[14:34]
		binary.BigEndian.PutUint16(ip[2:], 1451)
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip))
		udp := fr[34:42]
		binary.BigEndian.PutUint16(udp[4:], uint16(1451-20))
		udp[6], udp[7] = 0, 0 // no UDP checksum
		return fr
	}
	t.Run("no underlay address", func(t *testing.T) {
		f, ifEp, _ := newEncapWorld(t, false)
		if ret, out := f.run(t, ifEp, udpFrame(t, macD, macGW, ipD, ipR)); ret != tcActRedirect || !bytes.Equal(out, udpFrame(t, macD, macR, ipD, ipR)) {
			t.Errorf("verdict %d, frame %x; want the device's path", ret, out)
		}
	})
	t.Run("beyond the MTU", func(t *testing.T) {
		f, ifEp, _ := newEncapWorld(t, true)
		if ret, out := f.run(t, ifEp, big(t, macGW)); ret != tcActRedirect || !bytes.Equal(out, big(t, macR)) {
			t.Errorf("verdict %d, %d bytes; want the device's path, the frame readdressed", ret, len(out))
		}
	})
	t.Run("no route", func(t *testing.T) {
		f, ifEp, ifUp := newEncapWorld(t, true)
		if err := f.dp.Maps.OverlayRoutes.Update(hostR.As4(), make([]byte, 32), ebpf.UpdateAny); err != nil {
			t.Fatal(err) // an expired entry: the FIB is asked again
		}
		if err := netlink.AddrDel(mustLink(t, ifUp), &netlink.Addr{IPNet: &net.IPNet{IP: hostH.AsSlice(), Mask: net.CIDRMask(24, 32)}}); err != nil {
			t.Fatal(err) // host R's link goes, and with it the default route
		}
		if ret, out := f.run(t, ifEp, udpFrame(t, macD, macGW, ipD, ipR)); ret != tcActRedirect || !bytes.Equal(out, udpFrame(t, macD, macR, ipD, ipR)) {
			t.Errorf("verdict %d, frame %x; want the device's path", ret, out)
		}
		var v [32]byte
		if err := f.dp.Maps.OverlayRoutes.Lookup(hostR.As4(), &v); err == nil {
			t.Errorf("the route to host R stayed cached without a route")
		}
	})
	t.Run("no neighbour", func(t *testing.T) {
		f, ifEp, ifUp := newEncapWorld(t, true)
		if err := netlink.NeighDel(&netlink.Neigh{LinkIndex: ifUp, Family: netlink.FAMILY_V4, IP: hostR.AsSlice()}); err != nil {
			t.Fatal(err)
		}
		if ret, out := f.run(t, ifEp, udpFrame(t, macD, macGW, ipD, ipR)); ret != tcActRedirect || !bytes.Equal(out, udpFrame(t, macD, macR, ipD, ipR)) {
			t.Errorf("verdict %d, frame %x; want the device's path", ret, out)
		}
	})
}

func mustLink(t *testing.T, ifindex int) netlink.Link {
	t.Helper()
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
