package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/ebpfnet/ebpfnet/cluster"
	"github.com/ebpfnet/ebpfnet/datapath"
	"github.com/ebpfnet/ebpfnet/overlay"
)

// Overlay networks: with "driver": "overlay" the config's network is an
// overlay network of the cluster in clusterStore, made there on the first
// ADD of any host. Addresses come from the cluster, under the lease of the
// host's daemon (ebpfnet daemon --cluster-store ... --advertise-addr ...),
// which also keeps the datapath in step with the other hosts' endpoints.

const driverOverlay = "overlay"

func (c *NetConf) overlay() bool { return c.Driver == driverOverlay }

// agent is this host's part in the config's cluster.
func (c *NetConf) agent(inst *datapath.Instance) *overlay.Agent {
	return overlay.New(inst, overlay.Config{Store: c.ClusterStore, StateDir: inst.StateDir()})
}

// clusterNetworkOptions are the overlay network the config describes.
func (c *NetConf) clusterNetworkOptions() cluster.NetworkOptions {
	o := cluster.DefaultNetworkOptions(c.Name)
	o.Subnet, o.Gateway, o.VNI, o.MTU, o.Internal = c.Subnet, c.Gateway, c.VNI, c.MTU, c.Internal
	o.ServiceCIDRs = c.ServiceCIDRs
	o.IPv6, o.Subnet6, o.Gateway6 = c.IPv6, c.Subnet6, c.Gateway6
	if c.ICC != nil {
		o.ICC = *c.ICC
	}
	return o
}

// ensureClusterNetwork makes the config's overlay network in the cluster
// unless it is there, and checks that one that is agrees with the config.
func ensureClusterNetwork(ctx context.Context, a *overlay.Agent, c *NetConf) error {
	find := func() (*cluster.Network, error) {
		nets, err := a.Networks(ctx)
		if err != nil {
			return nil, err
		}
		if i := slices.IndexFunc(nets, func(n cluster.Network) bool { return n.Name == c.Name }); i >= 0 {
			return &nets[i], nil
		}
		return nil, nil
	}
	n, err := find()
	if err == nil && n == nil {
		_, err = a.CreateNetwork(ctx, c.clusterNetworkOptions())
		if errors.Is(err, cluster.ErrExists) { // another host's first ADD was quicker
			n, err = find()
		}
	}
	if err != nil || n == nil {
		return err
	}
	if c.Subnet != "" {
		if p, perr := netip.ParsePrefix(c.Subnet); perr == nil && p.Masked() != n.Subnet {
			return fmt.Errorf("overlay network %s exists with subnet %s, config says %s", c.Name, n.Subnet, c.Subnet)
		}
	}
	if c.IPv6 != n.Subnet6.IsValid() {
		return fmt.Errorf("overlay network %s exists with IPv6 %v, config says %v", c.Name, n.Subnet6.IsValid(), c.IPv6)
	}
	if c.Subnet6 != "" {
		if p, perr := netip.ParsePrefix(c.Subnet6); perr == nil && p.Masked() != n.Subnet6 {
			return fmt.Errorf("overlay network %s exists with IPv6 subnet %s, config says %s", c.Name, n.Subnet6, c.Subnet6)
		}
	}
	if want, perr := datapath.ParseServiceCIDRs(c.ServiceCIDRs, n.Subnet); perr == nil && !datapath.SamePrefixes(want, n.ServiceCIDRs) {
		return fmt.Errorf("overlay network %s exists with service CIDRs %v, config says %v", c.Name, n.ServiceCIDRs, want)
	}
	if c.VNI != 0 && c.VNI != n.VNI {
		return fmt.Errorf("overlay network %s exists with VNI %d, config says %d", c.Name, n.VNI, c.VNI)
	}
	return nil
}

// addOverlay attaches the container to the config's overlay network with
// an address from the cluster (which a failed attach gives back).
func addOverlay(ctx context.Context, inst *datapath.Instance, req *request, o datapath.AttachOptions) (datapath.Network, datapath.Endpoint, error) {
	a := req.conf.agent(inst)
	defer a.Close()
	if err := ensureClusterNetwork(ctx, a, req.conf); err != nil {
		return datapath.Network{}, datapath.Endpoint{}, refused("overlay network "+req.conf.Name, err)
	}
	ep, err := a.Attach(ctx, o)
	if err != nil {
		return datapath.Network{}, ep, refused("attach", err)
	}
	nets, err := inst.Networks()
	if err != nil {
		return datapath.Network{}, ep, refused("attach", err)
	}
	i := slices.IndexFunc(nets, func(n datapath.Network) bool { return n.Name == ep.Network })
	if i < 0 {
		return datapath.Network{}, ep, refused("attach", fmt.Errorf("network %s vanished", ep.Network))
	}
	return nets[i], ep, nil
}

// releaseOverlay gives the address of ep, removed by DEL, back to the
// cluster. When the store is away the address stays taken until the host's
// daemon rejoins, which deletes the records its host lacks: DEL succeeds
// all the same, as the spec wants for what is already gone.
func releaseOverlay(ctx context.Context, inst *datapath.Instance, conf *NetConf, ep datapath.Endpoint) error {
	a := conf.agent(inst)
	defer a.Close()
	var notReleased *overlay.NotReleasedError
	if err := a.Release(ctx, ep); err != nil && !errors.As(err, &notReleased) {
		return err
	}
	return nil
}
