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

	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

// A SYN flood over IPv6 from spoofed sources to a port published over
// IPv6 goes into ct6_embryonic, not conntrack6, and an idle IPv6
// connection through the port lives on: afterwards the server speaks
// first (its segment must leave as the published address) and the client
// answers. Before ct6_embryonic every SYN wrote both halves of a flow
// into conntrack6 and the container's SYN-ACKs kept them warm: a flood of
// more sources than conntrack6's 64k flows evicted the idle connection.
// The test also checks that none of the flood reached conntrack6. ct ls
// shows the half-open
// IPv6 flows as embryonic. loader's TestSYNFlood6KeepsEstablishedFlows
// shows the same at the program level.
func TestSYNFlood6KeepsIdleInboundConnection(t *testing.T) {
	const (
		sources  = 100_000          // spoofed sources: more than conntrack6's 64k flows
		minimum  = 70_000           // what must be sent in floodMax to churn conntrack6
		floodMax = 60 * time.Second // bounds the flood on a loaded machine
	)
	tp := newTopology(t)
	dualStackUplink(tp)
	tp.Exec(tp.Host, "ip6tables", "-P", "FORWARD", "DROP")
	tp.MustEbpfnet("network", "create", "d6", "--ipv6", "--subnet", "172.30.0.0/24", "--subnet", "fd00:30::/64")
	c := tp.AddContainer("c")
	tp.MustEbpfnet("attach", "--network", "d6", "-p", "8080:80", c)
	views := tp.Views()

	var l net.Listener
	if err := netnsutil.Do(tp.Namespace(c), func() (err error) {
		l, err = net.Listen("tcp6", ":80")
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
	cli, err := testutil.Dial(ext, "tcp6", "["+hostIP6+"]:8080", 5*time.Second)
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
	conntrack6 := func() (n, embryonic int) {
		t.Helper()
		fs, err := views.Flows6()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			if f.Embryonic {
				embryonic++
			} else {
				n++
			}
		}
		return n, embryonic
	}
	if n, emb := conntrack6(); n != 2 || emb != 0 {
		t.Fatalf("before the flood: %d conntrack6 entries, %d embryonic; want the connection's 2 promoted", n, emb)
	}

	// The flood, from the outside host's wire: spoofed sources in
	// 2001:db8:66::/64, random ports; the container answers each.
	sock := openRaw(t, ext, "eth0", false)
	extMAC, upMAC := ifMAC(t, tp, tp.Ext, "eth0"), ifMAC(t, tp, tp.Host, testutil.UplinkIf)
	dst := netip.MustParseAddrPort("[" + hostIP6 + "]:8080")
	start := time.Now()
	sent := 0
	for sent < sources && time.Since(start) < floodMax {
		var a [16]byte
		copy(a[:], netip.MustParseAddr("2001:db8:66::").AsSlice())
		for j := 8; j < 16; j++ {
			a[j] = byte(rand.IntN(256))
		}
		src := netip.AddrPortFrom(netip.AddrFrom16(a), uint16(1024+rand.IntN(64000)))
		f := tcpSYN6(t, extMAC, upMAC, src, dst)
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
		sent++
	}
	t.Logf("flood: %d spoofed IPv6 sources in %v", sent, time.Since(start).Round(time.Millisecond))
	if sent < minimum {
		t.Fatalf("only %d sources in %v", sent, floodMax)
	}
	n, emb := conntrack6()
	t.Logf("after the flood: %d conntrack6 entries, %d embryonic", n, emb)
	if n > 2 {
		t.Errorf("conntrack6 holds %d entries after the flood: the flood reached it", n)
	}
	if emb == 0 {
		t.Error("no embryonic IPv6 entries after the flood")
	} else if ct := tp.MustEbpfnet("ct", "ls"); !strings.Contains(ct, ",embryonic") || !strings.Contains(ct, "[2001:db8:66:") {
		t.Errorf("ct ls does not show the embryonic IPv6 flows (%d entries)", emb)
	}

	exchange("server after the flood", srv, cli)
	exchange("client after the flood", cli, srv)
}

// tcpSYN6 is tcpSYN over IPv6.
func tcpSYN6(t testing.TB, srcMAC, dstMAC net.HardwareAddr, src, dst netip.AddrPort) []byte {
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv6}
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()), SYN: true, Seq: 1000, Window: 64240}
	tcp.SetNetworkLayerForChecksum(ip)
	return serialize(t, eth, ip, tcp)
}
