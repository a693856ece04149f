package kubeproxy

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/ebpfnet/ebpfnet/datapath"
)

// Source is where a Proxy lists and watches what it follows: all
// Services, EndpointSlices and Nodes (the Proxy adds its label
// selectors). NewSource makes one on an API server.
type Source struct {
	Services, EndpointSlices, Nodes cache.ListerWatcher
}

// Config says whom a Proxy watches and whom it tells.
type Config struct {
	// Source lists and watches the cluster's objects.
	Source Source
	// Node is this node's name (its Node object's): its endpoints are
	// the Local ones.
	Node string
	// Sync makes the datapath the table it is given (the daemon's:
	// datapath.Instance.SyncServices). It is called from one goroutine
	// at a time, with the whole table each time.
	Sync func(datapath.ServiceTable) error
	// Log gets the proxy's messages (slog.Default() if nil).
	Log *slog.Logger

	// MinInterval is the least time between the starts of two syncs: a
	// burst of changes within it is one sync (default 200 ms).
	MinInterval time.Duration
	// Resync is how often the whole table is synced even when nothing
	// changed, so a datapath that lost state gets it back (default 60 s).
	Resync time.Duration
	// RetryMin and RetryMax bound the wait after a failed sync: it
	// doubles from RetryMin with every failure in a row, up to RetryMax
	// (defaults 1 s and 30 s).
	RetryMin, RetryMax time.Duration
}

// Defaults of Config's timings.
const (
	DefaultMinInterval = 200 * time.Millisecond
	DefaultResync      = 60 * time.Second
	DefaultRetryMin    = time.Second
	DefaultRetryMax    = 30 * time.Second
)

// Proxy keeps a sync callback fed with the service table of a cluster's
// Services, EndpointSlices and Nodes (Table), as kube-proxy keeps its
// rules: every change is noticed through client-go's informers, changes
// close together are coalesced, an unchanged table is not synced again
// except on the periodic resync, and a failed sync is retried with
// backoff.
type Proxy struct {
	cfg                     Config
	log                     *slog.Logger
	services, slices, nodes cache.SharedIndexInformer
	// kick says something changed: one pending signal is enough.
	kick chan struct{}
	// last is the table the datapath has (nil before the first sync);
	// only the loop touches it.
	last *datapath.ServiceTable
}

// New makes a Proxy; Run runs it.
func New(cfg Config) (*Proxy, error) {
	if cfg.Source.Services == nil || cfg.Source.EndpointSlices == nil || cfg.Source.Nodes == nil || cfg.Sync == nil {
		return nil, errors.New("kubeproxy: Config needs a Source and a Sync")
	}
	if cfg.Node == "" {
		return nil, errors.New("kubeproxy: Config needs the node's name")
	}
	cfg.MinInterval = orDefault(cfg.MinInterval, DefaultMinInterval)
	cfg.Resync = orDefault(cfg.Resync, DefaultResync)
	cfg.RetryMin = orDefault(cfg.RetryMin, DefaultRetryMin)
	cfg.RetryMax = max(orDefault(cfg.RetryMax, DefaultRetryMax), cfg.RetryMin)
	p := &Proxy{cfg: cfg, log: cfg.Log, kick: make(chan struct{}, 1)}
	if p.log == nil {
		p.log = slog.Default()
	}

	// As kube-proxy: the API server leaves out the Services (and their
	// slices) another proxy serves, and headless Services' slices. Table
	// checks the first again, for watchers that do not filter.
	noProxyName, err := labels.NewRequirement(LabelServiceProxyName, selection.DoesNotExist, nil)
	if err != nil {
		return nil, err
	}
	noHeadless, err := labels.NewRequirement(corev1.IsHeadlessService, selection.DoesNotExist, nil)
	if err != nil {
		return nil, err
	}
	selector := labels.NewSelector().Add(*noProxyName, *noHeadless).String()
	p.services = informer(cfg.Source.Services, selector, &corev1.Service{})
	p.slices = informer(cfg.Source.EndpointSlices, selector, &discoveryv1.EndpointSlice{})
	p.nodes = informer(cfg.Source.Nodes, "", &corev1.Node{})
	changed := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { p.changed() },
		UpdateFunc: func(any, any) { p.changed() },
		DeleteFunc: func(any) { p.changed() },
	}
	for _, inf := range []cache.SharedIndexInformer{p.services, p.slices, p.nodes} {
		if _, err := inf.AddEventHandler(changed); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// informer is a shared informer of the objects of lw that selector (if
// any) selects. It resyncs nothing by itself: Run's periodic sync
// rebuilds the whole table from the caches instead.
func informer(lw cache.ListerWatcher, selector string, obj runtime.Object) cache.SharedIndexInformer {
	inner := cache.ToListerWatcherWithContext(lw)
	filtered := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			if selector != "" {
				o.LabelSelector = selector
			}
			return inner.ListWithContext(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			if selector != "" {
				o.LabelSelector = selector
			}
			return inner.WatchWithContext(ctx, o)
		},
	}
	// Whether lw can stream the initial list (a fake cannot) is lw's
	// to say.
	return cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(filtered, lw), obj, 0, cache.Indexers{})
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// changed notes that the caches changed; the loop syncs.
func (p *Proxy) changed() {
	select {
	case p.kick <- struct{}{}:
	default: // a signal is pending already
	}
}

// table is the service table of the caches as they are now.
func (p *Proxy) table() datapath.ServiceTable {
	return Table(objects[*corev1.Service](p.services), objects[*discoveryv1.EndpointSlice](p.slices), objects[*corev1.Node](p.nodes), p.cfg.Node)
}

// objects are the objects in inf's cache.
func objects[T any](inf cache.SharedIndexInformer) []T {
	var out []T
	for _, o := range inf.GetStore().List() {
		if t, ok := o.(T); ok {
			out = append(out, t)
		}
	}
	return out
}

// Run watches and syncs until ctx ends, then returns nil. The first sync
// waits until the informers have listed everything, so the datapath
// never gets a partial table; until then, Run keeps trying to reach the
// API server. Call it once.
func (p *Proxy) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	informers := []cache.SharedIndexInformer{p.services, p.slices, p.nodes}
	running := make(chan struct{}, len(informers))
	defer func() {
		cancel()
		for range informers {
			<-running
		}
	}()
	var synced []cache.InformerSynced
	for _, inf := range informers {
		go func() { inf.RunWithContext(ctx); running <- struct{}{} }()
		synced = append(synced, inf.HasSynced)
	}
	p.log.Info("kube-proxy replacement: waiting for Services, EndpointSlices and Nodes", "node", p.cfg.Node)
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return nil // ctx ended
	}
	p.log.Info("kube-proxy replacement: watching", "node", p.cfg.Node)
	p.loop(ctx)
	return nil
}

// loop syncs when something changed, at most once per MinInterval, every
// Resync anyway, and after a failure again after a backoff.
func (p *Proxy) loop(ctx context.Context) {
	resync := time.NewTicker(p.cfg.Resync)
	defer resync.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var (
		pending  = true // the first sync
		forced   = true // sync even an unchanged table
		next     time.Time
		failures int
	)
	for {
		if pending {
			if wait := time.Until(next); wait > 0 {
				timer.Reset(wait)
			} else {
				start := time.Now()
				if p.syncOnce(forced, failures) {
					pending, forced, failures = false, false, 0
					next = start.Add(p.cfg.MinInterval)
				} else {
					// From the failure's end: a slow sync (a loaded
					// machine) must not eat into the wait.
					failures++
					next = time.Now().Add(backoff(p.cfg.RetryMin, p.cfg.RetryMax, failures))
				}
				continue
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
			pending = true
		case <-resync.C:
			pending, forced = true, true
		case <-timer.C:
		}
	}
}

// syncOnce builds the table and hands it over, unless the datapath has
// it already and the sync is not forced; it says whether the datapath
// now has it. failures is how many syncs failed in a row before.
func (p *Proxy) syncOnce(forced bool, failures int) bool {
	t := p.table()
	if !forced && p.last != nil && reflect.DeepEqual(*p.last, t) {
		return true
	}
	start := time.Now()
	if err := p.cfg.Sync(t); err != nil {
		p.log.Error("kube-proxy replacement: sync failed", "err", err, "failures", failures+1,
			"retry_in", backoff(p.cfg.RetryMin, p.cfg.RetryMax, failures+1))
		return false
	}
	backends := 0
	for _, s := range t.Services {
		backends += len(s.Backends)
	}
	level := slog.LevelDebug
	if p.last == nil || failures > 0 {
		level = slog.LevelInfo // the first, or the datapath back in step
	}
	p.log.Log(context.Background(), level, "kube-proxy replacement: services synced",
		"services", len(t.Services), "backends", backends, "node_ips", len(t.NodeIPs), "took", time.Since(start).Round(time.Microsecond))
	p.last = &t
	return true
}

// backoff is the wait after the n-th failure in a row (n >= 1): lo
// doubled n-1 times, at most hi.
func backoff(lo, hi time.Duration, n int) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	return min(d, hi)
}
