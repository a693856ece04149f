package loader_test

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket/layers"

	"github.com/ebpfnet/ebpfnet/maps"
)

// Issue 9 items 1-4 at the program level; integration/security_test.go
// shows the same through real namespaces.

// Item 1: a port published on 127.0.0.1 must not answer a frame that
// arrives from a wire addressed to 127.0.0.1.
func TestIssue9LoopbackFromWire(t *testing.T) {
	for _, tc := range []struct {
		name     string
		src, dst netip.Addr
	}{
		{"to 127.0.0.1", cliC, netip.MustParseAddr("127.0.0.1")},
		{"to 127.1.2.3", cliC, netip.MustParseAddr("127.1.2.3")},
		{"to 0.0.0.0", cliC, netip.MustParseAddr("0.0.0.0")},
		{"from 127.0.0.1", netip.MustParseAddr("127.0.0.1"), hostH},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newNATEnv(t, envOpts{netns: true})
			publish(t, e, maps.PortEntry{Proto: maps.ProtoTCP, HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 9000,
				ContainerIP: ipB, ContainerPort: 80, Ifindex: e.ifB})
			publish(t, e, maps.PortEntry{Proto: maps.ProtoTCP, HostPort: 9000, ContainerIP: ipB, ContainerPort: 80, Ifindex: e.ifB})
			f := pkt{srcMAC: macRt, dstMAC: macUp, src: tc.src, dst: tc.dst, proto: layers.IPProtocolTCP, sport: 5555, dport: 9000, tcpFlags: "S"}
			ret, _ := e.fromUplink(t, f.build(t))
			expectRefused(t, e, ret, "martian")
		})
	}
}

// Item 2: from an uplink, a container address is reachable only through a
// published port or as a reply.
func TestIssue9DirectRouting(t *testing.T) {
	for _, tc := range []struct {
		name   string
		noMasq bool
		p      pkt
	}{
		{"unpublished UDP", false, pkt{proto: layers.IPProtocolUDP, sport: 5555, dport: 53}},
		{"published container port, addressed directly", false, pkt{proto: layers.IPProtocolTCP, sport: 5555, dport: 80, tcpFlags: "S"}},
		{"TCP SYN, no masquerade", true, pkt{proto: layers.IPProtocolTCP, sport: 5555, dport: 22, tcpFlags: "S"}},
		{"TCP ACK, no masquerade", true, pkt{proto: layers.IPProtocolTCP, sport: 5555, dport: 22, tcpFlags: "A"}},
		{"ICMP echo", false, pkt{proto: layers.IPProtocolICMPv4, sport: 7}},
		{"later fragment", false, pkt{proto: layers.IPProtocolUDP, sport: 5555, dport: 53, fragOffset: 100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newNATEnv(t, envOpts{netns: true, noMasq: tc.noMasq})
			publish(t, e, maps.PortEntry{Proto: maps.ProtoTCP, HostPort: 8080, ContainerIP: ipB, ContainerPort: 80, Ifindex: e.ifB})
			p := tc.p
			p.srcMAC, p.dstMAC, p.src, p.dst = macRt, macUp, cliC, ipB
			ret, _ := e.fromUplink(t, p.build(t))
			expectRefused(t, e, ret, "direct_routing")
		})
	}
	t.Run("the gateway is the host's", func(t *testing.T) {
		e := newNATEnv(t, envOpts{netns: true})
		p := pkt{srcMAC: macRt, dstMAC: macUp, src: cliC, dst: gw1, proto: layers.IPProtocolUDP, sport: 5555, dport: 53}
		if ret, _ := e.fromUplink(t, p.build(t)); ret != tcActOK {
			t.Fatalf("verdict %d, want TC_ACT_OK", ret)
		}
	})
}

func arpFrame(t testing.TB, ethSrc net.HardwareAddr, op uint16, sha net.HardwareAddr, spa, tpa netip.Addr) []byte {
	t.Helper()
	dst := layers.EthernetBroadcast
	tha := net.HardwareAddr(make([]byte, 6))
	if op == layers.ARPReply {
		dst, tha = macGW, macGW
	}
	eth := &layers.Ethernet{SrcMAC: ethSrc, DstMAC: dst, EthernetType: layers.EthernetTypeARP}
	a := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: op, SourceHwAddress: sha, SourceProtAddress: spa.AsSlice(), DstHwAddress: tha, DstProtAddress: tpa.AsSlice()}
	return serialize(t, eth, a)
}

// Item 3: a container's ARP speaks only for its own MAC and IP.
func TestIssue9ARPSpoofing(t *testing.T) {
	zero := netip.MustParseAddr("0.0.0.0")
	for _, tc := range []struct {
		name   string
		frame  func(t *testing.T) []byte
		reason string // "" passes
	}{
		{"reply claiming B's address", func(t *testing.T) []byte { return arpFrame(t, macA, layers.ARPReply, macA, ipB, gw1) }, "spoofed_arp"},
		{"request claiming B's address", func(t *testing.T) []byte { return arpFrame(t, macA, layers.ARPRequest, macA, ipB, gw1) }, "spoofed_arp"},
		{"reply with B's hardware address", func(t *testing.T) []byte { return arpFrame(t, macA, layers.ARPReply, macB, ipA, gw1) }, "spoofed_arp"},
		{"gratuitous reply for the gateway", func(t *testing.T) []byte { return arpFrame(t, macA, layers.ARPReply, macA, gw1, gw1) }, "spoofed_arp"},
		{"reply from a probe address", func(t *testing.T) []byte { return arpFrame(t, macA, layers.ARPReply, macA, zero, gw1) }, "spoofed_arp"},
		{"truncated", func(t *testing.T) []byte { return arpFrame(t, macA, layers.ARPRequest, macA, ipA, gw1)[:30] }, "malformed"},
		{"own request", func(t *testing.T) []byte { return arpFrame(t, macA, layers.ARPRequest, macA, ipA, gw1) }, ""},
		{"own reply", func(t *testing.T) []byte { return arpFrame(t, macA, layers.ARPReply, macA, ipA, gw1) }, ""},
		{"RFC 5227 probe", func(t *testing.T) []byte { return arpFrame(t, macA, layers.ARPRequest, macA, zero, ipA) }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, true)
			ret, _ := f.run(t, ifA, tc.frame(t))
			if tc.reason == "" {
				if ret != tcActOK {
					t.Fatalf("verdict %d, want TC_ACT_OK", ret)
				}
				return
			}
			if ret != tcActShot {
				t.Fatalf("verdict %d, want TC_ACT_SHOT", ret)
			}
			if n := f.drops(t, tc.reason); n != 1 {
				t.Errorf("drops[%s] = %d, want 1", tc.reason, n)
			}
		})
	}
}

// Item 4: IPv6 between containers would bypass --icc=false and isolation:
// the IPv4-only datapath drops every IPv6 frame a container sends; so it
// does other ethertypes it does not carry.
func TestIssue9IPv6AndOtherEthertypes(t *testing.T) {
	v6 := func(t *testing.T, dstMAC net.HardwareAddr, dst string) []byte {
		eth := &layers.Ethernet{SrcMAC: macA, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv6}
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP,
			SrcIP: net.ParseIP("fe80::a"), DstIP: net.ParseIP(dst)}
		tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, SYN: true, Window: 64000, DataOffset: 5}
		tcp.SetNetworkLayerForChecksum(ip)
		return serialize(t, eth, ip, tcp)
	}
	lldp := func(t *testing.T) []byte {
		f := udpFrame(t, macA, layers.EthernetBroadcast, ipA, ipB)
		f[12], f[13] = 0x88, 0xcc
		return f
	}
	for _, tc := range []struct {
		name   string
		icc    bool
		frame  func(t *testing.T) []byte
		reason string
	}{
		{"link-local TCP, icc off", false, func(t *testing.T) []byte { return v6(t, macB, "fe80::b") }, "ipv6"},
		{"link-local TCP, icc on", true, func(t *testing.T) []byte { return v6(t, macB, "fe80::b") }, "ipv6"},
		{"neighbour solicitation multicast", true, func(t *testing.T) []byte {
			return v6(t, net.HardwareAddr{0x33, 0x33, 0xff, 0, 0, 0xb}, "ff02::1:ff00:b")
		}, "ipv6"},
		{"LLDP", true, lldp, "ethertype"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.icc)
			ret, _ := f.run(t, ifA, tc.frame(t))
			if ret != tcActShot {
				t.Fatalf("verdict %d, want TC_ACT_SHOT", ret)
			}
			if n := f.drops(t, tc.reason); n != 1 {
				t.Errorf("drops[%s] = %d, want 1", tc.reason, n)
			}
		})
	}
}
