package overlay

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/cluster"
	"github.com/ebpfnet/ebpfnet/datapath"
)

// fakeView is a cluster view: hosts, networks and every endpoint record.
type fakeView struct {
	self     string
	synced   bool
	hosts    []cluster.Host
	networks []cluster.Network
	eps      []cluster.Endpoint
}

func (v *fakeView) Status() cluster.Status      { return cluster.Status{Synced: v.synced} }
func (v *fakeView) Hosts() []cluster.Host       { return v.hosts }
func (v *fakeView) Networks() []cluster.Network { return v.networks }
func (v *fakeView) Endpoints(network string) []cluster.Endpoint {
	return slices.DeleteFunc(slices.Clone(v.eps), func(e cluster.Endpoint) bool { return e.Network != network })
}
func (v *fakeView) RemoteEndpoints(network string) []cluster.Endpoint {
	return slices.DeleteFunc(v.Endpoints(network), func(e cluster.Endpoint) bool { return e.Host == v.self })
}

// fakeDatapath records what the syncer writes.
type fakeDatapath struct {
	names    map[string][]datapath.RemoteName
	synced   []datapath.OverlayView
	syncErr  error
	eps      []datapath.Endpoint
	networks []datapath.Network
	removed  []string
}

func (d *fakeDatapath) SetRemoteNames(n map[string][]datapath.RemoteName) { d.names = n }
func (d *fakeDatapath) SyncOverlay(v datapath.OverlayView) (datapath.OverlaySync, error) {
	if d.syncErr != nil {
		return datapath.OverlaySync{}, d.syncErr
	}
	d.synced = append(d.synced, v)
	return datapath.OverlaySync{Written: len(v.Endpoints)}, nil
}
func (d *fakeDatapath) Endpoints() ([]datapath.Endpoint, error) { return d.eps, nil }
func (d *fakeDatapath) Networks() ([]datapath.Network, error)   { return d.networks, nil }
func (d *fakeDatapath) RemoveNetwork(name string) error {
	d.removed = append(d.removed, name)
	d.networks = slices.DeleteFunc(d.networks, func(n datapath.Network) bool { return n.Name == name })
	return nil
}

// fakeMember records the records the syncer releases.
type fakeMember struct {
	name     string
	released []string
}

func (m *fakeMember) Name() string { return m.name }
func (m *fakeMember) ReleaseEndpoint(_ context.Context, network string, ip netip.Addr) error {
	m.released = append(m.released, network+"/"+ip.String())
	return nil
}

var (
	h1, h2, h3 = netip.MustParseAddr("198.18.0.11"), netip.MustParseAddr("198.18.0.12"), netip.MustParseAddr("198.18.0.13")
	ov1        = cluster.Network{Name: "ov1", Subnet: netip.MustParsePrefix("10.210.0.0/24"), VNI: 4096}
)

func ep(network, ip, host, name string) cluster.Endpoint {
	return cluster.Endpoint{Network: network, IP: netip.MustParseAddr(ip), MAC: "02:42:0a:d2:00:01", Host: host, Name: name}
}

// testSyncer is a syncer for host h1 over a view and datapath the test
// changes, with a clock it moves.
type testSyncer struct {
	*syncer
	v   *fakeView
	d   *fakeDatapath
	m   *fakeMember
	now time.Time
}

func newTestSyncer(t *testing.T) *testSyncer {
	t.Helper()
	ts := &testSyncer{
		v:   &fakeView{self: "h1", synced: true, hosts: []cluster.Host{{Name: "h1", Addr: h1}, {Name: "h2", Addr: h2}, {Name: "h3", Addr: h3}}, networks: []cluster.Network{ov1}},
		d:   &fakeDatapath{},
		m:   &fakeMember{name: "h1"},
		now: time.Unix(1000, 0),
	}
	ts.syncer = newSyncer(ts.d, ts.m, slog.New(slog.DiscardHandler), newSyncMetrics())
	ts.view = ts.v
	ts.syncer.now = func() time.Time { return ts.now }
	return ts
}

// TestOverlaySyncerWritesTheView: the remote endpoints of hosts in the cluster go
// to the maps with their host's address, the other hosts are the peers,
// named remote endpoints go to the resolver; this host's own records and
// endpoints of hosts that left do not.
func TestOverlaySyncerWritesTheView(t *testing.T) {
	ts := newTestSyncer(t)
	ts.v.eps = []cluster.Endpoint{
		ep("ov1", "10.210.0.2", "h1", "a"),   // this host's
		ep("ov1", "10.210.0.64", "h2", "b"),  // named
		ep("ov1", "10.210.0.128", "h3", ""),  // unnamed
		ep("ov1", "10.210.0.192", "h4", "d"), // h4 left
	}
	ts.d.eps = []datapath.Endpoint{{Name: "a", Network: "ov1", IP: netip.MustParseAddr("10.210.0.2"), Mode: datapath.ModeBridge}}
	ts.sync()
	if len(ts.d.synced) != 1 {
		t.Fatalf("%d syncs, want 1", len(ts.d.synced))
	}
	v := ts.d.synced[0]
	if !slices.Equal(v.Peers, []netip.Addr{h2, h3}) {
		t.Errorf("peers %v, want [%s %s]", v.Peers, h2, h3)
	}
	var got []string
	for _, e := range v.Endpoints {
		got = append(got, e.Network+" "+e.IP.String()+" "+e.Host.String())
	}
	slices.Sort(got)
	if want := []string{"ov1 10.210.0.128 198.18.0.13", "ov1 10.210.0.64 198.18.0.12"}; !slices.Equal(got, want) {
		t.Errorf("remote endpoints %v, want %v", got, want)
	}
	if want := map[string][]datapath.RemoteName{"ov1": {{Name: "b", IP: netip.MustParseAddr("10.210.0.64")}}}; len(ts.d.names) != 1 || !slices.Equal(ts.d.names["ov1"], want["ov1"]) {
		t.Errorf("remote names %v, want %v", ts.d.names, want)
	}
	if !ts.metrics.viewSynced.Load() || ts.metrics.applied.Load() != ts.now.UnixNano() || ts.metrics.failures.Load() != 0 {
		t.Errorf("metrics: synced %v applied %d failures %d", ts.metrics.viewSynced.Load(), ts.metrics.applied.Load(), ts.metrics.failures.Load())
	}
	if len(ts.m.released) != 0 || len(ts.d.removed) != 0 {
		t.Errorf("released %v, removed %v: want nothing", ts.m.released, ts.d.removed)
	}
}

// TestOverlaySyncerWritesIPv6: on a dual-stack overlay network a remote
// endpoint goes to the maps by both addresses, with the same host and MAC;
// an IPv6 address outside the network's IPv6 subnet is not written.
func TestOverlaySyncerWritesIPv6(t *testing.T) {
	ts := newTestSyncer(t)
	ov6 := cluster.Network{Name: "ov6", Subnet: netip.MustParsePrefix("10.213.0.0/24"), Subnet6: netip.MustParsePrefix("fd00:213::/64"), VNI: 4097}
	ts.v.networks = append(ts.v.networks, ov6)
	b, c := ep("ov6", "10.213.0.64", "h2", "b"), ep("ov6", "10.213.0.128", "h3", "c")
	b.IP6, c.IP6 = netip.MustParseAddr("fd00:213::40"), netip.MustParseAddr("fd00:99::80")
	ts.v.eps = []cluster.Endpoint{b, c, ep("ov1", "10.210.0.64", "h2", "")}
	ts.sync()
	if len(ts.d.synced) != 1 {
		t.Fatalf("%d syncs, want 1", len(ts.d.synced))
	}
	var got []string
	for _, e := range ts.d.synced[0].Endpoints {
		got = append(got, e.Network+" "+e.IP.String()+" "+e.Host.String()+" "+e.MAC)
	}
	slices.Sort(got)
	want := []string{"ov1 10.210.0.64 198.18.0.12 02:42:0a:d2:00:01", "ov6 10.213.0.128 198.18.0.13 02:42:0a:d2:00:01",
		"ov6 10.213.0.64 198.18.0.12 02:42:0a:d2:00:01", "ov6 fd00:213::40 198.18.0.12 02:42:0a:d2:00:01"}
	if !slices.Equal(got, want) {
		t.Errorf("remote endpoints %v, want %v", got, want)
	}
	// b's name resolves to both addresses (A and AAAA); c's IPv6 address,
	// outside the subnet, to none.
	wantNames := []datapath.RemoteName{{Name: "b", IP: b.IP}, {Name: "b", IP: b.IP6}, {Name: "c", IP: c.IP}}
	if !slices.Equal(ts.d.names["ov6"], wantNames) {
		t.Errorf("remote names %v, want %v", ts.d.names["ov6"], wantNames)
	}
}

// TestOverlaySyncerKeepsTheMapsWhileTheViewIsOutOfStep: a view that is not in
// step with the store (it is away) is not applied, and a failed write is
// counted and cleans nothing up.
func TestOverlaySyncerKeepsTheMapsWhileTheViewIsOutOfStep(t *testing.T) {
	ts := newTestSyncer(t)
	ts.v.synced = false
	ts.sync()
	if len(ts.d.synced) != 0 || ts.d.names != nil || ts.metrics.viewSynced.Load() {
		t.Fatalf("a view out of step was applied: %v %v", ts.d.synced, ts.d.names)
	}

	ts.v.synced = true
	ts.d.syncErr = errors.New("map full")
	ts.v.eps = []cluster.Endpoint{ep("ov1", "10.210.0.3", "h1", "gone")}
	for range 3 {
		ts.sync()
		ts.now = ts.now.Add(orphanGrace)
	}
	if ts.metrics.failures.Load() != 3 || ts.metrics.applied.Load() != 0 {
		t.Errorf("failures %d applied %d, want 3 and 0", ts.metrics.failures.Load(), ts.metrics.applied.Load())
	}
	if len(ts.m.released) != 0 {
		t.Errorf("released %v after failed syncs", ts.m.released)
	}
}

// TestOverlaySyncerReleasesOrphansAfterGrace: a record of this host whose endpoint
// is not attached is released once it has been missing for orphanGrace (an
// attach allocates before it plumbs); attached endpoints' records, other
// hosts' records, and a record whose endpoint came back in time are kept.
func TestOverlaySyncerReleasesOrphansAfterGrace(t *testing.T) {
	ts := newTestSyncer(t)
	ts.v.eps = []cluster.Endpoint{
		ep("ov1", "10.210.0.2", "h1", "attached"),
		ep("ov1", "10.210.0.3", "h1", "orphan"),
		ep("ov1", "10.210.0.4", "h1", "late"), // attaches within the grace
		ep("ov1", "10.210.0.64", "h2", "b"),
	}
	attach := func(ips ...string) {
		ts.d.eps = nil
		for _, ip := range ips {
			ts.d.eps = append(ts.d.eps, datapath.Endpoint{Network: "ov1", IP: netip.MustParseAddr(ip), Mode: datapath.ModeBridge})
		}
	}
	attach("10.210.0.2")
	ts.sync()
	ts.now = ts.now.Add(orphanGrace / 2)
	attach("10.210.0.2", "10.210.0.4")
	ts.sync()
	if len(ts.m.released) != 0 {
		t.Fatalf("released %v within the grace", ts.m.released)
	}
	ts.now = ts.now.Add(orphanGrace / 2)
	ts.sync()
	if !slices.Equal(ts.m.released, []string{"ov1/10.210.0.3"}) {
		t.Fatalf("released %v, want [ov1/10.210.0.3]", ts.m.released)
	}
	if len(ts.missingSince) != 0 {
		t.Errorf("still tracked: %v", ts.missingSince)
	}
	// A record that goes missing now starts its own grace.
	attach("10.210.0.2")
	ts.sync()
	ts.now = ts.now.Add(orphanGrace - time.Second)
	ts.sync()
	if len(ts.m.released) != 1 {
		t.Errorf("released %v before 10.210.0.4's grace ran out", ts.m.released)
	}
}

// TestOverlaySyncerRemovesGoneNetworksAfterGrace: this host's part of an overlay
// network the cluster no longer has goes once it has been gone for
// orphanGrace and no endpoint uses it; bridge networks, networks the
// cluster has and networks with endpoints stay.
func TestOverlaySyncerRemovesGoneNetworksAfterGrace(t *testing.T) {
	ts := newTestSyncer(t)
	ts.d.networks = []datapath.Network{
		{Name: "ov1", VNI: 4096},   // in the cluster
		{Name: "gone", VNI: 4097},  // not any more
		{Name: "inuse", VNI: 4098}, // not any more, but an endpoint uses it
		{Name: "bridge1", VNI: 0},  // local
	}
	ts.d.eps = []datapath.Endpoint{{Name: "x", Network: "inuse", IP: netip.MustParseAddr("10.99.0.2"), Mode: datapath.ModeBridge}}
	ts.sync()
	ts.now = ts.now.Add(orphanGrace - time.Millisecond)
	ts.sync()
	if len(ts.d.removed) != 0 {
		t.Fatalf("removed %v within the grace", ts.d.removed)
	}
	ts.now = ts.now.Add(time.Millisecond)
	ts.sync()
	if !slices.Equal(ts.d.removed, []string{"gone"}) {
		t.Fatalf("removed %v, want [gone]", ts.d.removed)
	}
	ts.now = ts.now.Add(orphanGrace)
	ts.sync()
	if !slices.Equal(ts.d.removed, []string{"gone"}) {
		t.Errorf("removed %v, want [gone] only", ts.d.removed)
	}
}

// TestOverlaySyncerRunsOnChangeAndInterval: a change the watcher reports syncs at
// once; the interval syncs without one; the loop ends with its context.
func TestOverlaySyncerRunsOnChangeAndInterval(t *testing.T) {
	ts := newTestSyncer(t)
	d := &lockedDatapath{fakeDatapath: ts.d, synced: make(chan struct{}, 16)}
	ts.syncer.inst = d
	ts.interval = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ts.run(ctx); close(done) }()
	ts.changed()
	ts.changed() // coalesced or not, never blocks
	select {
	case <-d.synced:
	case <-time.After(5 * time.Second):
		t.Fatal("no sync after a change")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("run did not end with its context")
	}

	ts2 := newTestSyncer(t)
	d2 := &lockedDatapath{fakeDatapath: ts2.d, synced: make(chan struct{}, 16)}
	ts2.syncer.inst = d2
	ts2.interval = 10 * time.Millisecond
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go ts2.run(ctx2)
	select {
	case <-d2.synced:
	case <-time.After(5 * time.Second):
		t.Fatal("no sync after the interval")
	}
}

// lockedDatapath tells the test each sync (the loop runs in a goroutine).
type lockedDatapath struct {
	*fakeDatapath
	synced chan struct{}
}

func (d *lockedDatapath) SyncOverlay(v datapath.OverlayView) (datapath.OverlaySync, error) {
	select {
	case d.synced <- struct{}{}:
	default:
	}
	return datapath.OverlaySync{}, nil
}

// TestOverlayAgentWithoutStore: with no cluster store there are no overlay
// networks, and creating one says there is no store.
func TestOverlayAgentWithoutStore(t *testing.T) {
	a := New(nil, Config{StateDir: t.TempDir()})
	defer a.Close()
	if a.HasStore() {
		t.Error("HasStore without a store")
	}
	nets, err := a.Networks(context.Background())
	if err != nil || nets != nil {
		t.Errorf("Networks: %v %v, want none", nets, err)
	}
	if _, err := a.CreateNetwork(context.Background(), cluster.DefaultNetworkOptions("ov1")); !errors.Is(err, ErrNoStore) {
		t.Errorf("CreateNetwork: %v, want ErrNoStore", err)
	}
	if err := a.Run(context.Background()); !errors.Is(err, ErrNotJoined) {
		t.Errorf("Run before Join: %v", err)
	}
	if err := a.Leave(context.Background()); !errors.Is(err, ErrNotJoined) {
		t.Errorf("Leave before Join: %v", err)
	}
	bad := New(nil, Config{Store: "consul://x:1"})
	defer bad.Close()
	if _, err := bad.Networks(context.Background()); err == nil || !strings.Contains(err.Error(), "invalid cluster store") {
		t.Errorf("bad store: %v", err)
	}
}

// TestOverlayNotReleasedError reads as the CLI's warning did.
func TestOverlayNotReleasedError(t *testing.T) {
	e := &NotReleasedError{Endpoint: datapath.Endpoint{Name: "a", Network: "ov1", IP: netip.MustParseAddr("10.210.0.2")}, Err: cluster.ErrUnavailable}
	want := "a detached, but its address 10.210.0.2 on ov1 stays taken in the cluster until this host's daemon rejoins: cluster store unreachable"
	if e.Error() != want || !errors.Is(e, cluster.ErrUnavailable) {
		t.Errorf("%q, want %q", e.Error(), want)
	}
}
