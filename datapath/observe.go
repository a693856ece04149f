package datapath

import (
	"github.com/ebpfnet/ebpfnet/maps"
)

// What observers (stats, metrics, a dashboard) read: the datapath's counters
// and table fill, with the names only the control plane knows.

// Counter is a packet and byte count summed over CPUs.
type Counter = maps.Counter

// MapUsage is how full one datapath map is.
type MapUsage = maps.MapUsage

// EndpointTraffic is what one bridge endpoint sent (Tx) and was delivered
// by the datapath (Rx). ContainerName is its container's name when a front
// end learned it (Endpoint.ContainerName).
type EndpointTraffic struct {
	Network, Name string
	ContainerName string
	Tx, Rx        Counter
}

// EndpointTraffic reads the per-endpoint counters of every bridge endpoint.
func (i *Instance) EndpointTraffic() ([]EndpointTraffic, error) {
	eps, err := i.Endpoints()
	if err != nil {
		return nil, err
	}
	views, err := i.datapath()
	if err != nil {
		return nil, err
	}
	var out []EndpointTraffic
	for _, e := range eps {
		if e.Mode != ModeBridge {
			continue
		}
		tx, rx, err := views.EndpointCounters(e.HostIfindex)
		if err != nil {
			continue // detached between listing and reading
		}
		out = append(out, EndpointTraffic{Network: e.Network, Name: e.Name, ContainerName: e.ContainerName, Tx: tx, Rx: rx})
	}
	return out, nil
}

// NetworkSummary is one network's inventory.
type NetworkSummary struct {
	Name           string
	Endpoints      int
	PublishedPorts int
}

// NetworkSummaries counts endpoints and published ports per network.
func (i *Instance) NetworkSummaries() ([]NetworkSummary, error) {
	nets, err := i.Networks()
	if err != nil {
		return nil, err
	}
	eps, err := i.Endpoints()
	if err != nil {
		return nil, err
	}
	idx := map[string]*NetworkSummary{}
	out := make([]NetworkSummary, len(nets))
	for j, n := range nets {
		out[j].Name = n.Name
		idx[n.Name] = &out[j]
	}
	for _, e := range eps {
		if r := idx[e.Network]; r != nil {
			r.Endpoints++
			r.PublishedPorts += len(e.Ports)
		}
	}
	return out, nil
}

// MapUsage counts the entries of the datapath's hash maps against their
// capacity.
func (i *Instance) MapUsage() ([]MapUsage, error) {
	views, err := i.datapath()
	if err != nil {
		return nil, err
	}
	return views.MapUsage()
}

// NATStats are the masquerade port allocator's counters.
type NATStats struct {
	// AllocFailures counts new flows dropped because no source port was free.
	AllocFailures uint64
	// Retries counts successful allocations by the retries they took; the
	// last bucket, "exhausted", counts failures.
	Retries []NATRetryBucket
}

// NATRetryBucket is one bucket of the allocator's retry histogram.
type NATRetryBucket struct {
	Retries string // "0", "1", "2-3", ..., "exhausted"
	Count   uint64
}

// NATStats reads the allocator's counters.
func (i *Instance) NATStats() (NATStats, error) {
	views, err := i.datapath()
	if err != nil {
		return NATStats{}, err
	}
	s, err := views.NATStats()
	if err != nil {
		return NATStats{}, err
	}
	out := NATStats{AllocFailures: s.AllocFailures}
	for j, n := range s.Retries {
		out.Retries = append(out.Retries, NATRetryBucket{Retries: maps.NATRetryBucketNames()[j], Count: n})
	}
	return out, nil
}
