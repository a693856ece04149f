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

	"golang.org/x/sys/unix"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
	"github.com/ebpfnet/ebpfnet/internal/testutil"
)

// Issue 9 item 8. An idle inbound TCP connection through a published port
// survives a flood of spoofed SYNs to that port: afterwards the server
// speaks first (its segment must leave as the published address, not
// masqueraded as a new flow) and the client answers. Conntrack is small
// (--ct-map-size) so that a bounded flood is many times its size. On the
// datapath before the embryonic table, every SYN wrote two conntrack
// entries and the container's SYN-ACKs marked them recently used: the idle
// flow was evicted, the server's segment left from another port and the
// client never saw it (loader's TestIssue9SYNFloodKeepsEstablishedFlows
// shows the same at the program level, and fails there on that datapath).
func TestSYNFloodKeepsIdleInboundConnection(t *testing.T) {
	const (
		ctMapSize = 4096
		floodSYNs = 200_000
		floodMax  = 60 * time.Second // bounds the flood on a loaded machine
	)
	tp := newTopology(t)
	tp.Exec(tp.Host, "iptables", "-P", "FORWARD", "DROP")
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24", "--ct-map-size", "4096")
	c := tp.AddContainer("c")
	tp.MustEbpfnet("attach", "--network", "n1", "-p", "8080:80", c)
	views := tp.Views()
	if n, _ := views.CTCapacity(); n != ctMapSize {
		t.Fatalf("conntrack holds %d entries, want %d", n, ctMapSize)
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
	published := netip.MustParseAddrPort(hostAddr + ":8080")
	start := time.Now()
	sent := 0
	for sent < floodSYNs && time.Since(start) < floodMax {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 19, byte(rand.IntN(256)), byte(1 + rand.IntN(254))}), uint16(1024+rand.IntN(64000)))
		err := sock.send(tcpSYN(t, extMAC, upMAC, src, published))
		switch {
		case err == nil:
			sent++
		case errors.Is(err, unix.ENOBUFS): // the veth's queue is full: let it drain
			time.Sleep(time.Millisecond)
		default:
			t.Fatalf("flood SYN %d: %v", sent, err)
		}
	}
	t.Logf("flood: %d spoofed SYNs in %v", sent, time.Since(start).Round(time.Millisecond))
	if sent < 10*ctMapSize {
		t.Fatalf("only %d SYNs in %v: not enough to churn a table of %d", sent, floodMax, ctMapSize)
	}
	emb, err := views.EmbryonicFlows()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after the flood: %d embryonic entries", len(emb))
	// ct ls shows the half-open flows, as conntrack -L shows SYN_RECV.
	if len(emb) > 0 {
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
	if len(fs) > 2*ctMapSize/4 {
		t.Errorf("conntrack holds %d entries after a SYN flood: the flood reached it", len(fs))
	}
}
