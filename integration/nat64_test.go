package integration

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

// A port published on an IPv4-only network answers IPv6 clients too, as
// Docker's does through docker-proxy, here by stateful NAT64 in the
// datapath (the host's IPv6 forwarding off, its ip6tables FORWARD policy
// DROP, no proxy process): TCP and UDP, the container seeing its
// network's gateway as the client (an IPv4 header cannot carry the IPv6
// address); a bulk transfer both ways (segmentation offload across the
// header swap); ct ls shows the flow; detach forgets it.
func TestNAT64PublishedPort(t *testing.T) {
	tp := newTopology(t)
	dualStackUplink(tp)
	web := tp.AddContainer("web")
	tp.MustEbpfnet("network", "create", "n4", "--subnet", "172.31.0.0/24")
	tp.MustEbpfnet("attach", "--network", "n4", "-p", "9090:90", "-p", "9053:53/udp", "-p", "9091:91", web)
	tp.Exec(tp.Host, "ip6tables", "-P", "FORWARD", "DROP")
	if fwd := strings.TrimSpace(tp.Exec(tp.Host, "sysctl", "-n", "net.ipv6.conf.all.forwarding")); fwd != "0" {
		t.Fatalf("the host forwards IPv6 (%s): the test would not show the datapath's own translation", fwd)
	}
	testutil.Serve(t, tp.Namespace(web), "web", ":90")
	testutil.Serve(t, tp.Namespace(web), "web", ":53")
	ext := tp.Namespace(tp.Ext)

	for range 3 {
		r := testutil.MustAsk(t, ext, "tcp6", "["+hostIP6+"]:9090")
		if r.Server != "web" || r.Source != "172.31.0.1" {
			t.Fatalf("TCP over IPv6 to an IPv4-only container: %+v, want web seeing its gateway 172.31.0.1", r)
		}
	}
	if r := testutil.MustAsk(t, ext, "udp6", "["+hostIP6+"]:9053"); r.Server != "web" || r.Source != "172.31.0.1" {
		t.Fatalf("UDP over IPv6 to an IPv4-only container: %+v", r)
	}
	// IPv4 clients are served as before, their address kept.
	if r := testutil.MustAsk(t, ext, "tcp4", testutil.HostIP+":9090"); r.Server != "web" || r.Source != testutil.ExtIP {
		t.Errorf("over IPv4: %+v", r)
	}
	ct := tp.MustEbpfnet("ct", "ls")
	for _, want := range []string{"nat64", "[" + extIP6 + "]:", "-> [" + hostIP6 + "]:9090", "172.31.0.2:90 -> 172.31.0.1:"} {
		if !strings.Contains(ct, want) {
			t.Errorf("ct ls lacks %q:\n%s", want, ct)
		}
	}

	// Bulk, both ways: 4 MiB to the container (the server's sink), and
	// 4 MiB from it (a writer on 91), each counted whole.
	const size = 4 << 20
	c, err := testutil.Dial(ext, "tcp6", "["+hostIP6+"]:9090", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(c, "sink\n")
	if _, err := io.Copy(c, io.LimitReader(zeros{}, size)); err != nil {
		t.Fatalf("send %d bytes: %v", size, err)
	}
	c.(*net.TCPConn).CloseWrite()
	got, _ := io.ReadAll(c)
	c.Close()
	if strings.TrimSpace(string(got)) != fmt.Sprint(size) {
		t.Errorf("the container received %q bytes, want %d", got, size)
	}
	writer(t, tp.Namespace(web), ":91", size)
	c, err = testutil.Dial(ext, "tcp6", "["+hostIP6+"]:9091", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	n, err := io.Copy(io.Discard, c)
	c.Close()
	if n != size || err != nil {
		t.Errorf("received %d bytes from the container (%v), want %d", n, err, size)
	}

	tp.MustEbpfnet("detach", web)
	if ct := tp.MustEbpfnet("ct", "ls"); strings.Contains(ct, "nat64") {
		t.Errorf("ct ls after detach still shows NAT64 flows:\n%s", ct)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// writer serves size bytes to each TCP connection on addr in ns.
func writer(t *testing.T, ns netnsutil.Namespace, addr string, size int) {
	t.Helper()
	var ln net.Listener
	if err := netnsutil.Do(ns, func() (err error) { ln, err = net.Listen("tcp4", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(20 * time.Second))
			io.Copy(c, bytes.NewReader(make([]byte, size)))
			c.Close()
		}
	}()
}
