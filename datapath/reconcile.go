package datapath

import (
	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
	"github.com/ebpfnet/ebpfnet/metrics"
)

// Reconcile frees endpoints whose network namespace is gone (the container
// died without a detach). It returns the names it removed.
func (i *Instance) Reconcile() ([]string, error) {
	var gone []string
	err := i.withStore(func(st *store) error {
		eps, err := st.endpoints()
		if err != nil {
			return err
		}
		for _, ep := range eps {
			if ns, err := netnsutil.Resolve(ep.Netns); err == nil && ns.Ino == ep.NetnsIno {
				continue
			}
			if err := i.teardown(ep); err != nil {
				i.log.Warn("reconcile: teardown", "endpoint", ep.Name, "err", err)
			}
			if err := st.deleteEndpoint(ep.Name); err != nil {
				return err
			}
			i.log.Info("reconcile: network namespace vanished, endpoint freed", "endpoint", ep.Name, "netns", ep.Netns, "ip", ep.IP)
			gone = append(gone, ep.Name)
		}
		return nil
	})
	return gone, err
}

// EndpointRefs lists bridge endpoints for per-endpoint metrics.
func (i *Instance) EndpointRefs() ([]metrics.EndpointRef, error) {
	eps, err := i.Endpoints()
	var out []metrics.EndpointRef
	for _, e := range eps {
		if e.Mode == ModeBridge {
			out = append(out, metrics.EndpointRef{Network: e.Network, Name: e.Name, Ifindex: e.HostIfindex})
		}
	}
	return out, err
}

// NetworkRefs counts endpoints and published ports per network.
func (i *Instance) NetworkRefs() ([]metrics.NetworkRef, error) {
	nets, err := i.Networks()
	if err != nil {
		return nil, err
	}
	eps, err := i.Endpoints()
	if err != nil {
		return nil, err
	}
	idx := map[string]*metrics.NetworkRef{}
	out := make([]metrics.NetworkRef, len(nets))
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

// LatencyHistograms exports the stored operation latencies for metrics.
func (i *Instance) LatencyHistograms() (map[string]metrics.LatencyHistogram, error) {
	hs, err := i.Latencies()
	out := make(map[string]metrics.LatencyHistogram, len(hs))
	for op, h := range hs {
		out[op] = metrics.LatencyHistogram{Count: h.Count, Sum: h.Sum, Buckets: h.Cumulative()}
	}
	return out, err
}
