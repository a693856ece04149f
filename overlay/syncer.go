package overlay

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/ebpfnet/ebpfnet/cluster"
	"github.com/ebpfnet/ebpfnet/datapath"
)

// clusterView is what the syncer reads of the cluster: a *cluster.Watcher.
type clusterView interface {
	Status() cluster.Status
	Hosts() []cluster.Host
	Networks() []cluster.Network
	Endpoints(network string) []cluster.Endpoint
	RemoteEndpoints(network string) []cluster.Endpoint
}

// hostDatapath is what the syncer reads and changes of this host's
// datapath: a *datapath.Instance.
type hostDatapath interface {
	SetRemoteNames(map[string][]datapath.RemoteName)
	SyncOverlay(datapath.OverlayView) (datapath.OverlaySync, error)
	Endpoints() ([]datapath.Endpoint, error)
	Networks() ([]datapath.Network, error)
	RemoveNetwork(name string) error
}

// releaser gives back this host's endpoint records: a *cluster.Member.
type releaser interface {
	Name() string
	ReleaseEndpoint(ctx context.Context, network string, ip netip.Addr) error
}

// syncer keeps the datapath's remote endpoints and peer hosts in step with
// the cluster view: after every change the watcher reports, and every
// interval (a network made locally after the view last changed, or a
// failed write, is caught up by then).
type syncer struct {
	metrics  *syncMetrics
	member   releaser // releases this host's records of endpoints that are gone
	inst     hostDatapath
	view     clusterView
	self     string
	log      *slog.Logger
	kick     chan struct{}
	interval time.Duration
	grace    time.Duration    // orphanGrace; shorter in tests
	now      func() time.Time // time.Now; a clock in tests
	// missingSince: this host's endpoint records ("network/ip") whose
	// endpoint was not attached at the last syncs, and since when;
	// goneSince the same for this host's parts of networks the view lacks.
	missingSince, goneSince map[string]time.Time
}

// orphanGrace is how long a record of this host may lack its endpoint
// before the syncer releases it (an attach allocates first and plumbs
// after, which takes well under a second), and how long this host's part of
// a network may be missing from the view before the syncer removes it.
const orphanGrace = 10 * time.Second

func newSyncer(inst hostDatapath, member releaser, log *slog.Logger, m *syncMetrics) *syncer {
	return &syncer{metrics: m, member: member, inst: inst, self: member.Name(), log: log, kick: make(chan struct{}, 1),
		interval: 2 * time.Second, grace: orphanGrace, now: time.Now,
		missingSince: map[string]time.Time{}, goneSince: map[string]time.Time{}}
}

// changed schedules a sync (the watcher's handler: never blocks).
func (o *syncer) changed() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

func (o *syncer) run(ctx context.Context) {
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

// datapathView is the cluster's view as the datapath wants it: the remote
// endpoints and peer hosts for the maps, and the remote endpoints' names,
// per network, for the embedded resolver.
func (o *syncer) datapathView() (datapath.OverlayView, map[string][]datapath.RemoteName) {
	var v datapath.OverlayView
	names := map[string][]datapath.RemoteName{}
	addr := map[string]netip.Addr{}
	for _, h := range o.view.Hosts() {
		addr[h.Name] = h.Addr
		if h.Name == o.self {
			v.Self = h.Addr
		} else {
			v.Peers = append(v.Peers, h.Addr)
		}
	}
	for _, n := range o.view.Networks() {
		for _, e := range o.view.RemoteEndpoints(n.Name) {
			host, ok := addr[e.Host]
			if !ok {
				continue // its host left: the endpoint goes with it
			}
			v.Endpoints = append(v.Endpoints, datapath.RemoteEndpoint{Network: e.Network, IP: e.IP, MAC: e.MAC, Host: host})
			dual := e.IP6.IsValid() && n.Subnet6.Contains(e.IP6)
			if dual { // its IPv6 address too
				v.Endpoints = append(v.Endpoints, datapath.RemoteEndpoint{Network: e.Network, IP: e.IP6, MAC: e.MAC, Host: host})
			}
			if e.Name != "" {
				names[e.Network] = append(names[e.Network], datapath.RemoteName{Name: e.Name, IP: e.IP})
				if dual { // AAAA and its PTR
					names[e.Network] = append(names[e.Network], datapath.RemoteName{Name: e.Name, IP: e.IP6})
				}
			}
		}
	}
	return v, names
}

func (o *syncer) sync() {
	// A view that is not in step with the store (it is away) is not
	// applied: the pinned maps keep carrying the traffic they carried.
	st := o.view.Status()
	o.metrics.viewSynced.Store(st.Synced)
	if !st.Synced {
		return
	}
	v, names := o.datapathView()
	// The names follow the view even if the maps cannot (the next sync
	// retries those): they are in memory and cannot fail.
	o.inst.SetRemoteNames(names)
	res, err := o.inst.SyncOverlay(v)
	if err != nil {
		o.metrics.failures.Add(1)
		o.log.Warn("overlay sync", "err", err)
		return
	}
	o.metrics.applied.Store(o.now().UnixNano())
	o.releaseOrphans()
	o.removeGoneNetworks()
	if res.Written+res.Deleted > 0 {
		o.log.Info("overlay synced", "written", res.Written, "deleted", res.Deleted)
	}
}

// releaseOrphans gives back the addresses of this host's endpoints that are
// gone without a detach (rm, prune, the daemon's reconcile of a dead
// namespace): their records would hold the address and keep the other hosts
// tunnelling to it for as long as this host's lease lives.
func (o *syncer) releaseOrphans() {
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
	now, seen := o.now(), map[string]bool{}
	for _, n := range o.view.Networks() {
		for _, e := range o.view.Endpoints(n.Name) {
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
			if now.Sub(first) < o.grace {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), attachTimeout)
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
func (o *syncer) removeGoneNetworks() {
	inCluster := map[string]bool{}
	for _, n := range o.view.Networks() {
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
	now, seen := o.now(), map[string]bool{}
	for _, n := range local {
		if n.VNI == 0 || inCluster[n.Name] || slices.ContainsFunc(eps, func(e datapath.Endpoint) bool { return e.Network == n.Name }) {
			continue
		}
		k := "network " + n.Name
		seen[k] = true
		if first, ok := o.goneSince[k]; !ok {
			o.goneSince[k] = now
			continue
		} else if now.Sub(first) < o.grace {
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
