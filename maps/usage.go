package maps

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// MapUsage is how full one map is.
type MapUsage struct {
	Name     string
	Entries  int
	Capacity int
}

// MapUsage counts the entries of the datapath's hash maps against their
// capacity (arrays are always full and left out).
func (v *Views) MapUsage() ([]MapUsage, error) {
	var out []MapUsage
	for name, m := range v.tables() {
		count := countEntries
		if m == v.m.Conntrack || m == v.m.CTInbound {
			// The biggest tables by far (--ct-map-size), read at every
			// scrape: in batches, one at a time.
			count = v.countFlows
		}
		n, err := count(m)
		if err != nil {
			return nil, fmt.Errorf("count %s: %w", name, err)
		}
		out = append(out, MapUsage{Name: name, Entries: n, Capacity: int(m.MaxEntries())})
	}
	return out, nil
}

func countEntries(m *ebpf.Map) (int, error) {
	var n int
	var key []byte
	it := m.Iterate()
	var val []byte
	if m.Type() == ebpf.PerCPUHash || m.Type() == ebpf.LRUCPUHash {
		var per [][]byte
		for it.Next(&key, &per) {
			n++
		}
		return n, it.Err()
	}
	for it.Next(&key, &val) {
		n++
	}
	return n, it.Err()
}

// tables are the maps whose fill level matters: the hash maps and tries.
// Arrays are always full and a ring buffer has no entries to count.
func (v *Views) tables() map[string]*ebpf.Map {
	out := map[string]*ebpf.Map{}
	for name, m := range v.m.ByName() {
		switch m.Type() {
		case ebpf.Hash, ebpf.LRUHash, ebpf.PerCPUHash, ebpf.LRUCPUHash, ebpf.LPMTrie:
			out[name] = m
		}
	}
	return out
}
