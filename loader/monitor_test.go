package loader_test

import (
	"errors"
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
