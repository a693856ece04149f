package integration

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

// Path MTU discovery through NAT66: a container uploads 1 MiB over TCP to
// a server behind a router (the outside namespace) whose link to it has
// an MTU of 1280 on the router's side (the server's says 1500, so its MSS
// does not hide the bottleneck). The router's Packet Too Big goes to the host's address,
// the masqueraded source; the datapath translates it back into the
// container, whose TCP lowers its segment size. Without that the upload
// stalls in a black hole (Linux does no MTU probing by default).
func TestNAT66PathMTU(t *testing.T) {
	tp := newTopology(t)
	dualStackUplink(tp)
	far := tp.AddContainer("far")
	tp.Exec(tp.Ext, "ip", "link", "add", "tofar", "mtu", "1280", "type", "veth", "peer", "name", "eth0", "netns", far)
	tp.Exec(tp.Ext, "ip", "addr", "add", "2001:db8:77::1/64", "dev", "tofar", "nodad")
	tp.Exec(tp.Ext, "ip", "link", "set", "tofar", "up")
	tp.Exec(tp.Ext, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	tp.Exec(far, "ip", "addr", "add", "2001:db8:77::2/64", "dev", "eth0", "nodad")
	tp.Exec(far, "ip", "link", "set", "eth0", "up")
	tp.Exec(far, "ip", "-6", "route", "add", "default", "via", "2001:db8:77::1")

	c1 := tp.AddContainer("c1")
	tp.MustEbpfnet("network", "create", "d6", "--ipv6", "--subnet", "172.30.0.0/24", "--subnet", "fd00:30::/64")
	tp.MustEbpfnet("attach", "--network", "d6", c1)
	testutil.Serve6(t, tp.Namespace(far), "far", ":8080")
	if r := testutil.MustAsk(t, tp.Namespace(c1), "tcp6", "[2001:db8:77::2]:8080"); r.Source != hostIP6 {
		t.Fatalf("c1 -> far: %+v, want far seeing the host's %s", r, hostIP6)
	}
	v := tp.Views()
	before := inspect(t, tp, c1).Rx.Packets

	const size = 1 << 20
	c, err := testutil.Dial(tp.Namespace(c1), "tcp6", "[2001:db8:77::2]:8080", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	fmt.Fprintf(c, "sink\n")
	if _, err := io.Copy(c, io.LimitReader(zeros{}, size)); err != nil {
		d, _ := v.Drops()
		t.Fatalf("upload through the 1280-byte link: %v (drops %v)", err, d)
	}
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if strings.TrimSpace(string(got)) != fmt.Sprint(size) {
		t.Fatalf("far received %q bytes (%v), want %d", got, err, size)
	}
	if route := tp.Exec(c1, "ip", "-6", "route", "get", "2001:db8:77::2"); !strings.Contains(route, "mtu 1280") {
		t.Errorf("c1 learned no path MTU: %s", route)
	}
	if inspect(t, tp, c1).Rx.Packets == before {
		t.Error("nothing was delivered to c1")
	}
}
