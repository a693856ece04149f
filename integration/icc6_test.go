package integration

import (
	"net"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
	"github.com/ebpfnet/ebpfnet/maps"
)

// --icc=false over IPv6: containers of the network reach neither each
// other's global nor link-local addresses (even with the neighbour
// entries given by hand, so the packets are sent and dropped as
// icc_disabled), and still reach their gateway.
func TestICCDisabledOverIPv6(t *testing.T) {
	tp := newTopology(t)
	c1, c2 := tp.AddContainer("c1"), tp.AddContainer("c2")
	tp.MustEbpfnet("network", "create", "i6", "--ipv6", "--icc=false", "--subnet", "172.35.0.0/24", "--subnet", "fd00:35::/64")
	tp.MustEbpfnet("attach", "--network", "i6", c1)
	tp.MustEbpfnet("attach", "--network", "i6", c2)
	ep2 := inspect(t, tp, c2)
	mac2, _ := net.ParseMAC(ep2.MAC)
	ll2 := maps.LinkLocal(mac2).String()
	tp.Exec(c1, "ip", "-6", "neigh", "replace", "fd00:35::3", "lladdr", ep2.MAC, "dev", "eth0", "nud", "permanent")
	tp.Exec(c1, "ip", "-6", "neigh", "replace", ll2, "lladdr", ep2.MAC, "dev", "eth0", "nud", "permanent")
	testutil.Serve6(t, tp.Namespace(c2), "c2", ":8080")
	v := tp.Views()
	for _, addr := range []string{"[fd00:35::3]:8080", "[" + ll2 + "%eth0]:8080"} {
		before := dropCount(t, v, "icc_disabled")
		if !testutil.TimesOut(tp.Namespace(c1), addr, time.Second) {
			t.Errorf("c1 reached c2 at %s with --icc=false", addr)
		}
		if dropCount(t, v, "icc_disabled") == before {
			t.Errorf("%s: no icc_disabled drop counted", addr)
		}
	}
	tp.Exec(c1, "ping", "-6", "-c", "1", "-W", "2", "fd00:35::1")
}
