package overlay

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/ebpfnet/ebpfnet/cluster"
	"github.com/ebpfnet/ebpfnet/datapath"
)

// network returns the cluster's overlay network called name, or nil when
// it names a local bridge network, none, or there is no store.
func (a *Agent) network(ctx context.Context, name string) (*cluster.Network, error) {
	if a.cfg.Store == "" || name == "" {
		return nil, nil
	}
	local, err := a.inst.Networks()
	if err != nil {
		return nil, err
	}
	if i := slices.IndexFunc(local, func(n datapath.Network) bool { return n.Name == name }); i >= 0 && local[i].VNI == 0 {
		return nil, nil
	}
	s, err := a.openStore()
	if err != nil {
		return nil, err
	}
	n, err := s.Network(ctx, name)
	if errors.Is(err, cluster.ErrNotFound) {
		return nil, nil // the datapath says "not found"
	}
	if err != nil {
		return nil, err
	}
	return &n, nil
}

// joined is this host's membership as its daemon joined it (the name it
// recorded in the state directory): allocations go under the daemon's lease.
func (a *Agent) joined(ctx context.Context) (*cluster.Member, error) {
	s, err := a.openStore()
	if err != nil {
		return nil, err
	}
	local, err := a.localStore()
	if err != nil {
		return nil, err
	}
	host, err := local.Host()
	if err != nil {
		return nil, err
	}
	return s.Joined(ctx, host, local)
}

// AddressRequest asks for an address on a network for an endpoint about to
// be attached.
type AddressRequest struct {
	Network string
	Name    string // endpoint name, for the other hosts' DNS
	IP, MAC string // wanted, if set
	IP6     string // wanted on a dual-stack network: the twin of the IPv4 address to take
}

// Address is an address the cluster handed out for an endpoint of this
// host, recorded in the store under the lease of the host's daemon.
type Address struct {
	IP  netip.Addr
	IP6 netip.Addr // on a dual-stack network, IP's twin
	MAC string

	agent  *Agent
	member *cluster.Member
	ep     cluster.Endpoint
}

// Allocate takes an address on r.Network from the cluster and makes this
// host's part of the network if it is missing. It returns nil when
// r.Network is no overlay network (a local network, none, or no store):
// the caller attaches as usual. Pass the address to the datapath with
// FromCluster set, then call ReleaseUnlessUsed if attaching failed.
func (a *Agent) Allocate(ctx context.Context, r AddressRequest) (*Address, error) {
	ctx, cancel := context.WithTimeout(ctx, attachTimeout)
	defer cancel()
	n, err := a.network(ctx, r.Network)
	if err != nil || n == nil {
		return nil, err
	}
	req := cluster.EndpointRequest{Name: r.Name, MAC: r.MAC}
	if r.IP != "" {
		if req.IP, err = netip.ParseAddr(r.IP); err != nil {
			return nil, fmt.Errorf("invalid --ip %q: want an IPv4 address", r.IP)
		}
	}
	if r.IP6 != "" {
		if req.IP6, err = netip.ParseAddr(r.IP6); err != nil || !req.IP6.Is6() || req.IP6.Zone() != "" {
			return nil, fmt.Errorf("invalid --ip6 %q: want an IPv6 address", r.IP6)
		}
	}
	m, err := a.joined(ctx)
	if err == nil {
		_, err = a.inst.EnsureOverlayNetwork(networkOptions(*n))
	}
	var ep cluster.Endpoint
	if err == nil {
		ep, err = m.AllocateEndpoint(ctx, n.Name, req)
	}
	if err != nil {
		return nil, err
	}
	return &Address{IP: ep.IP, IP6: ep.IP6, MAC: ep.MAC, agent: a, member: m, ep: ep}, nil
}

// IP6String is the IPv6 address as datapath.AttachOptions.IP6 takes it
// (empty on an IPv4-only network).
func (ad *Address) IP6String() string {
	if !ad.IP6.IsValid() {
		return ""
	}
	return ad.IP6.String()
}

// ReleaseUnlessUsed gives the address back unless an endpoint holds it (the
// attach failed, or run --rm removed the endpoint again) and returns cause,
// with the release's failure if any.
func (ad *Address) ReleaseUnlessUsed(ctx context.Context, cause error) error {
	eps, err := ad.agent.inst.Endpoints()
	if err == nil && slices.ContainsFunc(eps, func(e datapath.Endpoint) bool { return e.Network == ad.ep.Network && e.IP == ad.ep.IP }) {
		return cause
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), attachTimeout)
	defer cancel()
	if rerr := ad.member.ReleaseEndpoint(ctx, ad.ep.Network, ad.ep.IP); rerr != nil {
		rerr = fmt.Errorf("releasing %s in the cluster failed: %w", ad.ep.IP, rerr)
		if cause == nil {
			return rerr
		}
		return fmt.Errorf("%w (and %v)", cause, rerr)
	}
	return cause
}

// Attach attaches an endpoint as datapath.Instance.Attach does; on an
// overlay network with an address from the cluster (Allocate), which a
// failed attach gives back.
func (a *Agent) Attach(ctx context.Context, o datapath.AttachOptions) (datapath.Endpoint, error) {
	ad, err := a.Allocate(ctx, AddressRequest{Network: o.Network, Name: o.Name, IP: o.IP, IP6: o.IP6, MAC: o.MAC})
	if err != nil {
		return datapath.Endpoint{}, err
	}
	if ad == nil {
		return a.inst.Attach(o)
	}
	o.IP, o.IP6, o.MAC, o.FromCluster = ad.IP.String(), ad.IP6String(), ad.MAC, true
	ep, err := a.inst.Attach(o)
	if err != nil {
		return ep, ad.ReleaseUnlessUsed(ctx, err)
	}
	return ep, nil
}

// NotReleasedError says an endpoint on an overlay network was detached but
// its address could not be given back to the cluster (the store is away):
// the local record went, and the cluster's goes when this host's daemon
// next joins (it deletes records its host lacks).
type NotReleasedError struct {
	Endpoint datapath.Endpoint
	Err      error
}

func (e *NotReleasedError) Error() string {
	return fmt.Sprintf("%s detached, but its address %s on %s stays taken in the cluster until this host's daemon rejoins: %v",
		e.Endpoint.Name, e.Endpoint.IP, e.Endpoint.Network, e.Err)
}

func (e *NotReleasedError) Unwrap() error { return e.Err }

// Detach detaches an endpoint as datapath.Instance.Detach does and, on an
// overlay network, gives its address back to the cluster. If that fails
// the endpoint is detached all the same and the error is a
// *NotReleasedError, which a caller reports as a warning.
func (a *Agent) Detach(ctx context.Context, target string) (datapath.Endpoint, error) {
	ep, err := a.inst.Detach(target)
	if err != nil {
		return ep, err
	}
	return ep, a.Release(ctx, ep)
}

// Release gives the address of ep, an endpoint that was detached, back to
// the cluster if its network is an overlay network (with the store away,
// the local record goes and a *NotReleasedError says so).
func (a *Agent) Release(ctx context.Context, ep datapath.Endpoint) error {
	if !onOverlay(a.inst, ep) || a.cfg.Store == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, attachTimeout)
	defer cancel()
	err := func() error {
		m, err := a.joined(ctx)
		if err != nil {
			return err
		}
		return m.ReleaseEndpoint(ctx, ep.Network, ep.IP)
	}()
	if err == nil {
		return nil
	}
	if local, lerr := a.localStore(); lerr == nil {
		lerr = local.DeleteEndpoint(ep.Network, ep.IP)
		err = errors.Join(err, lerr)
	}
	return &NotReleasedError{Endpoint: ep, Err: err}
}

// onOverlay says whether ep's network is an overlay network.
func onOverlay(inst *datapath.Instance, ep datapath.Endpoint) bool {
	if ep.Network == "" {
		return false
	}
	nets, err := inst.Networks()
	return err == nil && slices.ContainsFunc(nets, func(n datapath.Network) bool { return n.Name == ep.Network && n.VNI != 0 })
}

// networkOptions make this host's part of n.
func networkOptions(n cluster.Network) datapath.NetworkOptions {
	o := datapath.DefaultNetworkOptions(n.Name)
	o.Subnet, o.Gateway, o.VNI = n.Subnet.String(), n.Gateway.String(), n.VNI
	if n.Subnet6.IsValid() {
		o.IPv6, o.Subnet6, o.Gateway6 = true, n.Subnet6.String(), n.Gateway6.String()
	}
	o.ICC, o.Internal, o.MTU = n.ICC, n.Internal, n.MTU
	for _, p := range n.ServiceCIDRs {
		o.ServiceCIDRs = append(o.ServiceCIDRs, p.String())
	}
	return o
}

// ClusterNetwork is the cluster's overlay network called name
// (cluster.ErrNotFound if there is none; ErrNoStore without a store).
func (a *Agent) ClusterNetwork(ctx context.Context, name string) (cluster.Network, error) {
	s, err := a.openStore()
	if err != nil {
		return cluster.Network{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, listTimeout)
	defer cancel()
	return s.Network(ctx, name)
}

// EnsureLocalPart makes this host's part of the cluster's overlay network
// name unless it exists, and returns it.
func (a *Agent) EnsureLocalPart(ctx context.Context, name string) (datapath.Network, error) {
	n, err := a.ClusterNetwork(ctx, name)
	if err != nil {
		return datapath.Network{}, err
	}
	return a.inst.EnsureOverlayNetwork(networkOptions(n))
}

// ReleaseAddress gives ip on the overlay network back to the cluster
// (a runtime's IPAM release: the endpoint, if there was one, is gone).
func (a *Agent) ReleaseAddress(ctx context.Context, network string, ip netip.Addr) error {
	ctx, cancel := context.WithTimeout(ctx, attachTimeout)
	defer cancel()
	m, err := a.joined(ctx)
	if err != nil {
		return err
	}
	return m.ReleaseEndpoint(ctx, network, ip)
}
