package maps

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/ebpfnet/ebpfnet/loader"
)

// EmbryonicFlows lists the entries of the embryonic table: inbound TCP
// flows (published ports, nat-unprotected networks) whose client has not
// yet acknowledged the container's answer. The datapath moves a flow into
// conntrack on that acknowledgement; until then a SYN flood churns this
// small LRU table only, never conntrack's established flows. Its entries
// expire by LRU eviction and after loader.CTEmbryonicIdleSeconds idle, in
// the datapath itself: the GC does not walk it.
func (v *Views) EmbryonicFlows() ([]Flow, error) {
	var (
		k   loader.CTKey
		e   loader.CTEntry
		out []Flow
	)
	it := v.m.CTEmbryonic.Iterate()
	for it.Next(&k, &e) {
		f := flowFrom(k, e)
		f.Embryonic = true
		out = append(out, f)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read ct_embryonic: %w", err)
	}
	return out, nil
}

// deleteEmbryonic removes the embryonic entries match selects (both halves
// of each flow). The table is small (loader.CTEmbryonicSize), so it is read
// whole.
func (v *Views) deleteEmbryonic(match func(Flow) bool) (int, error) {
	flows, err := v.EmbryonicFlows()
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, f := range flows {
		if !match(f) {
			continue
		}
		for _, t := range []Tuple{f.Tuple, f.Peer} {
			k := t.key()
			switch err := v.m.CTEmbryonic.Delete(&k); {
			case err == nil:
				n++
			case !errors.Is(err, ebpf.ErrKeyNotExist):
				errs = append(errs, err)
			}
		}
	}
	return n, errors.Join(errs...)
}

// CTCapacity is the size of conntrack (--ct-map-size), of the embryonic
// table and of the inbound datagram table, in entries (two per flow).
func (v *Views) CTCapacity() (conntrack, embryonic, inbound int) {
	return int(v.m.Conntrack.MaxEntries()), int(v.m.CTEmbryonic.MaxEntries()), int(v.m.CTInbound.MaxEntries())
}
