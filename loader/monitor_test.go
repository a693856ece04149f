package loader_test

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/maps"
)

func TestMonitorReportsDropsOnlyWhenListenedTo(t *testing.T) {
	f := newFixture(t, true)
	rd, err := f.views.OpenMonitor()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	spoofed := udpFrame(t, macA, macB, netip.MustParseAddr("172.30.0.99"), ipB)
	next := func() (maps.Event, error) {
		rd.SetDeadline(time.Now().Add(200 * time.Millisecond))
		return rd.Read()
	}

	// Nobody listens: nothing is emitted.
	f.run(t, ifA, spoofed)
	if ev, err := next(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("event without a listener: %+v %v", ev, err)
	}

	if err := f.views.EnableMonitor(maps.Monotonic()+time.Minute, 2); err != nil {
		t.Fatal(err)
	}
	f.run(t, ifA, spoofed)
	ev, err := next()
	if err != nil {
		t.Fatal(err)
	}
	want := "udp 172.30.0.99:40000 -> 172.30.0.3:53"
	if ev.Type != "drop" || ev.Reason != "spoofed_ip" || ev.Direction != "from_container" || ev.Ifindex != ifA ||
		ev.Tuple.String() != want || ev.Len != len(spoofed) {
		t.Fatalf("event %+v (%s), want a spoofed_ip drop of %s on ifindex %d", ev, ev.Tuple, want, ifA)
	}

	// Rate limit: 2 per second per CPU, so of 5 more drops at most 2 show
	// (1 if the second does not roll over meanwhile).
	for i := 0; i < 5; i++ {
		f.run(t, ifA, spoofed)
	}
	n := 0
	for {
		if _, err := next(); err != nil {
			break
		}
		n++
	}
	if n > 2 {
		t.Fatalf("%d more events within one second, want the rate limit of 2/s to hold", n)
	}

	// A listener whose lease ran out gets nothing. (A lease of 1ns after boot
	// is over on any machine: "now - 1s" would not be, on a young one.)
	if err := f.views.EnableMonitor(1, 100); err != nil {
		t.Fatal(err)
	}
	f.run(t, ifA, spoofed)
	if ev, err := next(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("event after the lease expired: %+v %v", ev, err)
	}
}

// An IPv6 drop carries its tuple: the fixed header's addresses and next
// header, the ports of TCP and UDP; ICMPv6 has none. Events without IPv6
// are unchanged (TestMonitorReportsDropsOnlyWhenListenedTo).
func TestMonitorIPv6Tuple(t *testing.T) {
	for _, tc := range []struct {
		name, reason, tuple string
		frame               []byte
	}{
		{"tcp", "direct_routing", "tcp [2001:db8::1]:5555 -> [fd00:1::3]:80", frame6(macRt, macUp, srvD6, ip6B, 60, nil, 6, tcp6(5555, 80, tcpSYN, 0))},
		{"udp", "direct_routing", "udp [2001:db8::1]:40000 -> [fd00:1::3]:53", frame6(macRt, macUp, srvD6, ip6B, 60, nil, 17, udp6(40000, 53, "query"))},
		{"icmpv6", "direct_routing", "icmpv6 [2001:db8::1]:0 -> [fd00:1::3]:0", frame6(macRt, macUp, srvD6, ip6B, 60, nil, 58, echo6(7, 1))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newDNAT6Env(t)
			rd, err := e.views.OpenMonitor()
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Close()
			if err := e.views.EnableMonitor(maps.Monotonic()+time.Minute, 100); err != nil {
				t.Fatal(err)
			}
			ret, _ := e.fromUplink(t, tc.frame)
			expectRefused(t, e, ret, tc.reason)
			rd.SetDeadline(time.Now().Add(time.Second))
			ev, err := rd.Read()
			if err != nil {
				t.Fatal(err)
			}
			if ev.Type != "drop" || ev.Reason != tc.reason || ev.Direction != "from_uplink" || ev.Ifindex != e.ifUp ||
				ev.Len != len(tc.frame) || ev.Tuple.String() != tc.tuple || ev.Translated != (maps.Tuple{}) {
				t.Fatalf("event %+v (%s), want a %s drop of %s on ifindex %d", ev, ev.Tuple, tc.reason, tc.tuple, e.ifUp)
			}
			if want := "drop     from_uplink    ifindex " + fmt.Sprintf("%-4d", e.ifUp) + " " + tc.reason + " " + tc.tuple + fmt.Sprintf(" len %d", len(tc.frame)); ev.String() != want {
				t.Errorf("event line %q, want %q", ev.String(), want)
			}
		})
	}
}
