// Package overlay is a host's part in the overlay networks of a cluster:
// it joins the cluster (package cluster, etcd) as a host, keeps the
// datapath's remote endpoints, peer hosts and remote names in step with
// the cluster's view (Run), attaches and detaches endpoints on overlay
// networks with addresses from the cluster, and creates and removes
// overlay networks.
//
// Every front end uses it the same way: the process that serves the host
// (ebpfnet daemon, ebpfnet docker-plugin) calls Join and Run; short-lived
// processes (the CLI's attach, run, detach, network create/rm/ls) make an
// Agent for one operation and never join: they allocate under the lease of
// the host their daemon joined (the name it recorded in the state
// directory). It imports cluster and datapath, never a front end.
package overlay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebpfnet/ebpfnet/cluster"
	"github.com/ebpfnet/ebpfnet/datapath"
)

// Config says where the cluster store is and where this host's state lives.
type Config struct {
	// Store is the cluster store, etcd://HOST:PORT[,HOST:PORT...]
	// (cluster.ParseStoreURL). Empty: no cluster, so no overlay networks:
	// Attach and Detach work on local networks only, Networks is empty.
	Store string
	// StateDir is the datapath instance's state directory: the local
	// record of this host's endpoints in the cluster and the name its
	// daemon joined as are kept there.
	StateDir string
	// Log gets the agent's and the store client's messages (nil: none).
	Log *slog.Logger
	// Dialer, if set, makes the store's connections (tests dial from a
	// network namespace).
	Dialer func(ctx context.Context, addr string) (net.Conn, error)
}

// ErrNoStore is returned by operations that need the cluster store when
// Config.Store is empty.
var ErrNoStore = errors.New("no cluster store")

// Timeouts of the operations on the store. An attach or detach waits for it
// at most attachTimeout; creating or removing a network networkTimeout.
const (
	attachTimeout  = 10 * time.Second
	networkTimeout = 30 * time.Second
	listTimeout    = 10 * time.Second
)

// Agent is a host's part in the cluster. Its methods may be called from
// several goroutines.
type Agent struct {
	cfg  Config
	inst *datapath.Instance
	log  *slog.Logger

	mu     sync.Mutex
	store  *cluster.Store  // opened on first use
	member *cluster.Member // set by Join
	local  *cluster.FileStore

	metrics *syncMetrics
}

// New makes an agent for the datapath instance inst. inst may be nil for
// an agent that only creates or lists the cluster's networks. Nothing is
// connected until an operation needs the store; Close releases it.
func New(inst *datapath.Instance, cfg Config) *Agent {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Agent{cfg: cfg, inst: inst, log: log, metrics: newSyncMetrics()}
}

// HasStore says whether the agent has a cluster store (Config.Store).
func (a *Agent) HasStore() bool { return a.cfg.Store != "" }

// openStore connects to the store once (the connection is lazy: a store
// that is down fails the requests, not this).
func (a *Agent) openStore() (*cluster.Store, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.store != nil {
		return a.store, nil
	}
	if a.cfg.Store == "" {
		return nil, ErrNoStore
	}
	eps, err := cluster.ParseStoreURL(a.cfg.Store)
	if err != nil {
		return nil, err
	}
	s, err := cluster.Open(cluster.Config{Endpoints: eps, Log: a.cfg.Log, Dialer: a.cfg.Dialer})
	if err != nil {
		return nil, err
	}
	a.store = s
	return s, nil
}

// localStore is this host's record of its endpoints in the cluster.
func (a *Agent) localStore() (*cluster.FileStore, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.local != nil {
		return a.local, nil
	}
	l, err := cluster.NewFileStore(a.stateDir())
	if err != nil {
		return nil, err
	}
	a.local = l
	return l, nil
}

func (a *Agent) stateDir() string {
	if a.cfg.StateDir != "" {
		return a.cfg.StateDir
	}
	if a.inst != nil {
		return a.inst.StateDir()
	}
	return datapath.DefaultConfig().StateDir
}

// Close stops renewing the lease, if Join took one, without revoking it
// (a restart within the TTL is invisible to the other hosts; Leave revokes),
// and closes the connection to the store. Call it after Run returned.
func (a *Agent) Close() {
	a.mu.Lock()
	m, s := a.member, a.store
	a.member, a.store = nil, nil
	a.mu.Unlock()
	if m != nil {
		m.Close()
	}
	if s != nil {
		s.Close()
	}
}

// HostOptions join this host to the cluster.
type HostOptions struct {
	// Addr is the host's underlay address: the other hosts tunnel overlay
	// traffic to it.
	Addr netip.Addr
	// Name of the host in the cluster; the address when empty.
	Name string
	// TTL of the host's lease (cluster.DefaultTTL when 0): how long the
	// cluster keeps the host and its endpoints once it stops renewing.
	TTL time.Duration
}

// Join registers this host under a new lease, re-registering the endpoints
// of its local record and deleting the cluster's records of this host the
// local record lacks, and keeps the lease alive until Close or Leave. While
// the store is unreachable it retries (the local datapath keeps working
// meanwhile) until it succeeds or ctx ends. It records the host's name in
// the state directory, for the host's other processes (Attach).
func (a *Agent) Join(ctx context.Context, o HostOptions) error {
	if o.Name == "" {
		o.Name = o.Addr.String()
	}
	s, err := a.openStore()
	if err != nil {
		return err
	}
	local, err := a.localStore()
	if err != nil {
		return fmt.Errorf("cluster local store: %w", err)
	}
	mac := uplinkMAC(o.Addr)
	var m *cluster.Member
	for backoff := time.Second; ; backoff = min(2*backoff, 10*time.Second) {
		var res cluster.ReconcileResult
		m, res, err = s.Join(ctx, cluster.HostOptions{Name: o.Name, Addr: o.Addr, MAC: mac, TTL: o.TTL, Local: local})
		if err == nil {
			a.log.Info("joined cluster", "store", s.Name(), "host", o.Name, "addr", o.Addr, "lease", m.Lease(),
				"registered", len(res.Registered), "stale_deleted", len(res.Stale), "conflicts", len(res.Conflicts))
			break
		}
		a.log.Warn("cluster join failed; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
	}
	a.mu.Lock()
	old := a.member
	a.member = m
	a.mu.Unlock()
	if old != nil {
		old.Close()
	}
	if err := local.SetHost(o.Name); err != nil {
		a.log.Error("cluster local store", "err", err)
	}
	return nil
}

// ErrNotJoined is returned by Run and Leave before Join.
var ErrNotJoined = errors.New("this host has not joined the cluster")

// Run keeps the datapath in step with the cluster until ctx ends: it
// watches the store and writes the remote endpoints of the local overlay
// networks and the peer hosts into the maps (and the remote endpoints'
// names into the embedded DNS) after every change and every 2 s, releases
// this host's records of endpoints that went without a detach, and removes
// this host's parts of networks the cluster no longer has. A view that is
// not in step with the store (it is away) is not applied: the pinned maps
// keep carrying traffic. Run needs Join and an instance.
func (a *Agent) Run(ctx context.Context) error {
	a.mu.Lock()
	m, s := a.member, a.store
	a.mu.Unlock()
	if m == nil {
		return ErrNotJoined
	}
	if a.inst == nil {
		return errors.New("overlay: Run needs a datapath instance")
	}
	sy := newSyncer(a.inst, m, a.log, a.metrics)
	log := a.log
	w := s.NewWatcher(m.Name(), func(e cluster.Event) {
		sy.changed()
		switch {
		case e.Host != nil:
			log.Info("cluster host "+string(e.Type), "host", e.Host.Name, "addr", e.Host.Addr)
		case e.Network != nil:
			log.Info("overlay network "+string(e.Type), "network", e.Network.Name, "subnet", e.Network.Subnet, "vni", e.Network.VNI)
		case e.Endpoint != nil && e.Remote:
			log.Info("remote endpoint "+string(e.Type), "network", e.Endpoint.Network, "ip", e.Endpoint.IP, "mac", e.Endpoint.MAC, "host", e.Endpoint.Host)
		}
	})
	sy.view = w
	syncDone := make(chan struct{})
	go func() { sy.run(ctx); close(syncDone) }()
	err := w.Run(ctx)
	<-syncDone
	return err
}

// Leave revokes the lease Join took: the host and all its endpoint records
// leave the cluster at once (the other hosts stop tunnelling to them), where
// Close lets them expire with the TTL.
func (a *Agent) Leave(ctx context.Context) error {
	a.mu.Lock()
	m := a.member
	a.member = nil
	a.mu.Unlock()
	if m == nil {
		return ErrNotJoined
	}
	return m.Leave(ctx)
}

// Metrics export how far the datapath is behind the cluster store:
// ebpfnet_cluster_sync_lag_seconds, ebpfnet_cluster_view_synced and
// ebpfnet_cluster_sync_failures_total. Register them where Run runs.
func (a *Agent) Metrics() prometheus.Collector { return a.metrics }

// uplinkMAC is the MAC of the interface holding addr, if any.
func uplinkMAC(addr netip.Addr) string {
	ifs, _ := net.Interfaces()
	for _, ifc := range ifs {
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr() == addr {
				return ifc.HardwareAddr.String()
			}
		}
	}
	return ""
}
