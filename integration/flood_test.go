package integration

import (
	"bufio"
	"errors"
	"math/rand/v2"
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
)

// An idle inbound TCP connection through a published port survives a
// flood from spoofed sources: afterwards the server speaks first (its
// segment must leave as the published address, not masqueraded as a new
// flow) and the client answers. Conntrack is small (--ct-map-size) so that
// a bounded flood is many times its size. The floods:
//   - syn (issue 9 item 8): SYNs to the TCP port. Before the embryonic
//     table every SYN wrote two conntrack entries and the container's
//     SYN-ACKs kept them warm: the idle flow was evicted.
//   - blind-ack (issue 21 item 1): a SYN then an ACK with an arbitrary ack
//     number per source. Before the ack check the ACK promoted each flow
//     into conntrack.
//   - udp (issue 21 item 2): two datagrams per source to a published UDP
//     port whose container answers. Before ct_inbound each went into
//     conntrack.
//
// loader's flood tests show the same at the program level.
func TestFloodKeepsIdleInboundConnection(t *testing.T) {
	for _, kind := range []string{"syn", "blind-ack", "udp"} {
		t.Run(kind, func(t *testing.T) { floodKeepsIdleInboundConnection(t, kind) })
	}
}

func floodKeepsIdleInboundConnection(t *testing.T, kind string) {
	const (
		ctMapSize = 4096
		sources   = 60_000           // spoofed sources: 15 times conntrack's flows
		floodMax  = 60 * time.Second // bounds the flood on a loaded machine
	)
	tp := newTopology(t)
	tp.Exec(tp.Host, "iptables", "-P", "FORWARD", "DROP")
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24", "--ct-map-size", "4096")
	c := tp.AddContainer("c")
	tp.MustEbpfnet("attach", "--network", "n1", "-p", "8080:80", "-p", "5353:53/udp", c)
	views := tp.Views()
	if n, _, _ := views.CTCapacity(); n != ctMapSize {
		t.Fatalf("conntrack holds %d entries, want %d", n, ctMapSize)
	}
	if kind == "udp" {
		serveUDPEcho(t, tp.Namespace(c), ":53")
	}

	// The container's server: hands each connection to the test.
	var l net.Listener
	if err := netnsutil.Do(tp.Namespace(c), func() (err error) {
		l, err = net.Listen("tcp4", ":80")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		if s, err := l.Accept(); err == nil {
			accepted <- s
		}
	}()
	ext := tp.Namespace(tp.Ext)
	cli, err := testutil.Dial(ext, "tcp4", hostAddr+":8080", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	var srv net.Conn
	select {
	case srv = <-accepted:
		defer srv.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("the container accepted no connection")
	}
	exchange := func(when string, from, to net.Conn) {
		t.Helper()
		to.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := from.Write([]byte(when + "\n")); err != nil {
			t.Fatalf("%s: write: %v", when, err)
		}
		line, err := bufio.NewReader(to).ReadString('\n')
		if err != nil || strings.TrimSpace(line) != when {
			t.Fatalf("%s: read %q, %v", when, line, err)
		}
	}
	exchange("client first", cli, srv)
	exchange("server answers", srv, cli)

	// The flood, from the outside host's wire: spoofed sources in
	// 198.19.0.0/16 (the rest of the benchmarking range), random ports.
	sock := openRaw(t, ext, "eth0", false)
	extMAC, upMAC := ifMAC(t, tp, tp.Ext, "eth0"), ifMAC(t, tp, tp.Host, testutil.UplinkIf)
	frames := func(src netip.AddrPort) [][]byte {
		switch kind {
		case "blind-ack":
			dst := netip.MustParseAddrPort(hostAddr + ":8080")
			return [][]byte{tcpSYN(t, extMAC, upMAC, src, dst), tcpBlindACK(t, extMAC, upMAC, src, dst, 12345)}
		case "udp":
			d := udpDatagram(t, extMAC, upMAC, src, netip.MustParseAddrPort(hostAddr+":5353"))
			return [][]byte{d, d}
		}
		return [][]byte{tcpSYN(t, extMAC, upMAC, src, netip.MustParseAddrPort(hostAddr+":8080"))}
	}
	start := time.Now()
	sent := 0
	for sent < sources && time.Since(start) < floodMax {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 19, byte(rand.IntN(256)), byte(1 + rand.IntN(254))}), uint16(1024+rand.IntN(64000)))
		for _, f := range frames(src) {
			for {
				err := sock.send(f)
				if err == nil {
					break
				}
				if !errors.Is(err, unix.ENOBUFS) {
					t.Fatalf("flood source %d: %v", sent, err)
				}
				time.Sleep(time.Millisecond) // the veth's queue is full: let it drain
			}
		}
		sent++
	}
	t.Logf("flood: %d spoofed sources (%s) in %v", sent, kind, time.Since(start).Round(time.Millisecond))
	if sent < 10*ctMapSize/2 {
		t.Fatalf("only %d sources in %v: not enough to churn a table of %d", sent, floodMax, ctMapSize)
	}
	emb, err := views.EmbryonicFlows()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after the flood: %d embryonic entries", len(emb))
	// ct ls shows the half-open flows, as conntrack -L shows SYN_RECV.
	if kind == "syn" && len(emb) > 0 {
		if ct := tp.MustEbpfnet("ct", "ls"); !strings.Contains(ct, ",embryonic") || !strings.Contains(ct, "198.19.") {
			t.Errorf("ct ls does not show the embryonic flows (%d entries)", len(emb))
		}
	}

	// The server speaks first, then the client.
	exchange("server after the flood", srv, cli)
	exchange("client after the flood", cli, srv)
	fs, err := views.Flows()
	if err != nil {
		t.Fatal(err)
	}
	inConntrack := 0
	for _, f := range fs {
		if !f.Inbound {
			inConntrack++
		}
	}
	if inConntrack > 2*ctMapSize/4 {
		t.Errorf("conntrack holds %d entries after a %s flood: the flood reached it", inConntrack, kind)
	}
}

// tcpBlindACK is an Ethernet frame carrying a TCP ACK whose ack number the
// sender made up (it never saw the SYN-ACK).
func tcpBlindACK(t testing.TB, srcMAC, dstMAC net.HardwareAddr, src, dst netip.AddrPort, ack uint32) []byte {
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()), ACK: true, Seq: 1001, Ack: ack, Window: 64240}
	tcp.SetNetworkLayerForChecksum(ip)
	return serialize(t, eth, ip, tcp)
}

// udpDatagram is an Ethernet frame carrying a small UDP datagram.
func udpDatagram(t testing.TB, srcMAC, dstMAC net.HardwareAddr, src, dst netip.AddrPort) []byte {
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
	udp := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	udp.SetNetworkLayerForChecksum(ip)
	return serialize(t, eth, ip, udp, gopacket.Payload("flood"))
}

// serveUDPEcho answers every datagram to addr in ns with its own bytes,
// until the test ends.
func serveUDPEcho(t *testing.T, ns netnsutil.Namespace, addr string) {
	t.Helper()
	var pc net.PacketConn
	if err := netnsutil.Do(ns, func() (err error) {
		pc, err = net.ListenPacket("udp4", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
}
