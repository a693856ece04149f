package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/ebpfnet/ebpfnet/cluster"
	"github.com/ebpfnet/ebpfnet/datapath"
)

// overlayTimeout bounds what an attach or detach waits for the store.
const overlayTimeout = 10 * time.Second

// overlayNetwork returns the cluster's overlay network called name, or
// nil when it names a local bridge network, none, or there is no store.
func (g *globals) overlayNetwork(ctx context.Context, inst *datapath.Instance, name string) (*cluster.Store, *cluster.Network, error) {
	if g.clusterStore == "" || name == "" {
		return nil, nil, nil
	}
	local, err := inst.Networks()
	if err != nil {
		return nil, nil, err
	}
	if i := slices.IndexFunc(local, func(n datapath.Network) bool { return n.Name == name }); i >= 0 && local[i].VNI == 0 {
		return nil, nil, nil
	}
	s, err := g.openCluster("overlay networks")
	if err != nil {
		return nil, nil, err
	}
	n, err := s.Network(ctx, name)
	if errors.Is(err, cluster.ErrNotFound) {
		s.Close()
		return nil, nil, nil // the datapath says "not found"
	}
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return s, &n, nil
}

// joined is this host's membership, as its daemon joined it.
func (g *globals) joined(ctx context.Context, s *cluster.Store) (*cluster.Member, error) {
	local, err := cluster.NewFileStore(g.resolvedStateDir())
	if err != nil {
		return nil, err
	}
	host, err := local.Host()
	if err != nil {
		return nil, err
	}
	return s.Joined(ctx, host, local)
}

// overlayAddress is an address taken from the cluster for an endpoint
// about to be attached to an overlay network.
type overlayAddress struct {
	s  *cluster.Store
	m  *cluster.Member
	ep cluster.Endpoint
}

// allocateOverlay takes an address on network for an endpoint name (ip, if
// set, is the one wanted) and makes this host's part of the network if
// missing. It returns nil when network is no overlay network (the caller
// attaches as usual). Close the result when done.
func (g *globals) allocateOverlay(ctx context.Context, inst *datapath.Instance, network, name, ip, mac string) (*overlayAddress, error) {
	ctx, cancel := context.WithTimeout(ctx, overlayTimeout)
	defer cancel()
	s, n, err := g.overlayNetwork(ctx, inst, network)
	if err != nil || n == nil {
		return nil, err
	}
	a := &overlayAddress{s: s}
	req := cluster.EndpointRequest{Name: name, MAC: mac}
	if ip != "" {
		if req.IP, err = netip.ParseAddr(ip); err != nil {
			s.Close()
			return nil, fmt.Errorf("invalid --ip %q: want an IPv4 address", ip)
		}
	}
	if a.m, err = g.joined(ctx, s); err == nil {
		_, err = inst.EnsureOverlayNetwork(overlayNetworkOptions(*n))
	}
	if err == nil {
		a.ep, err = a.m.AllocateEndpoint(ctx, n.Name, req)
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return a, nil
}

// releaseIfUnused gives the address back unless an endpoint holds it (the
// attach failed, or run --rm removed it again).
func (a *overlayAddress) releaseIfUnused(ctx context.Context, inst *datapath.Instance, cause error) error {
	eps, err := inst.Endpoints()
	if err == nil && slices.ContainsFunc(eps, func(e datapath.Endpoint) bool { return e.Network == a.ep.Network && e.IP == a.ep.IP }) {
		return cause
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), overlayTimeout)
	defer cancel()
	if rerr := a.m.ReleaseEndpoint(ctx, a.ep.Network, a.ep.IP); rerr != nil {
		rerr = fmt.Errorf("releasing %s in the cluster failed: %w", a.ep.IP, rerr)
		if cause == nil {
			return rerr
		}
		return fmt.Errorf("%w (and %v)", cause, rerr)
	}
	return cause
}

func (a *overlayAddress) Close() { a.s.Close() }

// attachOverlay attaches to an overlay network with an address from the
// cluster. ok is false when o.Network is no overlay network: the caller
// attaches as usual.
func (g *globals) attachOverlay(ctx context.Context, inst *datapath.Instance, o datapath.AttachOptions) (ep datapath.Endpoint, ok bool, err error) {
	a, err := g.allocateOverlay(ctx, inst, o.Network, o.Name, o.IP, o.MAC)
	if err != nil || a == nil {
		return ep, err != nil, err
	}
	defer a.Close()
	o.IP, o.MAC, o.FromCluster = a.ep.IP.String(), a.ep.MAC, true
	if ep, err = inst.Attach(o); err != nil {
		return ep, true, a.releaseIfUnused(ctx, inst, err)
	}
	return ep, true, nil
}

// overlayNetworkOptions make this host's part of n.
func overlayNetworkOptions(n cluster.Network) datapath.NetworkOptions {
	o := datapath.DefaultNetworkOptions(n.Name)
	o.Subnet, o.Gateway, o.VNI = n.Subnet.String(), n.Gateway.String(), n.VNI
	o.ICC, o.Internal, o.MTU = n.ICC, n.Internal, n.MTU
	return o
}

// releaseOverlay gives a detached endpoint's address on an overlay network
// back to the cluster. With the store away the local record goes anyway:
// the daemon's next join deletes the cluster's record as stale.
func (g *globals) releaseOverlay(ctx context.Context, stderr io.Writer, ep datapath.Endpoint, wasOverlay bool) {
	if !wasOverlay || g.clusterStore == "" {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, overlayTimeout)
	defer cancel()
	err := func() error {
		s, err := g.openCluster("overlay networks")
		if err != nil {
			return err
		}
		defer s.Close()
		m, err := g.joined(ctx, s)
		if err != nil {
			return err
		}
		return m.ReleaseEndpoint(ctx, ep.Network, ep.IP)
	}()
	if err == nil {
		return
	}
	if local, lerr := cluster.NewFileStore(g.resolvedStateDir()); lerr == nil {
		lerr = local.DeleteEndpoint(ep.Network, ep.IP)
		err = errors.Join(err, lerr)
	}
	fmt.Fprintf(stderr, "warning: %s detached, but its address %s on %s stays taken in the cluster until this host's daemon rejoins: %v\n",
		ep.Name, ep.IP, ep.Network, err)
}

// overlaySyncer keeps the datapath's remote endpoints and peer hosts in
// step with the cluster view: after every change the watcher reports, and
// every interval (a network made locally after the view last changed, or a
// failed write, is caught up by then).
type overlaySyncer struct {
	metrics  *syncMetrics
	member   *cluster.Member // releases this host's records of endpoints that are gone
	inst     *datapath.Instance
	w        *cluster.Watcher
	self     string
	log      *slog.Logger
	kick     chan struct{}
	interval time.Duration
	// missingSince: this host's endpoint records ("network/ip") whose
	// endpoint was not attached at the last syncs, and since when;
	// goneSince the same for this host's parts of networks the view lacks.
	missingSince, goneSince map[string]time.Time
}

// orphanGrace is how long a record of this host may lack its endpoint
// before the daemon releases it (an attach allocates first and plumbs
// after, which takes well under a second), and how long this host's part of
// a network may be missing from the view before the daemon removes it.
const orphanGrace = 10 * time.Second

func newOverlaySyncer(inst *datapath.Instance, member *cluster.Member, log *slog.Logger, m *syncMetrics) *overlaySyncer {
	if m == nil {
		m = newSyncMetrics()
	}
	return &overlaySyncer{metrics: m, member: member, inst: inst, self: member.Name(), log: log, kick: make(chan struct{}, 1),
		interval: 2 * time.Second, missingSince: map[string]time.Time{}, goneSince: map[string]time.Time{}}
}

// changed schedules a sync (the watcher's handler: never blocks).
func (o *overlaySyncer) changed() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

func (o *overlaySyncer) run(ctx context.Context) {
	t := time.NewTicker(o.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-o.kick:
		case <-t.C:
		}
		o.sync()
	}
}

// view is the watcher's view as the datapath wants it: the remote
// endpoints and peer hosts for the maps, and the remote endpoints' names,
// per network, for the embedded resolver.
func (o *overlaySyncer) view() (datapath.OverlayView, map[string][]datapath.RemoteName) {
	var v datapath.OverlayView
	names := map[string][]datapath.RemoteName{}
	addr := map[string]netip.Addr{}
	for _, h := range o.w.Hosts() {
		addr[h.Name] = h.Addr
		if h.Name != o.self {
			v.Peers = append(v.Peers, h.Addr)
		}
	}
	for _, n := range o.w.Networks() {
		for _, e := range o.w.RemoteEndpoints(n.Name) {
			host, ok := addr[e.Host]
			if !ok {
				continue // its host left: the endpoint goes with it
			}
			v.Endpoints = append(v.Endpoints, datapath.RemoteEndpoint{Network: e.Network, IP: e.IP, MAC: e.MAC, Host: host})
			if e.Name != "" {
				names[e.Network] = append(names[e.Network], datapath.RemoteName{Name: e.Name, IP: e.IP})
			}
		}
	}
	return v, names
}

func (o *overlaySyncer) sync() {
	// A view that is not in step with the store (it is away) is not
	// applied: the pinned maps keep carrying the traffic they carried.
	st := o.w.Status()
	o.metrics.viewSynced.Store(st.Synced)
	if !st.Synced {
		return
	}
	v, names := o.view()
	// The names follow the view even if the maps cannot (the next sync
	// retries those): they are in memory and cannot fail.
	o.inst.SetRemoteNames(names)
	res, err := o.inst.SyncOverlay(v)
	if err != nil {
		o.metrics.failures.Add(1)
		o.log.Warn("overlay sync", "err", err)
		return
	}
	o.metrics.applied.Store(time.Now().UnixNano())
	o.releaseOrphans()
	o.removeGoneNetworks()
	if res.Written+res.Deleted > 0 {
		o.log.Info("overlay synced", "written", res.Written, "deleted", res.Deleted)
	}
}

// onOverlay says whether ep's network is an overlay network.
func onOverlay(inst *datapath.Instance, ep datapath.Endpoint) bool {
	if ep.Network == "" {
		return false
	}
	nets, err := inst.Networks()
	return err == nil && slices.ContainsFunc(nets, func(n datapath.Network) bool { return n.Name == ep.Network && n.VNI != 0 })
}

func newOverlayCmd(g *globals) *cobra.Command {
	cmd := group(&cobra.Command{Use: "overlay", Short: "Inspect what the datapath knows of overlay networks' other hosts"})
	var lsOut, peersOut *listFlags
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the remote endpoints (containers on other hosts) the datapath tunnels to",
		Args:  cobra.NoArgs,
		RunE: g.withInstance(func(cmd *cobra.Command, _ []string, inst *datapath.Instance) error {
			rs, err := inst.RemoteEndpoints()
			if err != nil {
				return err
			}
			return printList(cmd, lsOut, rs, func(r datapath.RemoteEndpoint) string { return r.IP.String() }, func(w io.Writer) {
				fmt.Fprintln(w, "NETWORK\tIP\tMAC\tHOST")
				for _, r := range rs {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", dash(r.Network), r.IP, r.MAC, r.Host)
				}
			})
		}),
	}
	lsOut = newListFlags(ls.Flags(), true)
	peers := &cobra.Command{
		Use:   "peers",
		Short: "List the peer hosts and the overlay traffic with each (tx: encapsulated to it, rx: from it)",
		Args:  cobra.NoArgs,
		RunE: g.withInstance(func(cmd *cobra.Command, _ []string, inst *datapath.Instance) error {
			ps, err := inst.OverlayPeers()
			if err != nil {
				return err
			}
			return printList(cmd, peersOut, ps, func(p datapath.OverlayPeer) string { return p.Host.String() }, func(w io.Writer) {
				fmt.Fprintln(w, "HOST\tTX_PACKETS\tTX_BYTES\tRX_PACKETS\tRX_BYTES")
				for _, p := range ps {
					fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\n", p.Host, p.TxPackets, p.TxBytes, p.RxPackets, p.RxBytes)
				}
			})
		}),
	}
	peersOut = newListFlags(peers.Flags(), true)
	cmd.AddCommand(ls, peers)
	return cmd
}

// releaseOrphans gives back the addresses of this host's endpoints that are
// gone without a detach (rm, prune, the daemon's reconcile of a dead
// namespace): their records would hold the address and keep the other hosts
// tunnelling to it for as long as this host's lease lives.
func (o *overlaySyncer) releaseOrphans() {
	eps, err := o.inst.Endpoints()
	if err != nil {
		o.log.Warn("overlay: list endpoints", "err", err)
		return
	}
	attached := map[string]bool{}
	for _, e := range eps {
		if e.Mode == datapath.ModeBridge {
			attached[e.Network+"/"+e.IP.String()] = true
		}
	}
	now, seen := time.Now(), map[string]bool{}
	for _, n := range o.w.Networks() {
		for _, e := range o.w.Endpoints(n.Name) {
			k := e.Network + "/" + e.IP.String()
			if e.Host != o.self || attached[k] {
				continue
			}
			seen[k] = true
			first, ok := o.missingSince[k]
			if !ok {
				o.missingSince[k] = now
				continue
			}
			if now.Sub(first) < orphanGrace {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), overlayTimeout)
			err := o.member.ReleaseEndpoint(ctx, e.Network, e.IP)
			cancel()
			if err != nil {
				o.log.Warn("overlay: release the record of an endpoint that is gone", "endpoint", e.String(), "err", err)
				continue
			}
			o.log.Info("overlay: released the record of an endpoint that is gone", "endpoint", e.String())
			delete(o.missingSince, k)
		}
	}
	for k := range o.missingSince {
		if !seen[k] {
			delete(o.missingSince, k)
		}
	}
}

// removeGoneNetworks removes this host's parts of overlay networks the
// cluster no longer has (`network rm` on any host), once no endpoint uses
// them: a network of the same name made again (another VNI, another
// subnet) then starts afresh here too. The same grace as for records: an
// attach makes this host's part as soon as the store has the network,
// which may be before this view does.
func (o *overlaySyncer) removeGoneNetworks() {
	inCluster := map[string]bool{}
	for _, n := range o.w.Networks() {
		inCluster[n.Name] = true
	}
	local, err := o.inst.Networks()
	if err != nil {
		return
	}
	eps, err := o.inst.Endpoints()
	if err != nil {
		return
	}
	now, seen := time.Now(), map[string]bool{}
	for _, n := range local {
		if n.VNI == 0 || inCluster[n.Name] || slices.ContainsFunc(eps, func(e datapath.Endpoint) bool { return e.Network == n.Name }) {
			continue
		}
		k := "network " + n.Name
		seen[k] = true
		if first, ok := o.goneSince[k]; !ok {
			o.goneSince[k] = now
			continue
		} else if now.Sub(first) < orphanGrace {
			continue
		}
		delete(o.goneSince, k)
		if err := o.inst.RemoveNetwork(n.Name); err != nil {
			o.log.Warn("overlay: remove this host's part of a network the cluster no longer has", "network", n.Name, "err", err)
			continue
		}
		o.log.Info("overlay: removed this host's part of a network the cluster no longer has", "network", n.Name)
	}
	for k := range o.goneSince {
		if !seen[k] {
			delete(o.goneSince, k)
		}
	}
}

// syncMetrics export how far the datapath is behind the cluster store.
type syncMetrics struct {
	applied    atomic.Int64 // unix ns of the last view applied
	viewSynced atomic.Bool
	failures   atomic.Uint64

	lag, synced, failed *prometheus.Desc
}

func newSyncMetrics() *syncMetrics {
	return &syncMetrics{
		lag: prometheus.NewDesc("ebpfnet_cluster_sync_lag_seconds",
			"Seconds since the datapath last applied a view of the cluster store that was in step with it (grows while the store is away).", nil, nil),
		synced: prometheus.NewDesc("ebpfnet_cluster_view_synced", "1 while the daemon's view of the cluster store is in step with it.", nil, nil),
		failed: prometheus.NewDesc("ebpfnet_cluster_sync_failures_total", "Views of the cluster store the datapath could not apply.", nil, nil),
	}
}

func (m *syncMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.lag
	ch <- m.synced
	ch <- m.failed
}

func (m *syncMetrics) Collect(ch chan<- prometheus.Metric) {
	if at := m.applied.Load(); at != 0 {
		ch <- prometheus.MustNewConstMetric(m.lag, prometheus.GaugeValue, time.Since(time.Unix(0, at)).Seconds())
	}
	synced := 0.0
	if m.viewSynced.Load() {
		synced = 1
	}
	ch <- prometheus.MustNewConstMetric(m.synced, prometheus.GaugeValue, synced)
	ch <- prometheus.MustNewConstMetric(m.failed, prometheus.CounterValue, float64(m.failures.Load()))
}
