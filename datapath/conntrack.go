package datapath

import (
	"cmp"
	"slices"
	"time"

	"github.com/ebpfnet/ebpfnet/maps"
)

// Ports returns an endpoint's published ports, as `docker port` shows them.
func (i *Instance) Ports(target string) ([]PortMapping, error) {
	var out []PortMapping
	err := i.withStore(func(st *store) error {
		ep, err := findEndpoint(st, target)
		out = ep.Ports
		return err
	})
	return out, err
}

// Flows lists the conntrack entries, both directions, oldest first.
func (i *Instance) Flows() ([]maps.Flow, error) {
	views, err := i.datapath()
	if err != nil {
		return nil, err
	}
	flows, err := views.Flows()
	slices.SortFunc(flows, func(a, b maps.Flow) int {
		return cmp.Or(cmp.Compare(a.Created, b.Created), cmp.Compare(a.Tuple.String(), b.Tuple.String()))
	})
	return flows, err
}

// GCResult is one conntrack garbage collection.
type GCResult struct {
	Expired  int
	Duration time.Duration
}

// GC expires conntrack entries idle for longer than their timeout.
func (i *Instance) GC(t maps.Timeouts) (GCResult, error) {
	views, err := i.datapath()
	if err != nil {
		return GCResult{}, err
	}
	start := time.Now()
	n, err := views.GC(maps.Monotonic(), t)
	return GCResult{Expired: n, Duration: time.Since(start)}, err
}
