package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ebpfnet/ebpfnet/datapath"
	"github.com/ebpfnet/ebpfnet/datapath/ports"
)

// The API over a real socket with a backend that records what it was asked:
// what reaches the datapath, and what an answer looks like for each kind of
// failure. The real datapath behind it is in integration/api_test.go.

type recorder struct {
	mu       sync.Mutex
	attached []datapath.AttachOptions
	detached []string
	err      error // what every call fails with, if set
}

func (r *recorder) Attach(_ context.Context, o datapath.AttachOptions) (datapath.Endpoint, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return datapath.Endpoint{}, r.err
	}
	r.attached = append(r.attached, o)
	return datapath.Endpoint{Name: o.Target, Mode: o.Mode, IP: netip.MustParseAddr("172.17.0.2")}, nil
}

func (r *recorder) Detach(_ context.Context, target string) (datapath.Endpoint, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return datapath.Endpoint{}, r.err
	}
	r.detached = append(r.detached, target)
	return datapath.Endpoint{Name: target}, nil
}

func (r *recorder) Endpoints() ([]datapath.Endpoint, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return []datapath.Endpoint{{Name: "a"}, {Name: "b"}}, r.err
}

func (r *recorder) Inspect(target string) (datapath.EndpointDetail, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var d datapath.EndpointDetail
	d.Name = target
	return d, r.err
}

// serve runs the API on a socket in a test directory.
func serve(t *testing.T, b Backend) (*Client, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: Handler(b, slog.New(slog.NewTextHandler(io.Discard, nil)))}
	go srv.Serve(ln)
	c := NewClient(sock)
	t.Cleanup(func() { c.Close(); srv.Close() })
	return c, sock
}

func TestAttachReachesBackend(t *testing.T) {
	r := &recorder{}
	c, _ := serve(t, r)
	ctx := context.Background()
	ep, err := c.Attach(ctx, AttachRequest{Target: "c1", Network: "web", IP: "10.1.0.9", IP6: "fd00:1::9",
		Publish: []string{"8080:80", "127.0.0.1:5353:53/udp"}, DNS: []string{"10.0.0.53"}, Aliases: []string{"db"}})
	if err != nil {
		t.Fatal(err)
	}
	if ep.Name != "c1" || ep.IP != netip.MustParseAddr("172.17.0.2") {
		t.Errorf("answer %+v: want the backend's endpoint", ep)
	}
	if len(r.attached) != 1 {
		t.Fatalf("backend got %d attaches, want 1", len(r.attached))
	}
	o := r.attached[0]
	if o.Mode != datapath.ModeBridge || o.Network != "web" || o.Target != "c1" || o.IP != "10.1.0.9" || o.IP6 != "fd00:1::9" {
		t.Errorf("options %+v: want bridge mode on web, target c1, ip 10.1.0.9, ip6 fd00:1::9", o)
	}
	want := []ports.Mapping{
		{Proto: ports.TCP, HostPort: 8080, ContainerPort: 80},
		{Proto: ports.UDP, HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 5353, ContainerPort: 53},
	}
	if len(o.PortRequests) != len(want) {
		t.Fatalf("ports %+v: want %+v", o.PortRequests, want)
	}
	for k, p := range o.PortRequests {
		if p.Mapping != want[k] {
			t.Errorf("port %d: %+v, want %+v", k, p.Mapping, want[k])
		}
	}
	if len(o.DNS) != 1 || o.DNS[0] != netip.MustParseAddr("10.0.0.53") || len(o.Aliases) != 1 || o.Aliases[0] != "db" {
		t.Errorf("DNS options %+v", o.DNSOptions)
	}

	// --network=none and the default network (bridge).
	if _, err := c.Attach(ctx, AttachRequest{Target: "c2", Network: "none"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Attach(ctx, AttachRequest{Target: "c3"}); err != nil {
		t.Fatal(err)
	}
	if m := r.attached[1].Mode; m != datapath.ModeNone {
		t.Errorf("network none: mode %s", m)
	}
	if o := r.attached[2]; o.Mode != datapath.ModeBridge || o.Network != "" {
		t.Errorf("no network: mode %s network %q, want bridge on the default network", o.Mode, o.Network)
	}

	if _, err := c.Detach(ctx, "ns/with slash"); err != nil {
		t.Fatal(err)
	}
	if len(r.detached) != 1 || r.detached[0] != "ns/with slash" {
		t.Errorf("detached %q: want the target as sent", r.detached)
	}
	eps, err := c.Endpoints(ctx)
	if err != nil || len(eps) != 2 {
		t.Errorf("endpoints %v, %v", eps, err)
	}
	d, err := c.Inspect(ctx, "c1")
	if err != nil || d.Name != "c1" {
		t.Errorf("inspect %+v, %v", d, err)
	}
}

// Invalid requests are 400 with a message that says what is wrong, and the
// backend never sees them.
func TestBadRequests(t *testing.T) {
	r := &recorder{}
	_, sock := serve(t, r)
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	for _, tc := range []struct{ name, body, msg string }{
		{"not JSON", `{"target": `, "malformed attach request"},
		{"unknown field", `{"target": "c1", "ports": ["80"]}`, `unknown field "ports"`},
		{"no target", `{"network": "bridge"}`, "target: the network namespace to attach"},
		{"host mode", `{"target": "c1", "network": "host"}`, "attach takes bridge, none or a network's name"},
		{"bad ip", `{"target": "c1", "ip": "10.0.0.300"}`, `ip "10.0.0.300": not an IP address`},
		{"bad ip6", `{"target": "c1", "ip6": "10.0.0.3"}`, `ip6 "10.0.0.3": not an IPv6 address`},
		{"bad port", `{"target": "c1", "publish": ["99999:80"]}`, `invalid port spec "99999:80"`},
		{"bad dns", `{"target": "c1", "dns": ["resolver"]}`, `dns "resolver": not an IP address`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := hc.Post("http://ebpfnet"+Version+"/endpoints", "application/json", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e Error
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
				t.Fatalf("%d: body is no error message: %v", resp.StatusCode, err)
			}
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(e.Message, tc.msg) {
				t.Errorf("%d %q: want 400 with %q", resp.StatusCode, e.Message, tc.msg)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
	if len(r.attached) != 0 {
		t.Errorf("the backend got %d invalid attaches", len(r.attached))
	}
}

// A lookup that found nothing is 404, a name or target already in use 409
// (issue 21 item 12: it was 500), anything else the backend fails with is
// 500; the client returns each as *Error with the backend's message.
func TestErrorStatus(t *testing.T) {
	r := &recorder{}
	c, _ := serve(t, r)
	ctx := context.Background()
	for _, tc := range []struct {
		err    error
		status int
	}{
		{fmt.Errorf("detach: %w", datapath.ErrNotFound), http.StatusNotFound},
		{fmt.Errorf("attach: %w", datapath.ErrExists), http.StatusConflict},
		{errors.New("create veth: file exists"), http.StatusInternalServerError},
		{&Error{http.StatusConflict, "in use"}, http.StatusConflict},
	} {
		r.mu.Lock()
		r.err = tc.err
		r.mu.Unlock()
		for what, call := range map[string]func() error{
			"attach":  func() error { _, err := c.Attach(ctx, AttachRequest{Target: "c1"}); return err },
			"detach":  func() error { _, err := c.Detach(ctx, "c1"); return err },
			"inspect": func() error { _, err := c.Inspect(ctx, "c1"); return err },
		} {
			var e *Error
			if err := call(); !errors.As(err, &e) || e.Status != tc.status || e.Message != tc.err.Error() {
				t.Errorf("%s failing with %q: got %#v, want status %d and the message", what, tc.err, err, tc.status)
			}
		}
	}
}

func TestListen(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "sub", "api.sock")
	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("socket mode %o, want 600 (owner only)", perm)
	}
	// A listening socket takes connections into its backlog: no Accept
	// is needed for the dial Listen makes to succeed.
	if _, err := Listen(sock); err == nil || !strings.Contains(err.Error(), "another daemon serves it") {
		t.Errorf("second listener on a live socket: %v", err)
	}

	// A socket nobody answers on (its daemon died) is replaced.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	ln, err = Listen(sock)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	ln.Close()

	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(file); err == nil || !strings.Contains(err.Error(), "is no socket") {
		t.Errorf("a regular file: %v", err)
	}
	if raw, _ := os.ReadFile(file); string(raw) != "keep" {
		t.Error("Listen changed a file that is no socket")
	}
}
