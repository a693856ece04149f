// Package cluster keeps the state of overlay networks in etcd: host
// membership under leases, overlay networks with unique VNIs, per-host
// address blocks (claimed by transaction, as Calico does) and the endpoint
// records allocated from them, and a Watcher that keeps a local view of all
// of it in step with the store for the datapath to turn into BPF map entries.
//
// Key layout under the prefix (default /ebpfnet/):
//
//	hosts/<host>                  Host      under the host's lease
//	networks/<network>            Network
//	vni/<vni>                     network name (makes VNIs unique)
//	blocks/<network>/<first IP>   Block     affinity of an address block to a host
//	endpoints/<network>/<ip>      Endpoint  under the owning host's lease
//
// Every operation reports its transactions, reads and writes to Stats, and
// the watcher counts the events it receives, so the store's load can be
// measured per operation.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DefaultPrefix is where ebpfnet's keys live in etcd.
const DefaultPrefix = "/ebpfnet/"

// ErrUnavailable is wrapped by errors from operations that could not reach
// the store.
var ErrUnavailable = errors.New("cluster store unreachable")

// Config opens a Store.
type Config struct {
	// Endpoints are etcd client URLs (http://HOST:PORT); see ParseStoreURL.
	Endpoints []string
	// Prefix of every key; DefaultPrefix when empty.
	Prefix string
	// DialTimeout bounds connecting; RequestTimeout bounds each request
	// (5s each when 0). With the store down, a request fails after
	// RequestTimeout with an error wrapping ErrUnavailable.
	DialTimeout, RequestTimeout time.Duration
	// Dialer, if set, makes the connections (tests dial from a namespace).
	Dialer func(ctx context.Context, addr string) (net.Conn, error)
	Log    *slog.Logger
}

// Store is a connection to the cluster store.
type Store struct {
	cli    *clientv3.Client
	cfg    Config
	name   string // etcd://... for errors
	log    *slog.Logger
	stats  *Stats
	prefix string
}

// ParseStoreURL turns etcd://HOST:PORT[,HOST:PORT...] into client URLs.
func ParseStoreURL(s string) ([]string, error) {
	rest, ok := strings.CutPrefix(s, "etcd://")
	if !ok {
		return nil, fmt.Errorf("invalid cluster store %q: want etcd://HOST:PORT[,HOST:PORT...]", s)
	}
	var out []string
	for _, hp := range strings.Split(rest, ",") {
		hp = strings.TrimSuffix(hp, "/")
		host, port, err := net.SplitHostPort(hp)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("invalid cluster store %q: %q is not HOST:PORT", s, hp)
		}
		u := url.URL{Scheme: "http", Host: net.JoinHostPort(host, port)}
		out = append(out, u.String())
	}
	return out, nil
}

// Open connects to the store. It does not wait for the store to answer:
// requests do, bounded by RequestTimeout.
func Open(cfg Config) (*Store, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("cluster store: no endpoints")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	ccfg := clientv3.Config{
		Endpoints:            cfg.Endpoints,
		DialTimeout:          cfg.DialTimeout,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		Logger:               nopZap(),
		// gRPC's default reconnect backoff grows to two minutes: after an
		// etcd outage the watch and the keepalives would wait that long
		// to notice it is back. Hosts must resynchronize promptly.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 2 * time.Second,
		})},
	}
	if cfg.Dialer != nil {
		ccfg.DialOptions = append(ccfg.DialOptions, grpc.WithContextDialer(cfg.Dialer))
	}
	cli, err := clientv3.New(ccfg)
	if err != nil {
		return nil, fmt.Errorf("cluster store: %w", err)
	}
	name := "etcd://" + strings.Join(trimSchemes(cfg.Endpoints), ",")
	return &Store{cli: cli, cfg: cfg, name: name, log: cfg.Log, stats: newStats(), prefix: cfg.Prefix}, nil
}

func trimSchemes(eps []string) []string {
	out := make([]string, len(eps))
	for i, e := range eps {
		if _, rest, ok := strings.Cut(e, "://"); ok {
			e = rest
		}
		out[i] = e
	}
	return out
}

// Close closes the connection; leases are not revoked (see Member.Leave).
func (s *Store) Close() error { return s.cli.Close() }

// Name is the store as etcd://HOST:PORT,...
func (s *Store) Name() string { return s.name }

// Stats counts what this Store did and received.
func (s *Store) Stats() *Stats { return s.stats }

func (s *Store) key(parts ...string) string { return s.prefix + strings.Join(parts, "/") }

// reqCtx bounds one request.
func (s *Store) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.RequestTimeout)
}

// storeErr turns a client error into a one-line error naming the store.
func (s *Store) storeErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.Unavailable || status.Code(err) == codes.DeadlineExceeded {
		return fmt.Errorf("%s: %w: %s did not answer within %s", op, ErrUnavailable, s.name, s.cfg.RequestTimeout)
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %w", op, err)
	}
	msg := err.Error()
	if st, ok := status.FromError(err); ok {
		msg = st.Message()
	}
	return fmt.Errorf("%s: cluster store %s: %s", op, s.name, strings.ReplaceAll(msg, "\n", " "))
}

// get reads a key or a prefix, counted under op.
func (s *Store) get(ctx context.Context, op, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	ctx, cancel := s.reqCtx(ctx)
	defer cancel()
	s.stats.count(op, "read")
	r, err := s.cli.Get(ctx, key, opts...)
	return r, s.storeErr(op, err)
}

// txn runs one transaction, counted under op.
func (s *Store) txn(ctx context.Context, op string, cmps []clientv3.Cmp, then []clientv3.Op, els ...clientv3.Op) (*clientv3.TxnResponse, error) {
	ctx, cancel := s.reqCtx(ctx)
	defer cancel()
	s.stats.count(op, "txn")
	r, err := s.cli.Txn(ctx).If(cmps...).Then(then...).Else(els...).Commit()
	return r, s.storeErr(op, err)
}

// Stats counts store operations by the cluster operation that made them
// and watch events by kind, for the store-load model.
type Stats struct {
	mu     sync.Mutex
	ops    map[string]map[string]int64 // op -> read|txn|lease -> n
	events map[string]int64            // kind/type -> n
	resync int64
}

func newStats() *Stats {
	return &Stats{ops: map[string]map[string]int64{}, events: map[string]int64{}}
}

func (st *Stats) count(op, what string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	m := st.ops[op]
	if m == nil {
		m = map[string]int64{}
		st.ops[op] = m
	}
	m[what]++
}

func (st *Stats) event(kind string, n int64) {
	st.mu.Lock()
	st.events[kind] += n
	st.mu.Unlock()
}

// StatsSnapshot is a copy of the counters.
type StatsSnapshot struct {
	// Ops: cluster operation -> request kind (read, txn, lease) -> count.
	Ops map[string]map[string]int64 `json:"ops"`
	// Events: watch events received, by key kind and type (e.g. "endpoints/put").
	Events  map[string]int64 `json:"events"`
	Resyncs int64            `json:"resyncs"`
}

// Snapshot copies the counters.
func (st *Stats) Snapshot() StatsSnapshot {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := StatsSnapshot{Ops: map[string]map[string]int64{}, Events: map[string]int64{}, Resyncs: st.resync}
	for op, m := range st.ops {
		c := map[string]int64{}
		for k, v := range m {
			c[k] = v
		}
		out.Ops[op] = c
	}
	for k, v := range st.events {
		out.Events[k] = v
	}
	return out
}

// TotalEvents is the number of watch events received.
func (s StatsSnapshot) TotalEvents() int64 {
	var n int64
	for _, v := range s.Events {
		n += v
	}
	return n
}

// Requests is the number of requests of kind what made for op.
func (s StatsSnapshot) Requests(op, what string) int64 { return s.Ops[op][what] }
