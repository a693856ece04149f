package cluster

import (
	"context"
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// EventType says what happened to a record.
type EventType string

// Event types.
const (
	Added   EventType = "added"
	Updated EventType = "updated"
	Removed EventType = "removed"
)

// Event is one change of the local view. Exactly one of Host, Network,
// Block, Endpoint is set; for Removed it is the record as it was.
type Event struct {
	Type     EventType
	Host     *Host
	Network  *Network
	Block    *Block
	Endpoint *Endpoint
	// Remote is true for an Endpoint or Block of another host.
	Remote bool
}

// Watcher keeps a local view of the cluster (hosts, networks, blocks,
// endpoints) in step with the store: a full read, then a watch from the
// next revision; after a compaction, a cancelled watch or a failed read it
// reads everything again and emits the difference as events, so a handler
// sees every change once whether or not it missed the watch events. Reads
// of the view never touch the store and keep working while it is down.
type Watcher struct {
	s       *Store
	self    string
	handler func(Event)

	mu       sync.RWMutex
	rev      int64
	synced   bool
	lastSync time.Time
	records  map[string]record // key -> record
	syncedCh chan struct{}     // closed at the first full read
}

type record struct {
	rev int64
	ev  Event // the record as an Added event
}

// NewWatcher makes a watcher for host self (whose endpoints are not
// remote). handler, if not nil, is called serially for every change, after
// the view has it.
func (s *Store) NewWatcher(self string, handler func(Event)) *Watcher {
	return &Watcher{s: s, self: self, handler: handler, records: map[string]record{}, syncedCh: make(chan struct{})}
}

// Run keeps the view in step until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		rev, err := w.resync(ctx)
		if err != nil {
			w.setSynced(false)
			w.s.log.Warn("cluster view: resync failed, retrying", "err", err, "in", backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 200 * time.Millisecond
		w.watch(ctx, rev)
	}
	return nil
}

// watch applies events from rev+1 until the watch ends.
func (w *Watcher) watch(ctx context.Context, rev int64) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	ch := w.s.cli.Watch(wctx, w.s.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithPrevKV())
	for resp := range ch {
		if resp.CompactRevision != 0 {
			w.s.log.Warn("cluster view: watch compacted, resyncing", "compact_revision", resp.CompactRevision)
			return
		}
		if err := resp.Err(); err != nil {
			w.s.log.Warn("cluster view: watch ended, resyncing", "err", err)
			return
		}
		for _, ev := range resp.Events {
			key := string(ev.Kv.Key)
			w.s.stats.event(kindOf(strings.TrimPrefix(key, w.s.prefix))+"/"+strings.ToLower(ev.Type.String()), 1)
			if ev.Type == mvccpb.DELETE {
				w.apply(key, nil, ev.Kv.ModRevision)
			} else {
				w.apply(key, ev.Kv.Value, ev.Kv.ModRevision)
			}
		}
		w.mu.Lock()
		w.rev = max(w.rev, resp.Header.Revision)
		w.lastSync = time.Now()
		w.mu.Unlock()
	}
}

func kindOf(rel string) string {
	k, _, _ := strings.Cut(rel, "/")
	return k
}

// resync reads everything and emits the difference to the view.
func (w *Watcher) resync(ctx context.Context) (int64, error) {
	w.s.stats.mu.Lock()
	w.s.stats.resync++
	w.s.stats.mu.Unlock()
	r, err := w.s.get(ctx, "sync", w.s.prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, err
	}
	seen := map[string]bool{}
	for _, kv := range r.Kvs {
		key := string(kv.Key)
		seen[key] = true
		w.s.stats.event(kindOf(strings.TrimPrefix(key, w.s.prefix))+"/list", 1)
		w.apply(key, kv.Value, kv.ModRevision)
	}
	w.mu.RLock()
	var gone []string
	for key := range w.records {
		if !seen[key] {
			gone = append(gone, key)
		}
	}
	w.mu.RUnlock()
	for _, key := range gone {
		w.apply(key, nil, r.Header.Revision)
	}
	w.mu.Lock()
	w.rev = r.Header.Revision
	w.lastSync = time.Now()
	w.mu.Unlock()
	w.setSynced(true)
	return r.Header.Revision, nil
}

func (w *Watcher) setSynced(ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.synced = ok
	if ok {
		select {
		case <-w.syncedCh:
		default:
			close(w.syncedCh)
		}
	}
}

// decode turns a key and value into an Added event; ok false for keys the
// view does not keep (vni/).
func (w *Watcher) decode(rel string, val []byte) (Event, bool) {
	ev := Event{Type: Added}
	var err error
	switch kindOf(rel) {
	case "hosts":
		ev.Host = new(Host)
		err = json.Unmarshal(val, ev.Host)
	case "networks":
		ev.Network = new(Network)
		err = json.Unmarshal(val, ev.Network)
	case "blocks":
		ev.Block = new(Block)
		err = json.Unmarshal(val, ev.Block)
		ev.Remote = err == nil && ev.Block.Host != w.self
	case "endpoints":
		ev.Endpoint = new(Endpoint)
		err = json.Unmarshal(val, ev.Endpoint)
		ev.Remote = err == nil && ev.Endpoint.Host != w.self
	default:
		return ev, false
	}
	if err != nil {
		w.s.log.Warn("cluster view: skipping bad record", "key", rel, "err", err)
		return ev, false
	}
	return ev, true
}

// apply puts (val != nil) or deletes a key in the view and emits the event.
func (w *Watcher) apply(key string, val []byte, rev int64) {
	rel := strings.TrimPrefix(key, w.s.prefix)
	w.mu.Lock()
	old, had := w.records[key]
	var out Event
	emit := false
	if val == nil {
		if had {
			delete(w.records, key)
			out, emit = old.ev, true
			out.Type = Removed
		}
	} else if ev, ok := w.decode(rel, val); ok {
		if !had || old.rev != rev {
			w.records[key] = record{rev: rev, ev: ev}
			out, emit = ev, true
			if had {
				out.Type = Updated
			}
		}
	}
	w.mu.Unlock()
	if emit && w.handler != nil {
		w.handler(out)
	}
}

// WaitSynced waits for the first full read.
func (w *Watcher) WaitSynced(ctx context.Context) error {
	select {
	case <-w.syncedCh:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Status of the view.
type Status struct {
	Revision int64     `json:"revision"` // store revision the view reflects
	Synced   bool      `json:"synced"`   // false after a failed resync, until the next one
	LastSync time.Time `json:"last_sync"`
}

// Status of the view.
func (w *Watcher) Status() Status {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return Status{Revision: w.rev, Synced: w.synced, LastSync: w.lastSync}
}

func collect[T any](w *Watcher, pick func(Event) (T, bool)) []T {
	w.mu.RLock()
	defer w.mu.RUnlock()
	var out []T
	for _, r := range w.records {
		if v, ok := pick(r.ev); ok {
			out = append(out, v)
		}
	}
	return out
}

// Hosts in the view, by name.
func (w *Watcher) Hosts() []Host {
	out := collect(w, func(e Event) (Host, bool) {
		if e.Host == nil {
			return Host{}, false
		}
		return *e.Host, true
	})
	slices.SortFunc(out, func(a, b Host) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Networks in the view, by name.
func (w *Watcher) Networks() []Network {
	out := collect(w, func(e Event) (Network, bool) {
		if e.Network == nil {
			return Network{}, false
		}
		return *e.Network, true
	})
	slices.SortFunc(out, func(a, b Network) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Network looks one up in the view.
func (w *Watcher) Network(name string) (Network, bool) {
	for _, n := range w.Networks() {
		if n.Name == name {
			return n, true
		}
	}
	return Network{}, false
}

// Endpoints of a network in the view (every host's), by address.
func (w *Watcher) Endpoints(network string) []Endpoint {
	return w.endpoints(network, false)
}

// RemoteEndpoints of a network in the view: those of other hosts, which the
// datapath reaches through the tunnel.
func (w *Watcher) RemoteEndpoints(network string) []Endpoint {
	return w.endpoints(network, true)
}

func (w *Watcher) endpoints(network string, remoteOnly bool) []Endpoint {
	out := collect(w, func(e Event) (Endpoint, bool) {
		if e.Endpoint == nil || e.Endpoint.Network != network || (remoteOnly && !e.Remote) {
			return Endpoint{}, false
		}
		return *e.Endpoint, true
	})
	slices.SortFunc(out, func(a, b Endpoint) int { return a.IP.Compare(b.IP) })
	return out
}

// Blocks of a network in the view.
func (w *Watcher) Blocks(network string) []Block {
	out := collect(w, func(e Event) (Block, bool) {
		if e.Block == nil || e.Block.Network != network {
			return Block{}, false
		}
		return *e.Block, true
	})
	slices.SortFunc(out, func(a, b Block) int { return a.CIDR.Addr().Compare(b.CIDR.Addr()) })
	return out
}

// HostOf is the underlay address of the host that owns ip in network, from
// the view: what the tunnel ingress checks an inner source against.
func (w *Watcher) HostOf(network string, ip netip.Addr) (netip.Addr, bool) {
	w.mu.RLock()
	r, ok := w.records[w.s.endpointKey(network, ip)]
	w.mu.RUnlock()
	if !ok || r.ev.Endpoint == nil {
		return netip.Addr{}, false
	}
	for _, h := range w.Hosts() {
		if h.Name == r.ev.Endpoint.Host {
			return h.Addr, true
		}
	}
	return netip.Addr{}, false
}
