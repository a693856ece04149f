package integration

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

// "Connection refused" through IPv6 DNAT: a UDP datagram to a published
// port nothing listens on makes the container's kernel answer port
// unreachable, which the datapath translates back to the host's address
// and port, so the client's connected socket reports ECONNREFUSED (before
// it timed out: the error was dropped as ipv6_not_routed).
func TestIPv6PortUnreachableThroughDNAT(t *testing.T) {
	tp := newTopology(t)
	dualStackUplink(tp)
	c1 := tp.AddContainer("c1")
	tp.MustEbpfnet("network", "create", "d6", "--ipv6", "--subnet", "172.30.0.0/24", "--subnet", "fd00:30::/64")
	tp.MustEbpfnet("attach", "--network", "d6", "-p", "5353:53/udp", c1)
	c, err := testutil.Dial(tp.Namespace(tp.Ext), "udp6", "["+hostIP6+"]:5353", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var readErr error
	for range 3 { // the first datagram may wait for neighbour discovery
		c.Write([]byte("anyone?"))
		c.SetReadDeadline(time.Now().Add(time.Second))
		if _, readErr = c.Read(make([]byte, 64)); errors.Is(readErr, syscall.ECONNREFUSED) {
			return
		}
	}
	t.Fatalf("read after a datagram to an unserved published port: %v, want connection refused", readErr)
}
