package overlay

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/cluster"
	"github.com/ebpfnet/ebpfnet/internal/testing/etcdtest"
)

// TestOverlayAgentJoinsCreatesAndLeaves: an agent joins while the store is down
// (retrying until it is back) and records the host's name for the host's
// other processes; creates an overlay network any host lists; Close keeps
// the host in the cluster (a restart within the TTL is invisible), a new
// agent joins again in its place and Leave takes the host out at once.
func TestOverlayAgentJoinsCreatesAndLeaves(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the cluster runs in network namespaces: run as root")
	}
	c := etcdtest.NewCluster(t, 1)
	state := t.TempDir()
	cfg := Config{Store: c.Etcd.Store(), StateDir: state, Dialer: etcdtest.GRPCDialerIn(c.Hosts[0]), Log: slog.New(slog.DiscardHandler)}
	host := HostOptions{Addr: netip.MustParseAddr(etcdtest.HostIP(1)), Name: "h1", TTL: 3 * time.Second}

	s, err := cluster.Open(cluster.Config{Endpoints: []string{c.Etcd.Endpoint()}, Dialer: etcdtest.GRPCDialerIn(c.Underlay)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hosts := func() []string {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		hs, _ := s.Hosts(ctx)
		var out []string
		for _, h := range hs {
			out = append(out, fmt.Sprintf("%s@%s", h.Name, h.Addr))
		}
		slices.Sort(out)
		return out
	}

	if err := c.Etcd.Stop(); err != nil {
		t.Fatal(err)
	}
	a := New(nil, cfg)
	joined := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		joined <- a.Join(ctx, host)
	}()
	time.Sleep(2 * time.Second)
	select {
	case err := <-joined:
		t.Fatalf("joined with the store down: %v", err)
	default:
	}
	if err := c.Etcd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := <-joined; err != nil {
		t.Fatalf("join after the store came back: %v", err)
	}
	if got := hosts(); !slices.Equal(got, []string{"h1@198.18.0.11"}) {
		t.Fatalf("hosts %v after join", got)
	}
	local, err := cluster.NewFileStore(state)
	if err != nil {
		t.Fatal(err)
	}
	if name, err := local.Host(); err != nil || name != "h1" {
		t.Errorf("recorded host %q (%v), want h1", name, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o := cluster.DefaultNetworkOptions("ov1")
	o.Subnet = "10.210.0.0/24"
	n, err := a.CreateNetwork(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if hn, _ := os.Hostname(); n.VNI != cluster.FirstVNI || n.CreatedBy != hn {
		t.Errorf("created %+v, want VNI %d by %s", n, cluster.FirstVNI, hn)
	}
	other := New(nil, Config{Store: cfg.Store, StateDir: t.TempDir(), Dialer: cfg.Dialer})
	defer other.Close()
	nets, err := other.Networks(ctx)
	if err != nil || len(nets) != 1 || nets[0].Name != "ov1" {
		t.Errorf("networks %+v (%v), want ov1", nets, err)
	}

	a.Close()
	if got := hosts(); !slices.Equal(got, []string{"h1@198.18.0.11"}) {
		t.Fatalf("hosts %v right after Close: the lease must live on", got)
	}

	b := New(nil, cfg)
	defer b.Close()
	if err := b.Join(ctx, host); err != nil {
		t.Fatal(err)
	}
	if got := hosts(); !slices.Equal(got, []string{"h1@198.18.0.11"}) {
		t.Fatalf("hosts %v after the second join", got)
	}
	if err := b.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if got := hosts(); len(got) != 0 {
		t.Errorf("hosts %v right after Leave, want none", got)
	}
}
