package kubeproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"

	"github.com/ebpfnet/ebpfnet/datapath"
)

// patience bounds every wait for something that must happen: generous,
// because the tests share two cores with builds; nothing passes or fails
// by being fast.
const patience = 60 * time.Second

// recorder is a Sync callback that keeps every table it was handed, can
// be made to fail, and can be held (a slow datapath).
type recorder struct {
	mu     sync.Mutex
	calls  []call
	fail   int           // fail this many more calls
	hold   chan struct{} // if not nil, calls wait until it is closed
	notify chan struct{}
}

type call struct {
	at time.Time
	t  datapath.ServiceTable
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) sync(t datapath.ServiceTable) error {
	r.mu.Lock()
	r.calls = append(r.calls, call{time.Now(), t})
	hold := r.hold
	var err error
	if r.fail > 0 {
		r.fail--
		err = errors.New("injected failure")
	}
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
	if hold != nil {
		<-hold
	}
	return err
}

func (r *recorder) snapshot() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// waitFor waits until the calls so far satisfy ok, and returns them.
func (r *recorder) waitFor(t *testing.T, what string, ok func([]call) bool) []call {
	t.Helper()
	deadline := time.After(patience)
	for {
		calls := r.snapshot()
		if ok(calls) {
			return calls
		}
		select {
		case <-r.notify:
		case <-deadline:
			last := "none"
			if len(calls) > 0 {
				last = "\n" + describe(calls[len(calls)-1].t)
			}
			t.Fatalf("no sync after %s: %s; %d calls, the last: %s", patience, what, len(calls), last)
		}
	}
}

// lastHas says whether the latest table satisfies ok.
func lastHas(ok func(datapath.ServiceTable) bool) func([]call) bool {
	return func(calls []call) bool { return len(calls) > 0 && ok(calls[len(calls)-1].t) }
}

func service(t datapath.ServiceTable, name string) *datapath.Service {
	for i := range t.Services {
		if t.Services[i].Name == name {
			return &t.Services[i]
		}
	}
	return nil
}

// fakeSource is a Source on a fake clientset.
func fakeSource(c *fake.Clientset) Source {
	lw := func(list cache.ListWithContextFunc, watch cache.WatchFuncWithContext) cache.ListerWatcher {
		// The fake cannot stream an initial list: it says so, through
		// the ListWatch, to the informers' reflectors.
		return cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{ListWithContextFunc: list, WatchFuncWithContext: watch}, c)
	}
	return Source{
		Services: lw(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return c.CoreV1().Services("").List(ctx, o)
		}, func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return c.CoreV1().Services("").Watch(ctx, o)
		}),
		EndpointSlices: lw(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return c.DiscoveryV1().EndpointSlices("").List(ctx, o)
		}, func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return c.DiscoveryV1().EndpointSlices("").Watch(ctx, o)
		}),
		Nodes: lw(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return c.CoreV1().Nodes().List(ctx, o)
		}, func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return c.CoreV1().Nodes().Watch(ctx, o)
		}),
	}
}

// start runs a Proxy on client until the test ends.
func start(t *testing.T, client *fake.Clientset, r *recorder, cfg Config) *Proxy {
	t.Helper()
	cfg.Source, cfg.Sync, cfg.Node = fakeSource(client), r.sync, here
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Resync == 0 {
		cfg.Resync = time.Hour // no periodic sync unless the test wants one
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(patience):
			t.Errorf("Run did not return %s after its context ended", patience)
		}
	})
	return p
}

var bg = context.Background()

func TestProxyFollowsTheCluster(t *testing.T) {
	client := fake.NewClientset(
		svc("default", "web", "10.96.0.20", []corev1.ServicePort{port("http", tcp, 80)}),
		slice("default", "web", "web-1", []discoveryv1.EndpointPort{eport("http", tcp, 8080)}, ep{ip: "10.244.0.5", node: here}),
		node(here, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "198.18.0.2"}),
	)
	r := newRecorder()
	start(t, client, r, Config{MinInterval: time.Millisecond})

	// The first sync has everything that existed at the start.
	calls := r.waitFor(t, "the initial table", func(calls []call) bool { return len(calls) > 0 })
	want := datapath.ServiceTable{
		Services: []datapath.Service{{Name: "default/web:http", Proto: "tcp", Frontends: addrs("10.96.0.20:80"), Backends: []datapath.ServiceBackend{backend("10.244.0.5:8080", true)}}},
		NodeIPs:  []netip.Addr{netip.MustParseAddr("198.18.0.2")},
	}
	if got := calls[0].t; describe(got) != describe(want) {
		t.Fatalf("first sync\n%swant\n%s", describe(got), describe(want))
	}

	// A new Service, then its endpoints.
	dns := svc("kube-system", "dns", "10.96.0.10", []corev1.ServicePort{port("dns", udp, 53)})
	if _, err := client.CoreV1().Services("kube-system").Create(bg, dns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "the new Service", lastHas(func(tab datapath.ServiceTable) bool { return service(tab, "kube-system/dns:dns") != nil }))
	dnsSlice := slice("kube-system", "dns", "dns-1", []discoveryv1.EndpointPort{eport("dns", udp, 5353)}, ep{ip: "10.244.1.7", node: "node-b"})
	if _, err := client.DiscoveryV1().EndpointSlices("kube-system").Create(bg, dnsSlice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "the new Service's endpoint", lastHas(func(tab datapath.ServiceTable) bool {
		s := service(tab, "kube-system/dns:dns")
		return s != nil && len(s.Backends) == 1 && s.Backends[0] == backend("10.244.1.7:5353", false)
	}))

	// An endpoint goes unready: it leaves the backends.
	dnsSlice.Endpoints = append(dnsSlice.Endpoints, discoveryv1.Endpoint{Addresses: []string{"10.244.1.8"}})
	dnsSlice.Endpoints[0].Conditions.Ready = no
	if _, err := client.DiscoveryV1().EndpointSlices("kube-system").Update(bg, dnsSlice, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "the endpoint change", lastHas(func(tab datapath.ServiceTable) bool {
		s := service(tab, "kube-system/dns:dns")
		return s != nil && len(s.Backends) == 1 && s.Backends[0] == backend("10.244.1.8:5353", false)
	}))

	// A Service changes: another port, NodePort type.
	web, err := client.CoreV1().Services("default").Get(bg, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	web.Spec.Type = corev1.ServiceTypeNodePort
	web.Spec.Ports[0].NodePort = 30080
	if _, err := client.CoreV1().Services("default").Update(bg, web, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "the Service change", lastHas(func(tab datapath.ServiceTable) bool {
		s := service(tab, "default/web:http")
		return s != nil && s.NodePort == 30080
	}))

	// A node joins.
	if _, err := client.CoreV1().Nodes().Create(bg, node("node-b", corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "198.18.0.3"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "the new node", lastHas(func(tab datapath.ServiceTable) bool { return len(tab.NodeIPs) == 2 }))

	// Deletions: a slice, then a Service, then a node.
	if err := client.DiscoveryV1().EndpointSlices("default").Delete(bg, "web-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "the slice gone", lastHas(func(tab datapath.ServiceTable) bool {
		s := service(tab, "default/web:http")
		return s != nil && len(s.Backends) == 0
	}))
	if err := client.CoreV1().Services("default").Delete(bg, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "the Service gone", lastHas(func(tab datapath.ServiceTable) bool {
		return service(tab, "default/web:http") == nil && service(tab, "kube-system/dns:dns") != nil
	}))
	if err := client.CoreV1().Nodes().Delete(bg, "node-b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "the node gone", lastHas(func(tab datapath.ServiceTable) bool { return len(tab.NodeIPs) == 1 }))

	// A Service another proxy serves is none of ours, even through a
	// watch that does not filter by label.
	other := svc("default", "other", "10.96.0.99", []corev1.ServicePort{port("", tcp, 80)}, withLabel(LabelServiceProxyName, "someone-else"))
	if _, err := client.CoreV1().Services("default").Create(bg, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// (A Service after it shows the proxy has seen both.)
	if _, err := client.CoreV1().Services("default").Create(bg, svc("default", "marker", "10.96.0.98", []corev1.ServicePort{port("", tcp, 80)}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	calls = r.waitFor(t, "the marker Service", lastHas(func(tab datapath.ServiceTable) bool { return service(tab, "default/marker") != nil }))
	if s := service(calls[len(calls)-1].t, "default/other"); s != nil {
		t.Errorf("the other proxy's Service is in the table: %+v", s)
	}

	// Every table handed over was one the datapath takes.
	for _, c := range r.snapshot() {
		for _, s := range c.t.Services {
			if err := s.Validate(); err != nil {
				t.Errorf("synced an invalid service: %v", err)
			}
		}
	}
}

// A burst of changes while the datapath is busy is one sync afterwards,
// with all of them; and two syncs never start closer than MinInterval.
func TestProxyCoalescesBursts(t *testing.T) {
	client := fake.NewClientset()
	r := newRecorder()
	r.hold = make(chan struct{})
	const minInterval = 100 * time.Millisecond
	p := start(t, client, r, Config{MinInterval: minInterval})

	r.waitFor(t, "the initial (held) sync", func(calls []call) bool { return len(calls) == 1 })
	const n = 50
	for i := range n {
		s := svc("default", fmt.Sprintf("s%02d", i), fmt.Sprintf("10.96.1.%d", i+1), []corev1.ServicePort{port("", tcp, 80)})
		if _, err := client.CoreV1().Services("default").Create(bg, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until the proxy's cache has them all: the next sync must then
	// carry the whole burst at once.
	deadline := time.Now().Add(patience)
	for {
		tab := p.table()
		if len(tab.Services) == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the proxy's cache has %d of %d Services after %s", len(tab.Services), n, patience)
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.mu.Lock()
	close(r.hold)
	r.hold = nil
	r.mu.Unlock()

	calls := r.waitFor(t, "the burst", func(calls []call) bool { return len(calls) >= 2 })
	if got := len(calls[1].t.Services); got != n {
		t.Errorf("the sync after the burst has %d services, want all %d", got, n)
	}
	if gap := calls[1].at.Sub(calls[0].at); gap < minInterval {
		t.Errorf("two syncs %s apart, less than MinInterval %s", gap, minInterval)
	}

	// A change now is synced too, MinInterval after the last at the
	// earliest.
	if err := client.CoreV1().Services("default").Delete(bg, "s00", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	calls = r.waitFor(t, "the deletion", lastHas(func(tab datapath.ServiceTable) bool { return len(tab.Services) == n-1 }))
	for i := 1; i < len(calls); i++ {
		if gap := calls[i].at.Sub(calls[i-1].at); gap < minInterval {
			t.Errorf("syncs %d and %d %s apart, less than MinInterval %s", i-1, i, gap, minInterval)
		}
	}
	// Nothing changed in between: no sync of an unchanged table.
	for i := 1; i < len(calls); i++ {
		if describe(calls[i].t) == describe(calls[i-1].t) {
			t.Errorf("sync %d handed over the same table again", i)
		}
	}
}

// A failed sync is retried, with growing waits, until it takes.
func TestProxyRetriesFailedSyncs(t *testing.T) {
	client := fake.NewClientset(svc("default", "web", "10.96.0.20", []corev1.ServicePort{port("", tcp, 80)}))
	r := newRecorder()
	r.fail = 3
	const retryMin = 20 * time.Millisecond
	start(t, client, r, Config{MinInterval: time.Millisecond, RetryMin: retryMin, RetryMax: 50 * time.Millisecond})
	calls := r.waitFor(t, "the retries", func(calls []call) bool { return len(calls) >= 4 })
	for i, c := range calls[:4] {
		if service(c.t, "default/web") == nil {
			t.Errorf("call %d lacks the Service:\n%s", i, describe(c.t))
		}
	}
	// Backoff: 20 ms, 40 ms, then 50 ms (RetryMax).
	for i, want := range []time.Duration{retryMin, 2 * retryMin, 50 * time.Millisecond} {
		if gap := calls[i+1].at.Sub(calls[i].at); gap < want {
			t.Errorf("retry %d came %s after the failure, before the backoff of %s", i+1, gap, want)
		}
	}
	// Once it took, a change is synced as usual.
	if err := client.CoreV1().Services("default").Delete(bg, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "the deletion", lastHas(func(tab datapath.ServiceTable) bool { return len(tab.Services) == 0 }))
}

// The periodic resync hands the datapath the same table again.
func TestProxyResyncs(t *testing.T) {
	client := fake.NewClientset(svc("default", "web", "10.96.0.20", []corev1.ServicePort{port("", tcp, 80)}))
	r := newRecorder()
	start(t, client, r, Config{MinInterval: time.Millisecond, Resync: 20 * time.Millisecond})
	calls := r.waitFor(t, "three resyncs", func(calls []call) bool { return len(calls) >= 4 })
	for i, c := range calls {
		if describe(c.t) != describe(calls[0].t) {
			t.Errorf("resync %d differs:\n%s", i, describe(c.t))
		}
	}
}

// Run returns when its context ends, also while the API server has not
// answered yet (no cache synced, so no sync either).
func TestProxyStopsBeforeCachesSync(t *testing.T) {
	client := fake.NewClientset()
	client.PrependReactor("list", "*", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("API server unreachable")
	})
	r := newRecorder()
	p, err := New(Config{Source: fakeSource(client), Sync: r.sync, Node: here, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(patience):
		t.Fatalf("Run did not return %s after its context ended", patience)
	}
	if calls := r.snapshot(); len(calls) != 0 {
		t.Errorf("synced %d times without the API server", len(calls))
	}
}

func TestNewChecksConfig(t *testing.T) {
	src := fakeSource(fake.NewClientset())
	syncFn := func(datapath.ServiceTable) error { return nil }
	for name, cfg := range map[string]Config{
		"no source":   {Sync: syncFn, Node: here},
		"half source": {Source: Source{Services: src.Services}, Sync: syncFn, Node: here},
		"no sync":     {Source: src, Node: here},
		"no node":     {Source: src, Sync: syncFn},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepts it", name)
		}
	}
}

func TestBackoff(t *testing.T) {
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 5: 16 * time.Second, 6: 30 * time.Second, 60: 30 * time.Second} {
		if got := backoff(time.Second, 30*time.Second, n); got != want {
			t.Errorf("backoff after %d failures = %s, want %s", n, got, want)
		}
	}
}
