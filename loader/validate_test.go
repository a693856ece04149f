package loader_test

import (
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"testing"

	"github.com/google/gopacket/layers"

	"github.com/ebpfnet/ebpfnet/maps"
)

// Regression tests for issue 15's four findings, with the frames the issue
// gives (from container A, 172.30.0.2, to 203.0.113.9 through the gateway)
// and their mirror images into a published port.

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ipHeaderValid reports whether the frame's IPv4 header checksum is right.
func ipHeaderValid(frame []byte) bool {
	ihl := int(frame[14]&0xf) * 4
	return len(frame) >= 14+ihl && onesSum(0, frame[14:14+ihl]) == 0xffff
}

// fixIPChecksum recomputes the IPv4 header checksum of a hand-made frame.
func fixIPChecksum(f []byte) []byte {
	ihl := int(f[14]&0xf) * 4
	f[24], f[25] = 0, 0
	binary.BigEndian.PutUint16(f[24:], ^uint16(onesSum(0, f[14:14+ihl])))
	return f
}

// expectRefused checks that a frame was dropped for reason and left no
// conntrack entry.
func expectRefused(t *testing.T, e *natEnv, ret uint32, reason string) {
	t.Helper()
	if ret != tcActShot {
		t.Errorf("verdict %d, want TC_ACT_SHOT", ret)
	}
	if n := e.drops(t, reason); n != 1 {
		t.Errorf("drops[%s] = %d, want 1", reason, n)
	}
	if n := len(e.flows(t)); n != 0 {
		t.Errorf("%d conntrack entries, want 0: %v", n, e.flows(t))
	}
}

// Finding 1: a bad IPv4 header checksum must stay bad through SNAT and DNAT.
func TestIssue15ChecksumNotLaundered(t *testing.T) {
	t.Run("SNAT", func(t *testing.T) {
		e := newNATEnv(t, envOpts{netns: true})
		in := mustHex(t, "02000000000102000000000a080045000020000000004011c8a3ac1e0002cb0071099c400035000cb66f61626364")
		if ipHeaderValid(in) {
			t.Fatal("the issue's frame has a valid header checksum")
		}
		ret, out := e.fromContainer(t, e.ifA, in)
		if ret == tcActRedirect && ipHeaderValid(out) {
			t.Fatalf("invalid IPv4 header checksum laundered into a valid one: %x", out)
		}
	})
	t.Run("DNAT", func(t *testing.T) {
		e := newNATEnv(t, envOpts{netns: true})
		publish(t, e, maps.PortEntry{Proto: maps.ProtoUDP, HostPort: 8080, ContainerIP: ipB, ContainerPort: 80, Ifindex: e.ifB})
		in := pkt{srcMAC: macRt, dstMAC: macUp, src: cliC, dst: hostH, proto: layers.IPProtocolUDP, sport: 5555, dport: 8080}.build(t)
		in[24] ^= 0x5a
		ret, out := e.fromUplink(t, in)
		if ret == tcActRedirect && ipHeaderValid(out) {
			t.Fatalf("invalid IPv4 header checksum laundered into a valid one: %x", out)
		}
	})
}

// Finding 2: the IPv4 total length must fit the frame and cover the header.
func TestIssue15TotalLength(t *testing.T) {
	snat := func(t *testing.T, totLen uint16) []byte {
		f := mustHex(t, "02000000000102000000000a0800450003e80000000040118edbac1e0002cb0071099c42003500087b3c")
		binary.BigEndian.PutUint16(f[16:], totLen)
		return fixIPChecksum(f)
	}
	dnat := func(t *testing.T, totLen uint16) []byte {
		f := pkt{srcMAC: macRt, dstMAC: macUp, src: cliC, dst: hostH, proto: layers.IPProtocolUDP, sport: 5555, dport: 8080}.build(t)
		binary.BigEndian.PutUint16(f[16:], totLen)
		return fixIPChecksum(f)
	}
	for _, totLen := range []uint16{1000, 5, 19} {
		t.Run("SNAT", func(t *testing.T) {
			e := newNATEnv(t, envOpts{netns: true})
			ret, _ := e.fromContainer(t, e.ifA, snat(t, totLen))
			expectRefused(t, e, ret, "malformed")
		})
		t.Run("DNAT", func(t *testing.T) {
			e := newNATEnv(t, envOpts{netns: true})
			publish(t, e, maps.PortEntry{Proto: maps.ProtoUDP, HostPort: 8080, ContainerIP: ipB, ContainerPort: 80, Ifindex: e.ifB})
			ret, _ := e.fromUplink(t, dnat(t, totLen))
			expectRefused(t, e, ret, "malformed")
		})
	}
}

// Finding 3: truncated TCP headers, TCP data offsets below 5 and UDP
// lengths that disagree with the IP length.
func TestIssue15TruncatedL4(t *testing.T) {
	tcp18 := "02000000000102000000000a08004500002600000000400692a8ac1e0002cb0071099c4401bb000003e80000004d5002fa002b83"
	for _, tc := range []struct {
		name  string
		frame func(t *testing.T) []byte
	}{
		{"18-byte TCP header (issue)", func(t *testing.T) []byte { return mustHex(t, tcp18) }},
		{"19-byte TCP header", func(t *testing.T) []byte {
			f := append(mustHex(t, tcp18), 0)
			binary.BigEndian.PutUint16(f[16:], 39)
			return fixIPChecksum(f)
		}},
		{"TCP data offset 4", func(t *testing.T) []byte {
			f := pkt{srcMAC: macA, dstMAC: macGW, src: ipA, dst: srvD, proto: layers.IPProtocolTCP, sport: 40000, dport: 443, tcpFlags: "S"}.build(t)
			f[14+20+12] = 4 << 4
			return f
		}},
		{"TCP data offset beyond the segment", func(t *testing.T) []byte {
			f := pkt{srcMAC: macA, dstMAC: macGW, src: ipA, dst: srvD, proto: layers.IPProtocolTCP, sport: 40000, dport: 443, tcpFlags: "S", payload: []byte{}}.build(t)
			f[14+20+12] = 6 << 4
			return f
		}},
		{"UDP length above the IP length", func(t *testing.T) []byte {
			f := pkt{srcMAC: macA, dstMAC: macGW, src: ipA, dst: srvD, proto: layers.IPProtocolUDP, sport: 40000, dport: 53}.build(t)
			binary.BigEndian.PutUint16(f[14+20+4:], 200)
			return f
		}},
		{"UDP length below the IP length", func(t *testing.T) []byte {
			f := pkt{srcMAC: macA, dstMAC: macGW, src: ipA, dst: srvD, proto: layers.IPProtocolUDP, sport: 40000, dport: 53}.build(t)
			binary.BigEndian.PutUint16(f[14+20+4:], 8)
			return f
		}},
		{"UDP length below 8", func(t *testing.T) []byte {
			f := pkt{srcMAC: macA, dstMAC: macGW, src: ipA, dst: srvD, proto: layers.IPProtocolUDP, sport: 40000, dport: 53, payload: []byte{}}.build(t)
			binary.BigEndian.PutUint16(f[14+20+4:], 4)
			return f
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newNATEnv(t, envOpts{netns: true})
			ret, _ := e.fromContainer(t, e.ifA, tc.frame(t))
			expectRefused(t, e, ret, "malformed")
		})
	}
	t.Run("DNAT of an 18-byte TCP header", func(t *testing.T) {
		e := newNATEnv(t, envOpts{netns: true})
		publish(t, e, maps.PortEntry{Proto: maps.ProtoTCP, HostPort: 8080, ContainerIP: ipB, ContainerPort: 80, Ifindex: e.ifB})
		f := pkt{srcMAC: macRt, dstMAC: macUp, src: cliC, dst: hostH, proto: layers.IPProtocolTCP, sport: 5555, dport: 8080, tcpFlags: "S", payload: []byte{}}.build(t)
		f = f[:len(f)-2]
		binary.BigEndian.PutUint16(f[16:], 38)
		ret, _ := e.fromUplink(t, fixIPChecksum(f))
		expectRefused(t, e, ret, "malformed")
	})
}

// Finding 4: a container's VLAN-tagged frames, single or double, are
// dropped, whatever they carry.
func TestIssue15VLANFromContainer(t *testing.T) {
	inner := udpFrame(t, macA, macB, netip.MustParseAddr("172.30.0.99"), ipB) // spoofed inner source
	tag := func(tpid uint16, vid uint16, f []byte) []byte {
		out := append([]byte{}, f[:12]...)
		out = binary.BigEndian.AppendUint16(out, tpid)
		out = binary.BigEndian.AppendUint16(out, vid)
		return append(out, f[12:]...)
	}
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"802.1Q", tag(0x8100, 5, inner)},
		{"802.1ad double-tagged", tag(0x88a8, 7, tag(0x8100, 5, inner))},
		{"802.1Q double-tagged", tag(0x8100, 7, tag(0x8100, 5, inner))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, true)
			ret, _ := f.run(t, ifA, tc.frame)
			if ret != tcActShot {
				t.Fatalf("verdict %d, want TC_ACT_SHOT", ret)
			}
			if n := f.drops(t, "vlan"); n != 1 {
				t.Errorf("drops[vlan] = %d, want 1", n)
			}
		})
	}
}
