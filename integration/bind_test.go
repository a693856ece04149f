package integration

import (
	"errors"
	"net"
	"syscall"
	"testing"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
	"github.com/ebpfnet/ebpfnet/maps"
)

// Issue 12 item 5b. A host process binding a published port fails as it
// would were Docker's proxy holding the port: EADDRINUSE, which servers
// report as "address already in use", not EPERM. Ports not published bind.
// Before the fix the bind4 hook's bare refusal made it EPERM.
func TestHostBindOfPublishedPortIsAddressInUse(t *testing.T) {
	tp := natHost(t)
	c := tp.AddContainer("c")
	tp.MustEbpfnet("attach", "--network", "n1", "-p", "8080:80", "-p", "8053:53/udp", "-p", "127.0.0.1:8081:81", c)
	// A binding whose runtime holds the port itself (Podman through the
	// CNI plugin's runtimeHoldsPorts), written as the plugin would.
	ep := inspect(t, tp, c)
	if err := tp.Views().PutPortEntry(maps.PortEntry{Proto: maps.ProtoTCP, HostPort: 8090, ContainerIP: ep.IP,
		ContainerPort: 90, Ifindex: ep.HostIfindex, RuntimeHeld: true}); err != nil {
		t.Fatal(err)
	}
	host := tp.Namespace(tp.Host)
	for _, tc := range []struct {
		network, addr string
		taken         bool
	}{
		{"tcp4", ":8080", true},
		{"tcp4", hostAddr + ":8080", true},
		{"tcp4", "127.0.0.1:8080", false}, // loopback: only a port published there is taken
		{"tcp4", "127.0.0.1:8081", true},
		{"udp4", ":8053", true},
		{"tcp4", ":8053", false}, // another protocol
		{"tcp4", ":8082", false},
		{"tcp4", ":8090", false}, // held by its runtime
	} {
		err := netnsutil.Do(host, func() error {
			if tc.network == "udp4" {
				c, err := net.ListenPacket(tc.network, tc.addr)
				if err == nil {
					c.Close()
				}
				return err
			}
			l, err := net.Listen(tc.network, tc.addr)
			if err == nil {
				l.Close()
			}
			return err
		})
		switch {
		case tc.taken && !errors.Is(err, syscall.EADDRINUSE):
			t.Errorf("bind %s %s: %v, want EADDRINUSE", tc.network, tc.addr, err)
		case !tc.taken && err != nil:
			t.Errorf("bind %s %s: %v, want success", tc.network, tc.addr, err)
		}
	}
}
