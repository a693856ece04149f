package maps

import (
	"net/netip"
	"testing"

	"github.com/ebpfnet/ebpfnet/loader"
)

// A -p 20000-40000 range, TCP and UDP, goes in and out in batches: every
// binding lands with its value, and deleting skips bindings already gone.
func TestPortEntriesInBatches(t *testing.T) {
	dp, err := loader.Load(loader.Options{CTMapSize: 1024})
	if err != nil {
		t.Fatalf("load datapath: %v", err)
	}
	defer dp.Close()
	v := New(&dp.Maps)
	ctr := netip.MustParseAddr("172.30.0.2")
	var bs []PortEntry
	for _, proto := range []uint8{ProtoTCP, ProtoUDP} {
		for p := 20000; p <= 40000; p++ {
			bs = append(bs, PortEntry{Proto: proto, HostPort: uint16(p), ContainerIP: ctr, ContainerPort: uint16(p), Ifindex: 7, RuntimeHeld: p == 30000})
		}
	}
	if err := v.PutPortEntries(bs); err != nil {
		t.Fatal(err)
	}
	got, err := v.PortEntries()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(bs) {
		t.Fatalf("%d bindings in the map, want %d", len(got), len(bs))
	}
	held := 0
	for _, b := range got {
		if b.ContainerPort != b.HostPort || b.ContainerIP != ctr || b.Ifindex != 7 {
			t.Fatalf("binding %+v", b)
		}
		if b.RuntimeHeld {
			held++
		}
	}
	if held != 2 {
		t.Errorf("%d runtime-held bindings, want 2 (30000/tcp and /udp)", held)
	}

	// Some already gone (a crash half way through a detach): the rest go.
	if err := v.DeletePortEntry(bs[100]); err != nil {
		t.Fatal(err)
	}
	if err := v.DeletePortEntry(bs[len(bs)-1]); err != nil {
		t.Fatal(err)
	}
	if err := v.DeletePortEntries(bs); err != nil {
		t.Fatal(err)
	}
	if got, _ := v.PortEntries(); len(got) != 0 {
		t.Fatalf("%d bindings left after delete", len(got))
	}
}
