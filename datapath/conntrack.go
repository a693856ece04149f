package datapath

import (
	"cmp"
	"errors"
	"slices"
	"time"

	"github.com/ebpfnet/ebpfnet/maps"
)

// The conntrack vocabulary front ends show; the typed views live in maps.
type (
	// Flow is one direction of a tracked flow.
	Flow = maps.Flow
	// Tuple is one direction of a flow as it appears on the wire.
	Tuple = maps.Tuple
	// Timeouts are the idle timeouts GC applies, by protocol and TCP state.
	Timeouts = maps.Timeouts
)

// DefaultTimeouts are the GC timeouts the daemon uses unless told otherwise.
var DefaultTimeouts = maps.DefaultTimeouts

// Now is the conntrack clock (CLOCK_MONOTONIC, the datapath's
// bpf_ktime_get_ns): a Flow's Age and Idle are measured against it.
func Now() time.Duration { return maps.Monotonic() }

// CheckTimeouts refuses timeouts that would expire live flows at once.
func CheckTimeouts(t Timeouts) error { return t.Validate() }

// Flows lists the conntrack entries, both directions, IPv4's and IPv6's,
// oldest first.
func (i *Instance) Flows() ([]Flow, error) {
	views, err := i.datapath()
	if err != nil {
		return nil, err
	}
	flows, err := views.Flows()
	if err != nil {
		return nil, err
	}
	// Half-open inbound flows too, as conntrack -L shows SYN_RECV ones.
	embryonic, err := views.EmbryonicFlows()
	flows = append(flows, embryonic...)
	// NAT66's (IPv6 masquerade) flows, in a table of their own.
	flows6, err6 := views.Flows6()
	flows = append(flows, flows6...)
	err = errors.Join(err, err6)
	// Each tuple formatted once, not in every comparison: with 100k flows
	// that was seconds of `nat ls`. Sorted by index: a Flow is too big to
	// move around in the sort.
	keys := make([]string, len(flows))
	order := make([]int, len(flows))
	for j, f := range flows {
		keys[j], order[j] = f.Tuple.String(), j
	}
	slices.SortFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(flows[a].Created, flows[b].Created), cmp.Compare(keys[a], keys[b]))
	})
	sorted := make([]Flow, len(flows))
	for j, k := range order {
		sorted[j] = flows[k]
	}
	return sorted, err
}

// GCResult is one conntrack garbage collection.
type GCResult struct {
	Expired  int
	Duration time.Duration
}

// GC expires conntrack entries idle for longer than their timeout.
func (i *Instance) GC(t Timeouts) (GCResult, error) {
	if err := CheckTimeouts(t); err != nil {
		return GCResult{}, err
	}
	views, err := i.datapath()
	if err != nil {
		return GCResult{}, err
	}
	start := time.Now()
	n, err := views.GC(maps.Monotonic(), t)
	return GCResult{Expired: n, Duration: time.Since(start)}, err
}

// natStrain reads the count of NAT port allocations that needed half the
// retry budget or failed: when it grows, GC should run early.
func (i *Instance) natStrain() (uint64, error) {
	views, err := i.datapath()
	if err != nil {
		return 0, err
	}
	s, err := views.NATStats()
	return s.Strained(), err
}

// ProtocolName writes an IP protocol number as ebpfnet does everywhere.
func ProtocolName(p uint8) string { return maps.ProtoName(p) }
