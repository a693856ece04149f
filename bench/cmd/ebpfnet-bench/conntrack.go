package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/cilium/ebpf"

	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

// conntrackScale: an ebpfnet sandbox of its own whose conntrack table
// (--ct-map-size) is filled to the brim with live flows, then: the table's
// memory, how long one GC pass over it takes, and the new-connection rate
// through the published port with and without GC running back to back.
// Its own sandbox, so the other rows keep the default table size.
func (b *bench) conntrackScale(ctx context.Context) {
	c := b.cfg
	if !slicesContains(c.modes, "ebpfnet") || ctx.Err() != nil {
		return
	}
	if b.ctEnv == nil {
		e := newEnv("ebpfnet", b.envs[0].prefix[:len(b.envs[0].prefix)-1]+"k", c, b.r, b.logf)
		e.globalFlags = []string{"--ct-map-size", strconv.Itoa(c.ctEntries)}
		b.ctEnv = e
		b.logf("setup ebpfnet with a %d-entry conntrack table (namespaces %s-*)", c.ctEntries, e.prefix)
		if err := e.setup(ctx); err != nil {
			e.broken = fmt.Errorf("setup: %w", err)
			b.note(fmt.Sprintf("conntrack scale: %v", e.broken))
		}
	}
	e := b.ctEnv
	n := c.ctEntries
	if e.broken == nil {
		if err := fillConntrack(e.pinRoot, n); err != nil {
			e.broken = fmt.Errorf("fill conntrack: %w", err)
		}
	}
	b.measure(e, "ct_memory", n, mibMetric, func() (metrics, json.RawMessage, error) {
		_, byName, err := pinnedMapBytes(e.pinRoot)
		return metrics{"mib": float64(byName["conntrack"]) / (1 << 20)}, nil, err
	})
	b.measure(e, "ct_gc", n, msMetric, func() (metrics, json.RawMessage, error) {
		d, err := e.gcPass(ctx)
		return metrics{"ms": ms(d)}, nil, err
	})
	saved := c.connTime
	c.connTime = c.connScaleTime
	defer func() { c.connTime = saved }()
	b.measure(e, "ct_connrate", n, connMetrics, func() (metrics, json.RawMessage, error) {
		if err := fillConntrack(e.pinRoot, n); err != nil { // full again
			return nil, nil, err
		}
		return e.connrate(ctx, e.ingress())
	})
	b.measure(e, "ct_connrate_gc", n, append([]metricDef{{"gc_passes", "passes"}}, connMetrics...), func() (metrics, json.RawMessage, error) {
		if err := fillConntrack(e.pinRoot, n); err != nil {
			return nil, nil, err
		}
		gcCtx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		passes := 0
		var gcErr error
		wg.Add(1)
		go func() { // GC back to back while the connections are made
			defer wg.Done()
			for gcCtx.Err() == nil {
				if _, err := e.gcPass(gcCtx); err != nil {
					if gcCtx.Err() == nil {
						gcErr = err
					}
					return
				}
				passes++
			}
		}()
		m, raw, err := e.connrate(ctx, e.ingress())
		stop()
		wg.Wait()
		if err == nil && gcErr != nil {
			err = fmt.Errorf("gc: %w", gcErr)
		}
		if err == nil && passes == 0 {
			err = errors.New("no GC pass completed while the connections ran")
		}
		if m != nil {
			m["gc_passes"] = float64(passes)
		}
		return m, raw, err
	})
	// Control: the machine has 2 CPUs, the client and the server use one
	// each, so anything running beside them slows them down. The same run
	// beside a busy loop, unpinned like the GC, separates that from what
	// GC does to the datapath's maps.
	b.measure(e, "ct_connrate_busy", n, connMetrics, func() (metrics, json.RawMessage, error) {
		busy, err := b.r.start("busy loop", "sh", "-c", "while :; do :; done")
		if err != nil {
			return nil, nil, err
		}
		defer b.r.stop(busy)
		return e.connrate(ctx, e.ingress())
	})
}

var gcOutRe = regexp.MustCompile(`expired (\d+) flows in (\S+)`)

// gcPass runs `ebpfnet ct gc` and returns the duration it reports for the
// pass itself (without process start).
func (e *env) gcPass(ctx context.Context) (time.Duration, error) {
	_, out, err := e.ebpfnet(ctx, "ct", "gc")
	if err != nil {
		return 0, err
	}
	m := gcOutRe.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("unexpected ebpfnet ct gc output %q", out)
	}
	return time.ParseDuration(m[2])
}

// fillConntrack writes live UDP flow pairs (both directions, seen now, so
// GC expires none) into the instance's pinned conntrack table until it
// holds n entries, overwriting the fill of an earlier call. The addresses
// (10.0.0.0/8 to 198.51.100.1) are not the sandbox's: no packet meets them.
func fillConntrack(pinRoot string, n int) error {
	m, err := ebpf.LoadPinnedMap(pinRoot+"/maps/conntrack", nil)
	if err != nil {
		return err
	}
	defer m.Close()
	if int(m.MaxEntries()) < n {
		return fmt.Errorf("conntrack table has %d entries, want %d", m.MaxEntries(), n)
	}
	srv := maps.BE32(netip.MustParseAddr("198.51.100.1"))
	now := uint64(maps.Monotonic())
	const batch = 4096
	keys := make([]loader.CTKey, 0, batch)
	vals := make([]loader.CTEntry, 0, batch)
	flush := func() error {
		if len(keys) == 0 {
			return nil
		}
		_, err := m.BatchUpdate(keys, vals, nil)
		keys, vals = keys[:0], vals[:0]
		return err
	}
	for i := 0; i < n/2; i++ {
		c := maps.BE32(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
		fwd := loader.CTKey{Saddr: c, Daddr: srv, Sport: maps.BE16(1000), Dport: maps.BE16(53), Proto: maps.ProtoUDP}
		pub := maps.BE32(netip.AddrFrom4([4]byte{11, byte(i >> 16), byte(i >> 8), byte(i)}))
		rep := loader.CTKey{Saddr: srv, Daddr: pub, Sport: maps.BE16(53), Dport: maps.BE16(1000), Proto: maps.ProtoUDP}
		keys = append(keys, fwd, rep)
		vals = append(vals,
			loader.CTEntry{Peer: rep, Kind: uint8(maps.FlowSNAT), LastSeen: now, Created: now},
			loader.CTEntry{Peer: fwd, Kind: uint8(maps.FlowSNAT), Reply: 1, LastSeen: now, Created: now})
		if len(keys) >= batch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}
