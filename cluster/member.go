package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// HostOptions join a host to the cluster.
type HostOptions struct {
	Name string
	Addr netip.Addr // underlay address
	MAC  string
	// TTL of the host's lease: how long after the host stops renewing it
	// the others drop it and its endpoints. DefaultTTL when 0.
	TTL time.Duration
	// Local is the host's own record of its endpoints; required.
	Local LocalStore
}

// DefaultTTL is the default lease TTL.
const DefaultTTL = 15 * time.Second

// Member is this host's membership: its lease, its host record, and the
// endpoints it registers. A lost lease (the store was unreachable for longer
// than the TTL while it was up) is replaced by a new one and everything
// re-registered; a lease that outlived an outage of the store is kept.
type Member struct {
	s     *Store
	o     HostOptions
	local LocalStore

	mu    sync.Mutex // guards lease and rejoins
	lease clientv3.LeaseID

	// allocMu serializes this host's allocations, releases and rejoins
	// (taken before mu).
	allocMu sync.Mutex
	alloc   map[string]*netAlloc // network -> allocation state

	cancel  context.CancelFunc
	done    chan struct{}
	rejoins int
}

// ReconcileResult says what Join did with the host's previous records.
type ReconcileResult struct {
	Registered []Endpoint // live endpoints (re)written under the new lease
	Stale      []Endpoint // records of this host that the local store lacks: deleted
	Conflicts  []Endpoint // local endpoints whose address another host holds: not written
	OldLease   int64      // the previous lease, revoked (0 if none)
}

// Join registers the host under a new lease, reconciles the store's
// endpoint records of this host with its local store (re-registering live
// ones under the new lease, deleting stale ones), revokes the host's
// previous lease, and keeps the new one alive until Close or Leave.
func (s *Store) Join(ctx context.Context, o HostOptions) (*Member, ReconcileResult, error) {
	if err := validName("host", o.Name); err != nil {
		return nil, ReconcileResult{}, err
	}
	if !o.Addr.Is4() {
		return nil, ReconcileResult{}, fmt.Errorf("invalid advertise address %q: want IPv4", o.Addr)
	}
	if o.Local == nil {
		return nil, ReconcileResult{}, errors.New("join: no local store")
	}
	if o.TTL == 0 {
		o.TTL = DefaultTTL
	}
	if o.TTL < 2*time.Second {
		return nil, ReconcileResult{}, fmt.Errorf("lease TTL %s too short: at least 2s", o.TTL)
	}
	m := &Member{s: s, o: o, local: o.Local, alloc: map[string]*netAlloc{}}
	res, err := m.register(ctx)
	if err != nil {
		return nil, res, err
	}
	kctx, cancel := context.WithCancel(context.Background())
	m.cancel, m.done = cancel, make(chan struct{})
	go m.keepAlive(kctx)
	return m, res, nil
}

// Name of the host.
func (m *Member) Name() string { return m.o.Name }

// Lease is the current lease ID.
func (m *Member) Lease() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return int64(m.lease)
}

// Rejoins counts how often the lease was lost and replaced.
func (m *Member) Rejoins() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rejoins
}

// register grants a lease, writes the host record and reconciles endpoints.
func (m *Member) register(ctx context.Context) (ReconcileResult, error) {
	const op = "join"
	s := m.s
	var res ReconcileResult
	hostKey := s.key("hosts", m.o.Name)
	prev, err := s.get(ctx, op, hostKey)
	if err != nil {
		return res, err
	}
	var old Host
	if len(prev.Kvs) > 0 {
		json.Unmarshal(prev.Kvs[0].Value, &old)
	}
	lctx, cancel := s.reqCtx(ctx)
	s.stats.count(op, "lease")
	g, err := s.cli.Grant(lctx, int64((m.o.TTL+time.Second-1)/time.Second))
	cancel()
	if err != nil {
		return res, s.storeErr(op, err)
	}
	h := Host{Name: m.o.Name, Addr: m.o.Addr, MAC: m.o.MAC, Lease: int64(g.ID), Started: time.Now().UTC().Truncate(time.Second)}
	val, _ := json.Marshal(h)
	if _, err := s.txn(ctx, op, nil, []clientv3.Op{clientv3.OpPut(hostKey, string(val), clientv3.WithLease(g.ID))}); err != nil {
		return res, err
	}
	m.mu.Lock()
	m.lease = g.ID
	m.mu.Unlock()

	// Reconcile this host's records with the local store.
	live, err := m.local.Endpoints()
	if err != nil {
		return res, fmt.Errorf("%s: local store: %w", op, err)
	}
	r, err := s.get(ctx, op, s.key("endpoints")+"/", clientv3.WithPrefix())
	if err != nil {
		return res, err
	}
	type rec struct {
		e   Endpoint
		rev int64
	}
	inStore := map[string]rec{}
	for _, kv := range r.Kvs {
		var e Endpoint
		if json.Unmarshal(kv.Value, &e) == nil {
			inStore[string(kv.Key)] = rec{e, kv.ModRevision}
		}
	}
	liveKeys := map[string]bool{}
	for _, e := range live {
		e.Host = m.o.Name
		key := s.endpointKey(e.Network, e.IP)
		liveKeys[key] = true
		cmp := clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
		if cur, ok := inStore[key]; ok {
			if cur.e.Host != m.o.Name {
				res.Conflicts = append(res.Conflicts, e)
				continue
			}
			cmp = clientv3.Compare(clientv3.ModRevision(key), "=", cur.rev)
		}
		val, _ := json.Marshal(e)
		t, err := s.txn(ctx, op, []clientv3.Cmp{cmp}, []clientv3.Op{clientv3.OpPut(key, string(val), clientv3.WithLease(g.ID))})
		if err != nil {
			return res, err
		}
		if !t.Succeeded {
			res.Conflicts = append(res.Conflicts, e)
			continue
		}
		res.Registered = append(res.Registered, e)
	}
	for key, cur := range inStore {
		if cur.e.Host != m.o.Name || liveKeys[key] {
			continue
		}
		if _, err := s.txn(ctx, op, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", cur.rev)}, []clientv3.Op{clientv3.OpDelete(key)}); err != nil {
			return res, err
		}
		res.Stale = append(res.Stale, cur.e)
	}
	if old.Lease != 0 && old.Lease != int64(g.ID) {
		lctx, cancel := s.reqCtx(ctx)
		s.stats.count(op, "lease")
		_, err := s.cli.Revoke(lctx, clientv3.LeaseID(old.Lease))
		cancel()
		if err == nil {
			res.OldLease = old.Lease
		} else if !strings.Contains(err.Error(), "requested lease not found") {
			return res, s.storeErr(op, err)
		}
	}
	return res, nil
}

// keepAlive renews the lease. When the client gives up on it (no answer
// from the store for a TTL) it asks the store whether the lease is still
// there, and goes on renewing it if so; only a lease the store no longer
// has (the store was unreachable for longer than the TTL while it ran, or
// the lease was revoked) is replaced: the host joins again with a new lease
// and re-registers its endpoints from the local store.
func (m *Member) keepAlive(ctx context.Context) {
	defer close(m.done)
	for ctx.Err() == nil {
		lease := clientv3.LeaseID(m.Lease())
		ch, err := m.s.cli.KeepAlive(ctx, lease)
		if err == nil {
			for range ch {
				m.s.stats.count("keepalive", "lease")
			}
		}
		if ctx.Err() != nil {
			return
		}
		alive, err := m.leaseAlive(ctx, lease)
		if err != nil {
			return // ctx ended
		}
		if alive {
			m.s.log.Info("cluster lease renewed after an interruption", "host", m.o.Name, "lease", int64(lease))
			continue
		}
		m.s.log.Warn("cluster lease lost; joining again", "host", m.o.Name, "lease", int64(lease))
		backoff := 500 * time.Millisecond
		for ctx.Err() == nil {
			res, err := m.rejoin(ctx, lease)
			if err == nil {
				if res != nil {
					m.s.log.Info("cluster rejoined", "host", m.o.Name, "lease", m.Lease(), "registered", len(res.Registered), "stale", len(res.Stale))
				}
				break
			}
			m.s.log.Warn("cluster rejoin failed", "host", m.o.Name, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}
}

// leaseAlive renews the lease once, retrying while the store is
// unreachable: true if the store still has it. The client's keepalive
// gives up after a TTL without answers, but the store does not expire
// leases while it is down, and a restarted (or newly elected) store renews
// them all for a TTL: after an outage the host keeps its lease, and its
// records, as long as it asks again within that TTL, so the retries are
// spaced by at most a third of it. An error only when ctx ends.
func (m *Member) leaseAlive(ctx context.Context, lease clientv3.LeaseID) (bool, error) {
	backoff := 100 * time.Millisecond
	maxBackoff := min(m.o.TTL/3, 5*time.Second)
	for {
		rctx, cancel := m.s.reqCtx(ctx)
		m.s.stats.count("keepalive", "lease")
		_, err := m.s.cli.KeepAliveOnce(rctx, lease)
		cancel()
		switch {
		case err == nil:
			return true, nil
		case ctx.Err() != nil:
			return false, ctx.Err()
		case errors.Is(err, rpctypes.ErrLeaseNotFound) || strings.Contains(err.Error(), "requested lease not found"):
			return false, nil
		}
		m.s.log.Warn("cluster lease: renewal failed, retrying", "host", m.o.Name, "lease", int64(lease), "err", m.s.storeErr("keepalive", err), "in", backoff)
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// rejoin replaces the lost lease with a new one (register) unless that was
// done already (nil result). It holds allocMu: an allocation running
// alongside could otherwise write its endpoint under the old lease after
// register read the store (the old lease's revocation deletes it), or
// write it to the store before register read it but to the local store
// after register read that (register deletes it as stale): an endpoint
// reported as allocated but gone from the store, and from every other
// host's view.
func (m *Member) rejoin(ctx context.Context, lost clientv3.LeaseID) (*ReconcileResult, error) {
	m.allocMu.Lock()
	defer m.allocMu.Unlock()
	if clientv3.LeaseID(m.Lease()) != lost {
		return nil, nil
	}
	res, err := m.register(ctx)
	if err != nil {
		return nil, err
	}
	// Stale records register deleted free their addresses.
	m.alloc = map[string]*netAlloc{}
	m.mu.Lock()
	m.rejoins++
	m.mu.Unlock()
	return &res, nil
}

// Close stops renewing the lease without revoking it: the host's records
// stay until the TTL runs out, so a daemon restart within the TTL changes
// nothing for the others (the new daemon's Join takes them over).
func (m *Member) Close() {
	if m.cancel == nil {
		return // Joined: the daemon renews the lease
	}
	m.cancel()
	<-m.done
}

// Joined is this host's membership for a process other than the daemon
// that joined it (the CLI attaching a container): it allocates under the
// host's current lease and leaves renewing it to the daemon. It fails if
// the host is not in the cluster, i.e. its daemon is not running (or has
// been away for longer than the lease).
func (s *Store) Joined(ctx context.Context, name string, local LocalStore) (*Member, error) {
	const op = "allocate"
	r, err := s.get(ctx, op, s.key("hosts", name))
	if err != nil {
		return nil, err
	}
	var h Host
	if len(r.Kvs) == 0 || json.Unmarshal(r.Kvs[0].Value, &h) != nil || h.Lease == 0 {
		return nil, fmt.Errorf("host %s is not in the cluster: is its daemon running (ebpfnet daemon --advertise-addr)?", name)
	}
	return &Member{s: s, o: HostOptions{Name: name, Addr: h.Addr, MAC: h.MAC, Local: local}, local: local,
		lease: clientv3.LeaseID(h.Lease), alloc: map[string]*netAlloc{}}, nil
}

// Leave revokes the lease: the host and all its endpoints go at once.
func (m *Member) Leave(ctx context.Context) error {
	m.Close()
	lctx, cancel := m.s.reqCtx(ctx)
	defer cancel()
	m.s.stats.count("leave", "lease")
	_, err := m.s.cli.Revoke(lctx, clientv3.LeaseID(m.Lease()))
	return m.s.storeErr("leave", err)
}

// Hosts lists the hosts whose lease is alive (read from the store).
func (s *Store) Hosts(ctx context.Context) ([]Host, error) {
	r, err := s.get(ctx, "list hosts", s.key("hosts")+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	var out []Host
	for _, kv := range r.Kvs {
		var h Host
		if json.Unmarshal(kv.Value, &h) == nil {
			out = append(out, h)
		}
	}
	return out, nil
}

func (s *Store) endpointKey(network string, ip netip.Addr) string {
	return s.key("endpoints", network, ip.String())
}
