package dockerdriver

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeContainer is one container as a fake dockerd lists it.
type fakeContainer struct {
	Names     []string          // as Docker writes them: "/web"
	Endpoints map[string]string // network name -> endpoint ID ("" before start)
}

// fakeDocker is a fake dockerd answering GET /containers/json?all=1 on a
// unix socket in a temp dir, with what set last gave it.
type fakeDocker struct {
	Socket string
	mu     sync.Mutex
	list   []fakeContainer
	status int // 0: 200
	calls  int
}

func newFakeDocker(t *testing.T, cs ...fakeContainer) *fakeDocker {
	t.Helper()
	f := &fakeDocker{Socket: filepath.Join(t.TempDir(), "docker.sock"), list: cs}
	ln, err := net.Listen("unix", f.Socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return f
}

func (f *fakeDocker) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if r.Method != http.MethodGet || r.URL.Path != "/containers/json" || r.URL.Query().Get("all") != "1" {
		http.Error(w, `{"message":"page not found"}`, http.StatusNotFound)
		return
	}
	if f.status != 0 {
		http.Error(w, `{"message":"daemon is busy"}`, f.status)
		return
	}
	items := []map[string]any{}
	for i, c := range f.list {
		nets := map[string]any{}
		for n, id := range c.Endpoints {
			nets[n] = map[string]any{"NetworkID": "n-" + n, "EndpointID": id, "IPAddress": "172.30.0.9"}
		}
		items = append(items, map[string]any{
			"Id": strings.Repeat(string(rune('a'+i)), 64), "Names": c.Names, "Image": "busybox", "State": "running",
			"NetworkSettings": map[string]any{"Networks": nets},
		})
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(items)
}

// set replaces what the fake lists.
func (f *fakeDocker) set(cs ...fakeContainer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.list = cs
}

func (f *fakeDocker) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeDocker) api(t *testing.T) *DockerAPI {
	t.Helper()
	api, err := NewDockerAPI("unix://" + f.Socket)
	if err != nil {
		t.Fatal(err)
	}
	return api
}

func TestNewDockerAPI(t *testing.T) {
	for host, wantBase := range map[string]string{
		"unix:///var/run/docker.sock": "http://docker",
		"tcp://127.0.0.1:2375":        "http://127.0.0.1:2375",
		"tcp://docker.example:2375/":  "http://docker.example:2375",
	} {
		api, err := NewDockerAPI(host)
		if err != nil || api.base != wantBase || api.Host() != host {
			t.Errorf("NewDockerAPI(%q) = %+v, %v; want base %s", host, api, err, wantBase)
		}
	}
	for _, bad := range []string{"", "/var/run/docker.sock", "unix://", "ssh://me@host", "npipe:////./pipe/docker_engine"} {
		if _, err := NewDockerAPI(bad); err == nil {
			t.Errorf("NewDockerAPI(%q) accepted", bad)
		}
	}
}

func TestDefaultDockerHost(t *testing.T) {
	t.Setenv("DOCKER_HOST", "")
	if h := DefaultDockerHost(); h != "unix:///var/run/docker.sock" {
		t.Errorf("without DOCKER_HOST: %q", h)
	}
	t.Setenv("DOCKER_HOST", "unix:///run/user/1000/docker.sock")
	if h := DefaultDockerHost(); h != "unix:///run/user/1000/docker.sock" {
		t.Errorf("with DOCKER_HOST: %q", h)
	}
}

// TestEndpointContainers: every network's endpoint of every container maps
// to the name docker ps shows (no "/", not a link's alias); containers not
// started (no endpoint ID yet) map nothing.
func TestEndpointContainers(t *testing.T) {
	f := newFakeDocker(t,
		fakeContainer{Names: []string{"/web"}, Endpoints: map[string]string{"front": "e1", "back": "e2"}},
		fakeContainer{Names: []string{"/web/db", "/db"}, Endpoints: map[string]string{"back": "e3"}},
		fakeContainer{Names: []string{"/created"}, Endpoints: map[string]string{"front": ""}},
		fakeContainer{Names: nil, Endpoints: map[string]string{"front": "e4"}},
	)
	got, err := f.api(t).EndpointContainers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"e1": "web", "e2": "web", "e3": "db"}
	if !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestEndpointContainersUnreachable: no dockerd at the socket, or one that
// answers an error, is an error soon, never a hang.
func TestEndpointContainersUnreachable(t *testing.T) {
	api, err := NewDockerAPI("unix://" + filepath.Join(t.TempDir(), "none.sock"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := api.EndpointContainers(context.Background()); err == nil || !strings.Contains(err.Error(), "none.sock") {
		t.Errorf("missing socket: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("missing socket took %v", d)
	}

	f := newFakeDocker(t)
	f.mu.Lock()
	f.status = http.StatusServiceUnavailable
	f.mu.Unlock()
	if _, err := f.api(t).EndpointContainers(context.Background()); err == nil || !strings.Contains(err.Error(), "daemon is busy") {
		t.Errorf("503: %v", err)
	}

	// A dockerd that accepts but never answers is cut by the context.
	hung := filepath.Join(t.TempDir(), "hung.sock")
	ln, err := net.Listen("unix", hung)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	api, _ = NewDockerAPI("unix://" + hung)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := api.EndpointContainers(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hung dockerd: %v", err)
	}
}
