package overlay

import (
	"context"
	"os"
	"slices"

	"github.com/ebpfnet/ebpfnet/cluster"
	"github.com/ebpfnet/ebpfnet/datapath"
)

// CreateNetwork creates an overlay network for the whole cluster, from any
// host (joined or not): one transaction makes its name and VNI unique and
// checks its subnet overlaps no other overlay network's. Each host makes
// its own part of it when an endpoint first attaches there. o.Host (who
// created it, recorded only) defaults to this machine's hostname.
func (a *Agent) CreateNetwork(ctx context.Context, o cluster.NetworkOptions) (cluster.Network, error) {
	if o.Host == "" {
		o.Host, _ = os.Hostname()
	}
	s, err := a.openStore()
	if err != nil {
		return cluster.Network{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, networkTimeout)
	defer cancel()
	return s.CreateNetwork(ctx, o)
}

// RemoveNetwork removes an overlay network: this host's part first (refused
// while endpoints of this host are on it), then the network from the store
// (refused while any host has an endpoint on it). The other hosts' daemons
// remove their parts once the network has been gone for a while (Run).
func (a *Agent) RemoveNetwork(ctx context.Context, name string) error {
	nets, err := a.inst.Networks()
	if err != nil {
		return err
	}
	if slices.ContainsFunc(nets, func(n datapath.Network) bool { return n.Name == name && n.VNI != 0 }) {
		if err := a.inst.RemoveNetwork(name); err != nil {
			return err
		}
	}
	s, err := a.openStore()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, networkTimeout)
	defer cancel()
	return s.RemoveNetwork(ctx, name)
}

// Networks lists the cluster's overlay networks (read from the store);
// none without a store.
func (a *Agent) Networks(ctx context.Context) ([]cluster.Network, error) {
	if a.cfg.Store == "" {
		return nil, nil
	}
	s, err := a.openStore()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, listTimeout)
	defer cancel()
	return s.Networks(ctx)
}
