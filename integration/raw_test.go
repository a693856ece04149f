package integration

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
	"github.com/ebpfnet/ebpfnet/maps"
)

// Frames the kernel would never send (to 127.0.0.1 out of an Ethernet
// interface, spoofed ARP, spoofed sources) go out of a raw AF_PACKET socket.

// rawSocket is an AF_PACKET socket bound to one interface of a namespace.
type rawSocket struct {
	fd   int
	addr unix.SockaddrLinklayer
}

// openRaw opens a raw socket on ifname in ns. With recv it also receives
// every frame of the interface (ETH_P_ALL), else it only sends.
func openRaw(t testing.TB, ns netnsutil.Namespace, ifname string, recv bool) *rawSocket {
	t.Helper()
	var s *rawSocket
	err := netnsutil.Do(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		proto := 0
		if recv {
			proto = int(htons(unix.ETH_P_ALL))
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return err
		}
		s = &rawSocket{fd: fd, addr: unix.SockaddrLinklayer{Ifindex: ifi.Index, Protocol: uint16(proto)}}
		if err := unix.Bind(fd, &s.addr); err != nil {
			unix.Close(fd)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("raw socket on %s in %s: %v", ifname, ns.Path, err)
	}
	t.Cleanup(func() { unix.Close(s.fd) })
	return s
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (s *rawSocket) send(frame []byte) error { return unix.Sendto(s.fd, frame, 0, &s.addr) }

// wait reads frames until match accepts one or timeout passes.
func (s *rawSocket) wait(timeout time.Duration, match func([]byte) bool) bool {
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 4096)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		tv := unix.NsecToTimeval(left.Nanoseconds())
		unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		n, _, err := unix.Recvfrom(s.fd, buf, 0)
		if err != nil {
			continue // timeout or EINTR: the loop checks the deadline
		}
		if match(buf[:n]) {
			return true
		}
	}
}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// tcpSYN is an Ethernet frame carrying a TCP SYN.
func tcpSYN(t testing.TB, srcMAC, dstMAC net.HardwareAddr, src, dst netip.AddrPort) []byte {
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()), SYN: true, Seq: 1000, Window: 64240}
	tcp.SetNetworkLayerForChecksum(ip)
	return serialize(t, eth, ip, tcp)
}

// arpReply is an ARP reply (op 2) from sha/spa to tha/tpa.
func arpReply(t testing.TB, ethSrc, ethDst, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	eth := &layers.Ethernet{SrcMAC: ethSrc, DstMAC: ethDst, EthernetType: layers.EthernetTypeARP}
	arp := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: layers.ARPReply, SourceHwAddress: sha, SourceProtAddress: spa.AsSlice(), DstHwAddress: tha, DstProtAddress: tpa.AsSlice()}
	return serialize(t, eth, arp)
}

// ifMAC is the MAC of ifname in namespace ns.
func ifMAC(t testing.TB, tp *testutil.Topology, ns, ifname string) net.HardwareAddr {
	t.Helper()
	var hw net.HardwareAddr
	err := netnsutil.Do(tp.Namespace(ns), func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err == nil {
			hw = ifi.HardwareAddr
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return hw
}

// tcpFrom reports whether frame is IPv4 TCP from src with the given flags
// all set.
func tcpFrom(frame []byte, src netip.AddrPort, syn, ack bool) bool {
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.NoCopy)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if ip == nil || tcp == nil {
		return false
	}
	a, _ := netip.AddrFromSlice(ip.SrcIP.To4())
	return a == src.Addr() && uint16(tcp.SrcPort) == src.Port() && (!syn || tcp.SYN) && (!ack || tcp.ACK)
}

// dropCount reads one drop reason's packet counter.
func dropCount(t testing.TB, v *maps.Views, reason string) uint64 {
	t.Helper()
	d, err := v.Drops()
	if err != nil {
		t.Fatal(err)
	}
	return d[reason].Packets
}

// flowsFrom lists the conntrack flows whose key has source src.
func flowsFrom(t testing.TB, v *maps.Views, src netip.Addr) []string {
	t.Helper()
	fs, err := v.Flows()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range fs {
		if f.Tuple.Src.Addr() == src || f.Tuple.Dst.Addr() == src {
			out = append(out, f.Tuple.String()+" -> "+f.Translated.String())
		}
	}
	return out
}

// neighMAC is the host's neighbour entry for ip ("" if none).
func neighMAC(tp *testutil.Topology, ip string) string {
	out := tp.Exec(tp.Host, "ip", "-4", "neigh", "show", ip)
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "lladdr" {
			return f[i+1]
		}
	}
	return ""
}
