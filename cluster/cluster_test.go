package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ebpfnet/ebpfnet/internal/testing/etcdtest"
)

const testTTL = 3 * time.Second

// node is one simulated host's view of the cluster from the test process:
// a store client dialling from the host's namespace, its membership, its
// watcher.
type node struct {
	name  string
	addr  netip.Addr
	store *Store
	mem   *Member
	w     *Watcher
	local *FileStore
	mu    sync.Mutex
	evs   []Event
}

func openStore(t *testing.T, c *etcdtest.Cluster, i int) *Store {
	t.Helper()
	s, err := Open(Config{
		Endpoints:      []string{c.Etcd.Endpoint()},
		Dialer:         etcdtest.GRPCDialerIn(c.Hosts[i]),
		RequestTimeout: 2 * time.Second,
		DialTimeout:    2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// startNode joins host i (0-based) and runs its watcher until the test ends.
func startNode(t *testing.T, c *etcdtest.Cluster, i int, localDir string) *node {
	t.Helper()
	n := &node{name: fmt.Sprintf("h%d", i+1), addr: netip.MustParseAddr(etcdtest.HostIP(i + 1))}
	n.store = openStore(t, c, i)
	var err error
	if n.local, err = NewFileStore(localDir); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n.mem, _, err = n.store.Join(ctx, HostOptions{Name: n.name, Addr: n.addr, TTL: testTTL, Local: n.local})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.mem.Close)
	n.w = n.store.NewWatcher(n.name, func(e Event) { n.mu.Lock(); n.evs = append(n.evs, e); n.mu.Unlock() })
	runWatcher(t, n.w)
	return n
}

func runWatcher(t *testing.T, w *Watcher) {
	t.Helper()
	wctx, wcancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(wctx); close(done) }()
	t.Cleanup(func() {
		wcancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("watcher did not stop")
		}
	})
	sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer scancel()
	if err := w.WaitSynced(sctx); err != nil {
		t.Fatalf("watcher never synced: %v", err)
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func hostNames(hs []Host) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Name)
	}
	return out
}

func ips(eps []Endpoint) map[netip.Addr]Endpoint {
	m := map[netip.Addr]Endpoint{}
	for _, e := range eps {
		m[e.IP] = e
	}
	return m
}

// TestClusterMembershipNetworksAllocation: three hosts register and see each
// other; a network created on host 1 is seen by hosts 2 and 3; 3x50
// concurrent allocations never hand out an address twice and appear in every
// host's view. It logs the store load for the scale model.
func TestClusterMembershipNetworksAllocation(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	var nodes []*node
	for i := range 3 {
		nodes = append(nodes, startNode(t, c, i, t.TempDir()))
	}
	for _, n := range nodes {
		waitFor(t, 10*time.Second, n.name+" sees three hosts", func() bool { return len(n.w.Hosts()) == 3 })
		if got := hostNames(n.w.Hosts()); !slices.Equal(got, []string{"h1", "h2", "h3"}) {
			t.Fatalf("%s sees hosts %v", n.name, got)
		}
	}
	if h := nodes[1].w.Hosts()[2]; h.Addr != netip.MustParseAddr(etcdtest.HostIP(3)) || h.Lease == 0 {
		t.Fatalf("host record of h3: %+v", h)
	}

	ctx := ctxT(t, 2*time.Minute)
	o := DefaultNetworkOptions("ov1")
	o.Subnet, o.Host = "10.200.0.0/16", "h1"
	n1, err := nodes[0].store.CreateNetwork(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if n1.VNI != FirstVNI || n1.Gateway != netip.MustParseAddr("10.200.0.1") || n1.BlockBits != 26 {
		t.Fatalf("network: %+v", n1)
	}
	for _, n := range nodes[1:] {
		waitFor(t, 10*time.Second, n.name+" sees ov1", func() bool { _, ok := n.w.Network("ov1"); return ok })
		if got, _ := n.w.Network("ov1"); got.VNI != n1.VNI || got.Subnet != n1.Subnet {
			t.Fatalf("%s sees %+v, want %+v", n.name, got, n1)
		}
	}
	// Refusals: same name from another host, overlap, a used VNI.
	for _, tc := range []struct {
		name, subnet string
		vni          uint32
		want         string
	}{
		{"ov1", "10.201.0.0/16", 0, "already exists"},
		{"ov2", "10.200.128.0/17", 0, "overlaps network ov1"},
		{"ov2", "10.202.0.0/16", FirstVNI, "VNI 4096 is used by network ov1"},
		{"ov2", "bogus", 0, "invalid subnet"},
	} {
		o := DefaultNetworkOptions(tc.name)
		o.Subnet, o.VNI = tc.subnet, tc.vni
		_, err := nodes[2].store.CreateNetwork(ctx, o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("create %s %s vni %d: err %v, want %q", tc.name, tc.subnet, tc.vni, err, tc.want)
		}
	}
	// Concurrent creation from all hosts: one VNI each, all distinct.
	var wg sync.WaitGroup
	vnis := make([]uint32, 3)
	errs := make([]error, 3)
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := DefaultNetworkOptions(fmt.Sprintf("par%d", i))
			o.Subnet = fmt.Sprintf("10.21%d.0.0/16", i)
			nw, err := n.store.CreateNetwork(ctx, o)
			vnis[i], errs[i] = nw.VNI, err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	slices.Sort(vnis)
	if len(slices.Compact(slices.Clone(vnis))) != 3 {
		t.Fatalf("concurrent creations got VNIs %v", vnis)
	}

	// 3 hosts x 50 allocations, 5 workers per host, all at once.
	const perHost, workers = 50, 5
	before := make([]StatsSnapshot, 3)
	for i, n := range nodes {
		before[i] = n.store.Stats().Snapshot()
	}
	var mu sync.Mutex
	got := map[netip.Addr]string{}
	var dup []string
	var allocErrs []error
	start := time.Now()
	for _, n := range nodes {
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range perHost / workers {
					e, err := n.mem.AllocateEndpoint(ctx, "ov1", EndpointRequest{Name: fmt.Sprintf("%s-c%d-%d", n.name, w, k)})
					mu.Lock()
					if err != nil {
						allocErrs = append(allocErrs, err)
					} else if prev, ok := got[e.IP]; ok {
						dup = append(dup, fmt.Sprintf("%s to %s and %s", e.IP, prev, n.name))
					} else {
						got[e.IP] = n.name
					}
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(allocErrs...); err != nil {
		t.Fatal(err)
	}
	if len(dup) > 0 || len(got) != 3*perHost {
		t.Fatalf("%d addresses, duplicates: %v", len(got), dup)
	}
	// Every address is in a block of its host, never the gateway.
	blocks := nodes[0].w.Blocks("ov1")
	waitFor(t, 10*time.Second, "blocks in view", func() bool { blocks = nodes[0].w.Blocks("ov1"); return len(blocks) >= 3 })
	for ip, h := range got {
		if ip == n1.Gateway {
			t.Fatalf("gateway %s allocated", ip)
		}
		i := slices.IndexFunc(blocks, func(b Block) bool { return b.CIDR.Contains(ip) })
		if i < 0 || blocks[i].Host != h {
			t.Fatalf("%s of %s not in a block of %s (blocks %v)", ip, h, h, blocks)
		}
	}
	for _, n := range nodes {
		waitFor(t, 15*time.Second, n.name+" sees 150 endpoints", func() bool { return len(n.w.Endpoints("ov1")) == 3*perHost })
		if r := n.w.RemoteEndpoints("ov1"); len(r) != 2*perHost {
			t.Fatalf("%s: %d remote endpoints, want %d", n.name, len(r), 2*perHost)
		}
		for _, e := range n.w.Endpoints("ov1") {
			if got[e.IP] != e.Host {
				t.Fatalf("%s sees %v, allocated to %s", n.name, e, got[e.IP])
			}
		}
		local, _ := n.local.Endpoints()
		if len(local) != perHost {
			t.Fatalf("%s local store has %d endpoints", n.name, len(local))
		}
	}
	h2ip := nodes[0].w.RemoteEndpoints("ov1")[0]
	if addr, ok := nodes[0].w.HostOf("ov1", h2ip.IP); !ok || addr.String() != etcdtest.HostIP(int(h2ip.Host[1]-'0')) {
		t.Fatalf("HostOf(%s) = %s %v", h2ip.IP, addr, ok)
	}
	// Release frees the address everywhere; the host reuses it.
	e := nodes[1].w.Endpoints("ov1")[0]
	owner := nodes[int(e.Host[1]-'1')]
	if err := owner.mem.ReleaseEndpoint(ctx, "ov1", e.IP); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		waitFor(t, 10*time.Second, n.name+" drops released endpoint", func() bool { _, ok := ips(n.w.Endpoints("ov1"))[e.IP]; return !ok })
	}
	if err := nodes[0].store.RemoveNetwork(ctx, "ov1"); err == nil || !strings.Contains(err.Error(), "has endpoints") {
		t.Fatalf("remove network with endpoints: %v", err)
	}
	again, err := owner.mem.AllocateEndpoint(ctx, "ov1", EndpointRequest{Name: "again", IP: e.IP})
	if err != nil || again.IP != e.IP {
		t.Fatalf("reallocating %s: %v %v", e.IP, again, err)
	}
	if _, err := nodes[0].mem.AllocateEndpoint(ctx, "ov1", EndpointRequest{IP: e.IP}); err == nil {
		t.Fatalf("%s allocated twice", e.IP)
	}

	// Store load, for the scale model.
	var allocTxn, allocRead, watchEndpointEvents int64
	for i, n := range nodes {
		after := n.store.Stats().Snapshot()
		allocTxn += after.Requests("allocate", "txn") - before[i].Requests("allocate", "txn")
		allocRead += after.Requests("allocate", "read") - before[i].Requests("allocate", "read")
		watchEndpointEvents += after.Events["endpoints/put"] - before[i].Events["endpoints/put"]
	}
	t.Logf("scale: 3 hosts, %d allocations in %s: %d txns (%.2f per allocation, block claims included), %d reads; endpoint put events received: %d (= hosts x endpoints = %d)",
		3*perHost, elapsed.Round(time.Millisecond), allocTxn, float64(allocTxn)/float64(3*perHost), allocRead, watchEndpointEvents, 3*3*perHost)
	for _, n := range nodes {
		b, _ := json.Marshal(n.store.Stats().Snapshot())
		t.Logf("stats %s: %s", n.name, b)
	}
	if out := os.Getenv("EBPFNET_SCALE_OUT"); out != "" {
		snaps := map[string]StatsSnapshot{}
		for _, n := range nodes {
			snaps[n.name] = n.store.Stats().Snapshot()
		}
		b, _ := json.MarshalIndent(snaps, "", "  ")
		os.WriteFile(out, b, 0o644)
	}
}

// helperMember runs in a child process (the test binary re-executed in a
// host's namespace): it joins, allocates, prints its endpoints and waits to
// be killed, like a daemon that crashes.
func TestHelperMember(t *testing.T) {
	if os.Getenv("EBPFNET_CLUSTER_HELPER") != "1" {
		t.Skip("helper process only")
	}
	s, err := Open(Config{Endpoints: []string{os.Getenv("H_ENDPOINT")}})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	local, _ := NewFileStore(os.Getenv("H_LOCAL"))
	ttl, _ := time.ParseDuration(os.Getenv("H_TTL"))
	ctx := context.Background()
	m, _, err := s.Join(ctx, HostOptions{Name: os.Getenv("H_NAME"), Addr: netip.MustParseAddr(os.Getenv("H_ADDR")), TTL: ttl, Local: local})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	n, _ := strconv.Atoi(os.Getenv("H_COUNT"))
	var eps []Endpoint
	for i := range n {
		e, err := m.AllocateEndpoint(ctx, os.Getenv("H_NETWORK"), EndpointRequest{Name: fmt.Sprintf("crash%d", i)})
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		eps = append(eps, e)
	}
	b, _ := json.Marshal(eps)
	fmt.Printf("READY %s\n", b)
	select {}
}

// startHelper runs a member of host i as its own process in the host's
// namespace and returns its endpoints and PID.
func startHelper(t *testing.T, c *etcdtest.Cluster, i int, localDir, network string, count int) ([]Endpoint, int) {
	t.Helper()
	cmd := exec.Command("nsenter", "--net="+filepath.Join("/run/netns", c.Hosts[i]), "--", os.Args[0], "-test.run=^TestHelperMember$", "-test.count=1")
	cmd.Env = append(os.Environ(), "EBPFNET_CLUSTER_HELPER=1", "H_ENDPOINT="+c.Etcd.Endpoint(), "H_LOCAL="+localDir,
		"H_TTL="+testTTL.String(), fmt.Sprintf("H_NAME=h%d", i+1), "H_ADDR="+etcdtest.HostIP(i+1), "H_NETWORK="+network, "H_COUNT="+strconv.Itoa(count))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		syscall.Kill(pid, syscall.SIGKILL)
		<-exited
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "READY ") || strings.HasPrefix(l, "ERR ") {
				lines <- l
				return
			}
		}
		close(lines)
	}()
	select {
	case l, ok := <-lines:
		if !ok || !strings.HasPrefix(l, "READY ") {
			t.Fatalf("helper: %q", l)
		}
		var eps []Endpoint
		if err := json.Unmarshal([]byte(strings.TrimPrefix(l, "READY ")), &eps); err != nil {
			t.Fatal(err)
		}
		return eps, pid
	case <-time.After(30 * time.Second):
		t.Fatal("helper not ready after 30s")
	}
	return nil, 0
}

func kill(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

func createNet(t *testing.T, s *Store, name, subnet string) Network {
	t.Helper()
	o := DefaultNetworkOptions(name)
	o.Subnet = subnet
	n, err := s.CreateNetwork(ctxT(t, 20*time.Second), o)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestClusterLeaseExpiryRemovesEndpoints: host 3's member process is killed
// by PID; once its lease runs out the others' views lose the host and its
// endpoints, and nothing else.
func TestClusterLeaseExpiryRemovesEndpoints(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	n1 := startNode(t, c, 0, t.TempDir())
	n2 := startNode(t, c, 1, t.TempDir())
	createNet(t, n1.store, "ov", "10.50.0.0/16")
	ctx := ctxT(t, time.Minute)
	mine, err := n2.mem.AllocateEndpoint(ctx, "ov", EndpointRequest{Name: "stays"})
	if err != nil {
		t.Fatal(err)
	}
	eps, pid := startHelper(t, c, 2, t.TempDir(), "ov", 5)
	for _, n := range []*node{n1, n2} {
		waitFor(t, 10*time.Second, n.name+" sees h3's endpoints", func() bool { return len(n.w.RemoteEndpoints("ov")) >= 5 })
	}
	kill(t, pid)
	killed := time.Now()
	for _, n := range []*node{n1, n2} {
		waitFor(t, testTTL+10*time.Second, n.name+" drops h3", func() bool {
			have := ips(n.w.Endpoints("ov"))
			for _, e := range eps {
				if _, ok := have[e.IP]; ok {
					return false
				}
			}
			return !slices.Contains(hostNames(n.w.Hosts()), "h3")
		})
	}
	t.Logf("h3's endpoints left the views %s after the kill (TTL %s)", time.Since(killed).Round(100*time.Millisecond), testTTL)
	if _, ok := ips(n1.w.Endpoints("ov"))[mine.IP]; !ok {
		t.Fatalf("h2's endpoint %s went too", mine.IP)
	}
	n1.mu.Lock()
	removed := 0
	for _, e := range n1.evs {
		if e.Type == Removed && e.Endpoint != nil && e.Endpoint.Host == "h3" && e.Remote {
			removed++
		}
	}
	n1.mu.Unlock()
	if removed != 5 {
		t.Fatalf("h1 got %d removal events for h3's endpoints, want 5", removed)
	}
}

// TestClusterStoreDownAndBack: with etcd stopped, allocation fails with a
// one-line error and the views stay readable; when it is back, the watchers
// resynchronize by themselves and the leases survive.
func TestClusterStoreDownAndBack(t *testing.T) {
	c := etcdtest.NewCluster(t, 2)
	n1 := startNode(t, c, 0, t.TempDir())
	n2 := startNode(t, c, 1, t.TempDir())
	createNet(t, n1.store, "ov", "10.60.0.0/24")
	ctx := ctxT(t, 2*time.Minute)
	e1, err := n1.mem.AllocateEndpoint(ctx, "ov", EndpointRequest{Name: "before"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "h2 sees h1's endpoint", func() bool { return len(n2.w.RemoteEndpoints("ov")) == 1 })
	leases := []int64{n1.mem.Lease(), n2.mem.Lease()}

	if err := c.Etcd.Stop(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = n2.mem.AllocateEndpoint(ctx, "ov", EndpointRequest{Name: "during"})
	took := time.Since(start)
	if err == nil || !errors.Is(err, ErrUnavailable) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("allocation with etcd down: %v", err)
	}
	if took > 10*time.Second {
		t.Fatalf("allocation took %s to fail", took)
	}
	t.Logf("with etcd down, allocation fails in %s: %v", took.Round(time.Millisecond), err)
	if _, ok := n2.w.Network("ov"); !ok || len(n2.w.RemoteEndpoints("ov")) != 1 || len(n2.w.Hosts()) != 2 {
		t.Fatalf("view with etcd down: networks %v endpoints %v hosts %v", n2.w.Networks(), n2.w.Endpoints("ov"), n2.w.Hosts())
	}
	time.Sleep(testTTL) // longer than the lease: etcd renews leases when it comes back

	if err := c.Etcd.Start(); err != nil {
		t.Fatal(err)
	}
	var e2 Endpoint
	waitFor(t, 30*time.Second, "allocation works again", func() bool {
		e2, err = n2.mem.AllocateEndpoint(ctx, "ov", EndpointRequest{Name: "after"})
		return err == nil
	})
	waitFor(t, 20*time.Second, "h1's view resyncs", func() bool {
		_, ok := ips(n1.w.RemoteEndpoints("ov"))[e2.IP]
		return ok
	})
	o := DefaultNetworkOptions("ov-after")
	o.Subnet = "10.61.0.0/24"
	if _, err := n2.store.CreateNetwork(ctx, o); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "h1 sees the new network", func() bool { _, ok := n1.w.Network("ov-after"); return ok })
	if _, ok := ips(n2.w.Endpoints("ov"))[e1.IP]; !ok || len(n1.w.Hosts()) != 2 {
		t.Fatalf("after restart: endpoints %v hosts %v", n2.w.Endpoints("ov"), n1.w.Hosts())
	}
	if !n1.w.Status().Synced {
		t.Fatalf("status %+v", n1.w.Status())
	}
	for i, n := range []*node{n1, n2} {
		if n.mem.Lease() != leases[i] || n.mem.Rejoins() != 0 {
			t.Errorf("%s: lease %d (was %d), %d rejoins: the lease did not survive the outage", n.name, n.mem.Lease(), leases[i], n.mem.Rejoins())
		}
	}
}

// TestClusterRejoinDuringAllocation: the host joins again (new lease, its
// endpoints re-registered from the local store, the old lease revoked)
// again and again while it allocates. Every allocation that succeeded keeps
// its record, under the current lease, and the other host sees it.
func TestClusterRejoinDuringAllocation(t *testing.T) {
	c := etcdtest.NewCluster(t, 2)
	n1 := startNode(t, c, 0, t.TempDir())
	n2 := startNode(t, c, 1, t.TempDir())
	createNet(t, n1.store, "ov", "10.62.0.0/16")
	ctx := ctxT(t, 2*time.Minute)
	stop := make(chan struct{})
	done := make(chan struct{})
	var made []Endpoint
	var allocErr error
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			e, err := n2.mem.AllocateEndpoint(ctx, "ov", EndpointRequest{})
			if err != nil {
				allocErr = err
				return
			}
			made = append(made, e)
		}
	}()
	for range 10 {
		time.Sleep(30 * time.Millisecond)
		if _, err := n2.mem.rejoin(ctx, clientv3.LeaseID(n2.mem.Lease())); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	<-done
	if allocErr != nil {
		t.Fatal(allocErr)
	}
	r, err := n2.store.cli.Get(ctx, n2.store.key("endpoints", "ov")+"/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	lease := n2.mem.Lease()
	inStore := map[string]int64{}
	for _, kv := range r.Kvs {
		inStore[string(kv.Key)] = kv.Lease
	}
	for _, e := range made {
		if l, ok := inStore[n2.store.endpointKey("ov", e.IP)]; !ok || l != lease {
			t.Errorf("allocated %s: in the store %v, lease %d (want %d)", e, ok, l, lease)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	waitFor(t, 10*time.Second, "h1 sees h2's endpoints", func() bool {
		have := ips(n1.w.RemoteEndpoints("ov"))
		for _, e := range made {
			if _, ok := have[e.IP]; !ok {
				return false
			}
		}
		return true
	})
	t.Logf("%d allocations across %d rejoins", len(made), n2.mem.Rejoins())
}

// TestClusterCrashAndReturn: host 3's member crashes (killed by PID) and
// comes back with a new lease before the old one expired. Endpoints still
// in its local store are taken over by the new lease (they survive the old
// lease's expiry); one removed locally while it was down is deleted, not
// resurrected. A second crash outlasting the TTL: its endpoints leave the
// views, and the return brings back only the live ones.
func TestClusterCrashAndReturn(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	n1 := startNode(t, c, 0, t.TempDir())
	createNet(t, n1.store, "ov", "10.70.0.0/16")
	localDir := t.TempDir()
	eps, pid := startHelper(t, c, 2, localDir, "ov", 3)
	waitFor(t, 10*time.Second, "h1 sees h3's endpoints", func() bool { return len(n1.w.RemoteEndpoints("ov")) == 3 })
	oldLease := n1.w.Hosts()[1].Lease
	kill(t, pid)

	// While h3 is down, its container eps[1] goes away.
	local, err := NewFileStore(localDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := local.DeleteEndpoint("ov", eps[1].IP); err != nil {
		t.Fatal(err)
	}
	s3 := openStore(t, c, 2)
	ctx := ctxT(t, time.Minute)
	m3, res, err := s3.Join(ctx, HostOptions{Name: "h3", Addr: netip.MustParseAddr(etcdtest.HostIP(3)), TTL: testTTL, Local: local})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Registered) != 2 || len(res.Stale) != 1 || res.Stale[0].IP != eps[1].IP || res.OldLease != oldLease || len(res.Conflicts) != 0 {
		t.Fatalf("reconcile: %+v (old lease %d)", res, oldLease)
	}
	want := []netip.Addr{eps[0].IP, eps[2].IP}
	viewIPs := func() []netip.Addr {
		var out []netip.Addr
		for _, e := range n1.w.RemoteEndpoints("ov") {
			out = append(out, e.IP)
		}
		return out
	}
	waitFor(t, 10*time.Second, "stale endpoint gone", func() bool { return slices.Equal(viewIPs(), want) })
	time.Sleep(testTTL + time.Second) // the old lease would have expired by now
	if got := viewIPs(); !slices.Equal(got, want) {
		t.Fatalf("after the old lease's TTL: %v, want %v", got, want)
	}
	// A new allocation on h3 does not reuse anything it still holds.
	e, err := m3.AllocateEndpoint(ctx, "ov", EndpointRequest{Name: "new"})
	if err != nil || slices.Contains(want, e.IP) {
		t.Fatalf("allocation after return: %v %v", e, err)
	}
	want = append(want, e.IP)
	slices.SortFunc(want, netip.Addr.Compare)

	// Second crash, longer than the TTL.
	m3.Close()
	s3.Close()
	waitFor(t, testTTL+10*time.Second, "h3's endpoints expire", func() bool { return len(viewIPs()) == 0 })
	if err := local.DeleteEndpoint("ov", eps[0].IP); err != nil {
		t.Fatal(err)
	}
	s3b := openStore(t, c, 2)
	m3b, res, err := s3b.Join(ctx, HostOptions{Name: "h3", Addr: netip.MustParseAddr(etcdtest.HostIP(3)), TTL: testTTL, Local: local})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m3b.Close)
	if len(res.Registered) != 2 || len(res.Stale) != 0 {
		t.Fatalf("second reconcile: %+v", res)
	}
	want = slices.DeleteFunc(want, func(a netip.Addr) bool { return a == eps[0].IP })
	waitFor(t, 10*time.Second, "live endpoints back", func() bool { return slices.Equal(viewIPs(), want) })
}

// TestParseStoreURL covers the --cluster-store grammar.
func TestParseStoreURL(t *testing.T) {
	got, err := ParseStoreURL("etcd://10.0.0.1:2379,[::1]:2379")
	if err != nil || !slices.Equal(got, []string{"http://10.0.0.1:2379", "http://[::1]:2379"}) {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"", "consul://x:1", "etcd://", "etcd://host", "etcd://:2379"} {
		if _, err := ParseStoreURL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestJoinedAllocatesUnderTheDaemonsLease: another process of a joined host
// (the CLI) allocates under the host's lease and records the endpoint in
// the host's local store; a host that never joined is refused in one line.
func TestJoinedAllocatesUnderTheDaemonsLease(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	dir := t.TempDir()
	n := startNode(t, c, 0, dir)
	createNet(t, n.store, "ov1", "10.210.0.0/24")
	if err := n.local.SetHost(n.name); err != nil {
		t.Fatal(err)
	}

	cli := openStore(t, c, 0)
	local, err := NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	host, err := local.Host()
	if err != nil || host != n.name {
		t.Fatalf("recorded host %q (%v), want %s", host, err, n.name)
	}
	m, err := cli.Joined(ctxT(t, 10*time.Second), host, local)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close() // a no-op: the daemon renews the lease
	if m.Lease() != n.mem.Lease() {
		t.Fatalf("lease %d, want the daemon's %d", m.Lease(), n.mem.Lease())
	}
	e, err := m.AllocateEndpoint(ctxT(t, 10*time.Second), "ov1", EndpointRequest{Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the daemon's view showing the CLI's endpoint", func() bool {
		_, ok := ips(n.w.Endpoints("ov1"))[e.IP]
		return ok
	})
	recorded, err := n.local.Endpoints()
	if err != nil || len(recorded) != 1 || recorded[0].IP != e.IP {
		t.Fatalf("local store %+v (%v), want %s", recorded, err, e.IP)
	}

	_, err = cli.Joined(ctxT(t, 10*time.Second), "h9", local)
	if err == nil || !strings.Contains(err.Error(), "not in the cluster") || strings.Contains(err.Error(), "\n") {
		t.Errorf("Joined for a host that never joined: %v", err)
	}
	other, err := NewFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Host(); err == nil || !strings.Contains(err.Error(), "daemon --advertise-addr") {
		t.Errorf("Host of a state dir no daemon joined from: %v", err)
	}
}
