package dockerdriver

import (
	"context"
	"log/slog"
	"maps"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/datapath"
)

// memNames is a nameStore in memory; it knows only the endpoints in it.
type memNames struct {
	mu    sync.Mutex
	names map[string]string // endpoint ID -> container name ("": none yet)
}

func newMemNames(ids ...string) *memNames {
	m := &memNames{names: map[string]string{}}
	for _, id := range ids {
		m.names[id] = ""
	}
	return m
}

func (m *memNames) SetContainerName(owner, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.names[owner]; !ok {
		return datapath.ErrNotFound
	}
	m.names[owner] = name
	return nil
}

func (m *memNames) get() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.names)
}

// startResolver runs a resolver with short delays until the test ends.
func startResolver(t *testing.T, api containerLister, store nameStore, patience time.Duration) *nameResolver {
	r := newNameResolver(api, store, slog.New(slog.DiscardHandler))
	r.minDelay, r.maxDelay, r.patience = 10*time.Millisecond, 40*time.Millisecond, patience
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("resolver did not stop")
		}
	})
	return r
}

// eventually polls cond for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestNameResolver: requested endpoints get their containers' names, one
// API call for a burst of requests; one whose record is gone is dropped;
// an endpoint dockerd does not list yet (its container is starting) is
// asked about again until it is, or until it is forgotten (deleted).
func TestNameResolver(t *testing.T) {
	f := newFakeDocker(t, fakeContainer{Names: []string{"/web"}, Endpoints: map[string]string{"n1": "e1"}},
		fakeContainer{Names: []string{"/db"}, Endpoints: map[string]string{"n1": "e2", "n2": "e3"}},
		fakeContainer{Names: []string{"/old"}, Endpoints: map[string]string{"n1": "gone"}})
	store := newMemNames("e1", "e2", "e3", "e4")
	r := startResolver(t, f.api(t), store, time.Minute)
	r.request("e1", "e2", "e3", "gone")
	eventually(t, "names of e1 e2 e3", func() bool {
		n := store.get()
		return n["e1"] == "web" && n["e2"] == "db" && n["e3"] == "db"
	})
	if c := f.callCount(); c != 1 {
		t.Errorf("%d API calls for one burst, want 1", c)
	}
	eventually(t, "gone dropped", func() bool { return !r.waiting() })
	if _, ok := store.get()["gone"]; ok {
		t.Errorf("a removed endpoint was recorded")
	}

	// Docker deleted the endpoint before its container was listed.
	r.request("e5")
	r.forget("e5")
	eventually(t, "e5 forgotten", func() bool { return !r.waiting() })

	// e4's container is listed a few passes later.
	r.request("e4")
	eventually(t, "a pass that misses e4", func() bool { return f.callCount() >= 3 })
	if n := store.get()["e4"]; n != "" {
		t.Fatalf("e4 named %q before it was listed", n)
	}
	f.set(fakeContainer{Names: []string{"/api"}, Endpoints: map[string]string{"n1": "e4"}})
	eventually(t, "e4 named api", func() bool { return store.get()["e4"] == "api" })
	eventually(t, "nothing pending", func() bool { return !r.waiting() })
}

// TestNameResolverUnreachable: without a dockerd the resolver retries for
// its patience, names nothing, then gives up and idles; requests never
// block.
func TestNameResolverUnreachable(t *testing.T) {
	api, err := NewDockerAPI("unix://" + filepath.Join(t.TempDir(), "no-dockerd.sock"))
	if err != nil {
		t.Fatal(err)
	}
	store := newMemNames("e1")
	r := startResolver(t, api, store, 300*time.Millisecond)
	start := time.Now()
	r.request("e1")
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("request blocked for %v", d)
	}
	eventually(t, "giving up", func() bool { return !r.waiting() })
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("gave up after %v, before its patience", d)
	}
	if n := store.get()["e1"]; n != "" {
		t.Errorf("e1 named %q without a dockerd", n)
	}
}

// TestContainerNamesOnInstance: on a real instance, the driver records the
// container name of a joined endpoint from dockerd's API; a port clash
// names the container that holds the port; the name finds the endpoint
// (and a container on two networks is ambiguous); a driver started later
// renames what exists (docker rename while it was down).
func TestContainerNamesOnInstance(t *testing.T) {
	h := newTestHost(t)
	const (
		netA = "aaaabbbbccccdddd0000"
		netB = "bbbbccccddddeeee0000"
		e1   = "e1e1e1e1e1e1e1e1"
		e2   = "e2e2e2e2e2e2e2e2"
		e3   = "e3e3e3e3e3e3e3e3"
	)
	f := newFakeDocker(t, fakeContainer{Names: []string{"/web"}, Endpoints: map[string]string{"a": e1, "b": e3}})
	d := New(h.inst, nil)
	stop := d.LookUpNames(context.Background(), f.api(t))
	t.Cleanup(stop)
	h.h = d.Handler()
	must := func(method, body string) {
		t.Helper()
		if st, resp := h.do("NetworkDriver."+method, []byte(body)); st != http.StatusOK {
			t.Fatalf("%s %s: %d %v", method, body, st, resp)
		}
	}
	network := func(id, pool string) string {
		return `{"NetworkID":"` + id + `","Options":{},"IPv4Data":[{"AddressSpace":"LocalDefault","Gateway":"` + pool + `.1/24","Pool":"` + pool + `.0/24"}],"IPv6Data":[]}`
	}
	endpoint := func(net, id, addr string) string {
		return `{"NetworkID":"` + net + `","EndpointID":"` + id + `","Interface":{"Address":"` + addr + `/24"}}`
	}
	join := func(net, id string) string {
		return `{"NetworkID":"` + net + `","EndpointID":"` + id + `","SandboxKey":"/var/run/docker/netns/0123456789ab"}`
	}
	publish := func(id string) string {
		return `{"NetworkID":"` + netA + `","EndpointID":"` + id + `","Options":{"com.docker.network.portmap":[{"Proto":6,"Port":80,"HostIP":"","HostPort":8080,"HostPortEnd":8080}]}}`
	}
	nameOf := func(id string) string {
		ep, _, _ := h.inst.EndpointFor(id, "")
		return ep.ContainerName
	}
	t.Cleanup(func() {
		for _, c := range []struct{ net, id string }{{netA, e1}, {netA, e2}, {netB, e3}} {
			body := []byte(`{"NetworkID":"` + c.net + `","EndpointID":"` + c.id + `"}`)
			h.do("NetworkDriver.RevokeExternalConnectivity", body)
			h.do("NetworkDriver.Leave", body)
			h.do("NetworkDriver.DeleteEndpoint", body)
		}
		h.do("NetworkDriver.DeleteNetwork", []byte(`{"NetworkID":"`+netA+`"}`))
		h.do("NetworkDriver.DeleteNetwork", []byte(`{"NetworkID":"`+netB+`"}`))
	})

	must("CreateNetwork", network(netA, "10.99.0"))
	must("CreateEndpoint", endpoint(netA, e1, "10.99.0.7"))
	must("Join", join(netA, e1))
	eventually(t, "e1 named web", func() bool { return nameOf(e1) == "web" })
	must("ProgramExternalConnectivity", publish(e1))

	// A second container (not listed yet) asks for the same host port.
	must("CreateEndpoint", endpoint(netA, e2, "10.99.0.8"))
	must("Join", join(netA, e2))
	st, resp := h.do("NetworkDriver.ProgramExternalConnectivity", []byte(publish(e2)))
	if msg, _ := resp["Err"].(string); st == http.StatusOK || !strings.Contains(msg, "port 8080/tcp on 0.0.0.0 is already published by container web") {
		t.Errorf("port clash: %d %q, want it to name container web", st, msg)
	}
	if nameOf(e2) != "" {
		t.Errorf("e2 named %q though dockerd does not list it", nameOf(e2))
	}

	if got, err := h.inst.Inspect("web"); err != nil || got.ContainerID != e1 || got.DisplayName() != "web" || got.Name != e1[:12] {
		t.Errorf("inspect web: %+v %v", got.Endpoint, err)
	}
	// The container joins a second network: its name is ambiguous.
	must("CreateNetwork", network(netB, "10.98.0"))
	must("CreateEndpoint", endpoint(netB, e3, "10.98.0.7"))
	must("Join", join(netB, e3))
	eventually(t, "e3 named web", func() bool { return nameOf(e3) == "web" })
	if _, err := h.inst.Inspect("web"); err == nil || !strings.Contains(err.Error(), "container web has 2 endpoints") {
		t.Errorf("inspect of a name on two networks: %v", err)
	}

	// docker rename web front while no plugin ran: the next one learns it
	// at start, for endpoints it did not see join.
	stop()
	f.set(fakeContainer{Names: []string{"/front"}, Endpoints: map[string]string{"a": e1, "b": e3}},
		fakeContainer{Names: []string{"/api"}, Endpoints: map[string]string{"a": e2}})
	d = New(h.inst, nil)
	t.Cleanup(d.LookUpNames(context.Background(), f.api(t)))
	h.h = d.Handler()
	eventually(t, "names learnt at start", func() bool {
		return nameOf(e1) == "front" && nameOf(e3) == "front" && nameOf(e2) == "api"
	})
}
