package integration

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/api"
	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

// apiClient is a client of the daemon tp runs, once it answers.
func apiClient(t *testing.T, tp *testutil.Topology) *api.Client {
	t.Helper()
	c := api.NewClient(filepath.Join(tp.StateDir, "api.sock"))
	t.Cleanup(c.Close)
	waitFor(t, 10*time.Second, func() bool { return c.Ping(context.Background()) == nil })
	return c
}

func wantStatus(t *testing.T, what string, err error, status int, msg string) {
	t.Helper()
	var e *api.Error
	if !errors.As(err, &e) || e.Status != status || !strings.Contains(e.Message, msg) {
		t.Errorf("%s: got %v (%#v), want %d with %q", what, err, e, status, msg)
	}
}

// The daemon's API attaches and detaches as the CLI does, into the same
// store, with real traffic through what it made; bad requests change
// nothing.
func TestAPIAttachDetach(t *testing.T) {
	tp := newTopology(t)
	c1, c2 := tp.AddContainer("c1"), tp.AddContainer("c2")
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	startDaemon(t, tp, "127.0.0.1:9469")
	c := apiClient(t, tp)
	ctx := context.Background()

	fi, err := os.Stat(filepath.Join(tp.StateDir, "api.sock"))
	if err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("API socket: %v, mode %v; want a socket, 0600", err, fi.Mode())
	}

	ep1, err := c.Attach(ctx, api.AttachRequest{Target: c1, Network: "n1", Publish: []string{"8080:80", "8081-8082:81-82/udp"}})
	if err != nil {
		t.Fatal(err)
	}
	if ep1.Name != c1 || ep1.IP.String() != "172.30.0.2" || len(ep1.Ports) != 3 || ep1.HostVeth == "" {
		t.Fatalf("attached %+v, want %s at 172.30.0.2 with 3 ports", ep1, c1)
	}
	if _, err := c.Attach(ctx, api.AttachRequest{Target: c2, Network: "n1"}); err != nil {
		t.Fatal(err)
	}

	// Traffic: container to container, and the published port from outside.
	tp.Exec(c1, "ping", "-c", "1", "-W", "2", "172.30.0.3")
	testutil.Serve(t, tp.Namespace(c1), "c1", ":80")
	if r := testutil.MustAsk(t, tp.Namespace(tp.Ext), "tcp", testutil.HostIP+":8080"); r.Server != "c1" {
		t.Fatalf("published port answered by %q, want c1", r.Server)
	}
	if out := tp.MustEbpfnet("ls"); !strings.Contains(out, c1) || !strings.Contains(out, c2) {
		t.Fatalf("CLI ls after API attaches:\n%s", out)
	}
	if d, err := c.Inspect(ctx, c1); err != nil || d.ProgramID == 0 || d.Rx.Packets == 0 {
		t.Fatalf("inspect %s: %+v, %v; want its program and counted packets", c1, d, err)
	}

	// Bad requests: 400, 404 or 409, and nothing changes.
	c3 := tp.AddContainer("c3")
	for _, tc := range []struct {
		req    api.AttachRequest
		status int
		msg    string
	}{
		{api.AttachRequest{Network: "n1"}, http.StatusBadRequest, "target"},
		{api.AttachRequest{Target: c3, Publish: []string{"99999:80"}}, http.StatusBadRequest, "99999"},
		{api.AttachRequest{Target: c3, Network: "host"}, http.StatusBadRequest, "attach takes bridge"},
		{api.AttachRequest{Target: c3, Network: "n/1"}, http.StatusBadRequest, "invalid --network"},
		{api.AttachRequest{Target: c3, IP: "172.30.0.300"}, http.StatusBadRequest, "not an IP"},
		{api.AttachRequest{Target: c3, DNS: []string{"resolver"}}, http.StatusBadRequest, "not an IP"},
		{api.AttachRequest{Target: c3, Network: "n1", Publish: []string{"8080:80"}}, http.StatusInternalServerError, "8080"},
		{api.AttachRequest{Target: c3, Network: "nonet"}, http.StatusNotFound, "network nonet not found"},
		{api.AttachRequest{Target: tp.Prefix + "-nosuchns", Network: "n1"}, http.StatusNotFound, "no such network namespace"},
		{api.AttachRequest{Target: "/proc/999999999/ns/net", Network: "n1"}, http.StatusNotFound, "999999999"},
		{api.AttachRequest{Target: c2, Name: "again", Network: "n1"}, http.StatusConflict, "already attached"},
		{api.AttachRequest{Target: c3, Name: c1, Network: "n1"}, http.StatusConflict, "endpoint " + c1 + " already exists"},
	} {
		_, err := c.Attach(ctx, tc.req)
		wantStatus(t, "attach "+tc.req.Target+" "+tc.req.Network, err, tc.status, tc.msg)
	}
	if eps, err := c.Endpoints(ctx); err != nil || len(eps) != 2 {
		t.Fatalf("endpoints after bad requests: %d, %v; want 2", len(eps), err)
	}
	if out := tp.Exec(c3, "ip", "-o", "link"); strings.Contains(out, "eth0") {
		t.Fatalf("a refused attach left an interface in %s:\n%s", c3, out)
	}

	// Detach: the endpoint and its host veth are gone; once more is 404.
	if ep, err := c.Detach(ctx, c1); err != nil || ep.Name != c1 {
		t.Fatalf("detach %s: %+v, %v", c1, ep, err)
	}
	if out := tp.Exec(tp.Host, "ip", "-o", "link"); strings.Contains(out, ep1.HostVeth+"@") {
		t.Fatalf("host veth %s still there after detach:\n%s", ep1.HostVeth, out)
	}
	_, err = c.Detach(ctx, c1)
	wantStatus(t, "detach twice", err, http.StatusNotFound, c1)
	_, err = c.Inspect(ctx, "nosuch")
	wantStatus(t, "inspect nosuch", err, http.StatusNotFound, "nosuch")
	if eps, err := c.Endpoints(ctx); err != nil || len(eps) != 1 || eps[0].Name != c2 {
		t.Fatalf("endpoints after detach: %+v, %v; want %s alone", eps, err, c2)
	}
}

// A second daemon does not take over a live API socket; a socket left by
// a daemon that was killed is replaced.
func TestAPISocketOwnership(t *testing.T) {
	tp := newTopology(t)
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	d := startDaemon(t, tp, "127.0.0.1:9469")
	apiClient(t, tp)

	out, err := tp.EbpfnetCmd("daemon", "--metrics-addr", "").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "another daemon serves it") {
		t.Fatalf("second daemon: %v\n%s\nwant it refused", err, out)
	}

	d.Process.Signal(syscall.SIGKILL)
	d.Wait()
	if _, err := os.Stat(filepath.Join(tp.StateDir, "api.sock")); err != nil {
		t.Fatalf("the killed daemon's socket: %v (the test wants a stale one)", err)
	}
	startDaemon(t, tp, "127.0.0.1:9470")
	c := apiClient(t, tp)
	c2 := tp.AddContainer("c2")
	if _, err := c.Attach(context.Background(), api.AttachRequest{Target: c2, Network: "n1"}); err != nil {
		t.Fatalf("attach through the restarted daemon: %v", err)
	}
}

// TestREADMEAPI runs docs/api.md's control API block (it starts a daemon).
func TestREADMEAPI(t *testing.T) {
	tp := newTopology(t)
	// The block names a namespace as a reader would (api1).
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", "api1").Run() })
	runREADMEBlock(t, tp, "<!-- readme-test api -->")
}
