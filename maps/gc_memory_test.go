package maps

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/loader"
)

// fillLive fills a conntrack table of size entries with live flow pairs
// (seen at gcNow, so GC expires none) and returns its views.
func fillLive(t testing.TB, size int) *Views { return fill(t, size, gcNow) }

// fill fills a conntrack table with UDP flow pairs last seen at seen.
func fill(t testing.TB, size int, seen time.Duration) *Views {
	t.Helper()
	dp, err := loader.Load(loader.Options{CTMapSize: size})
	if err != nil {
		t.Fatalf("load datapath: %v", err)
	}
	t.Cleanup(dp.Close)
	v := New(&dp.Maps)
	keys := make([]loader.CTKey, 0, size)
	vals := make([]loader.CTEntry, 0, size)
	for i := 0; len(keys) < size; i++ {
		c := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		fwd := Tuple{Proto: ProtoUDP, Src: netip.AddrPortFrom(c, 1000), Dst: netip.AddrPortFrom(srv, 53)}
		rep := Tuple{Proto: ProtoUDP, Src: netip.AddrPortFrom(srv, 53), Dst: netip.AddrPortFrom(host, uint16(i))}
		keys = append(keys, fwd.key(), rep.key())
		vals = append(vals,
			loader.CTEntry{Peer: rep.key(), Kind: uint8(FlowSNAT), LastSeen: uint64(seen), Created: uint64(seen)},
			loader.CTEntry{Peer: fwd.key(), Kind: uint8(FlowSNAT), Reply: 1, LastSeen: uint64(seen), Created: uint64(seen)})
	}
	for i := 0; i < len(keys); i += 4096 {
		end := min(i+4096, len(keys))
		if _, err := v.m.Conntrack.BatchUpdate(keys[i:end], vals[i:end], nil); err != nil {
			t.Fatalf("fill conntrack: %v", err)
		}
	}
	return v
}

// gcBytes is what one GC over the table allocates on the Go heap.
func gcBytes(t testing.TB, v *Views, wantExpired int) uint64 {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	expired, err := v.GC(gcNow, DefaultTimeouts)
	runtime.ReadMemStats(&after)
	if err != nil || expired != wantExpired {
		t.Fatalf("GC: expired %d, %v; want %d", expired, err, wantExpired)
	}
	return after.TotalAlloc - before.TotalAlloc
}

// GC's memory must not grow with the table: the daemon rose from 19 MB to
// ~296 MB during a SYN flood when GC snapshotted all 524k entries. It reads
// and deletes in fixed-size batches.
func TestGCMemoryDoesNotGrowWithTheTable(t *testing.T) {
	small := gcBytes(t, fillLive(t, 4096), 0)
	big := gcBytes(t, fillLive(t, 65536), 0)
	t.Logf("GC allocated %d bytes over 4096 live entries, %d over 65536", small, big)
	if big > 2*small+64<<10 {
		t.Fatalf("GC allocated %d bytes over 65536 live entries, %d over 4096: it grows with the table", big, small)
	}
	// Tables full of expired flows (after a flood): deleted in batches.
	expiring := func(size int) uint64 {
		v := fill(t, size, time.Second)
		n, err := v.countFlows(v.m.Conntrack)
		if err != nil {
			t.Fatal(err)
		}
		b := gcBytes(t, v, n/2)
		if left, _ := v.countFlows(v.m.Conntrack); left != 0 {
			t.Fatalf("%d entries left after expiring all", left)
		}
		return b
	}
	small, big = expiring(32768), expiring(131072)
	t.Logf("GC allocated %d bytes expiring 32768 entries, %d expiring 131072", small, big)
	if big > small+small/2+64<<10 {
		t.Fatalf("GC allocated %d bytes expiring 131072 entries, %d expiring 32768: it grows with the table", big, small)
	}
}

// GC pairs halves that land in different batches.
func TestGCAcrossBatches(t *testing.T) {
	old := ctBatch
	ctBatch = 3
	t.Cleanup(func() { ctBatch = old })
	TestGCStateAwareTimeouts(t)
	TestDeleteFlowsRemovesBothHalves(t)
}

// BenchmarkGCFullTable: one GC over a full default-size table (524288
// entries) of live flows; -benchmem shows its allocations.
func BenchmarkGCFullTable(b *testing.B) {
	v := fillLive(b, loader.DefaultCTMapSize)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := v.GC(gcNow, DefaultTimeouts); err != nil {
			b.Fatal(err)
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapSys)/(1<<20), "heap-sys-MiB")
}
