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
		if m == v.m.Conntrack {
			// Up to 512k entries at every scrape: read in batches.
			count = func(*ebpf.Map) (int, error) {
				entries, err := v.snapshot()
				return len(entries), err
			}
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

// tables are the maps whose fill level matters.
func (v *Views) tables() map[string]*ebpf.Map {
	return map[string]*ebpf.Map{
		"networks":       v.m.Networks,
		"endpoints":      v.m.Endpoints,
		"endpoint_ips":   v.m.EndpointIPs,
		"subnets":        v.m.Subnets,
		"endpoint_stats": v.m.EndpointStats,
		"conntrack":      v.m.Conntrack,
		"ports":          v.m.Ports,
		"uplinks":        v.m.Uplinks,
	}
}
