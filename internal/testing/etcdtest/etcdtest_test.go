package etcdtest

import (
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestClusterEtcdReachableFromHosts: etcd answers on the underlay from every
// host namespace, survives a stop/start on its data dir, and never listens
// in the root namespace.
func TestClusterEtcdReachableFromHosts(t *testing.T) {
	c := NewCluster(t, 2)
	for _, h := range c.Hosts {
		out := c.Exec(h, "etcdctl", "--endpoints", c.Etcd.Endpoint(), "--dial-timeout", "3s", "put", "k-"+h, "v")
		if !strings.Contains(out, "OK") {
			t.Fatalf("put from %s: %q", h, out)
		}
	}
	if err := c.Etcd.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := c.Etcd.Start(); err != nil {
		t.Fatal(err)
	}
	out := c.Exec(c.Hosts[1], "etcdctl", "--endpoints", c.Etcd.Endpoint(), "get", "k-"+c.Hosts[0], "--print-value-only")
	if strings.TrimSpace(out) != "v" {
		t.Fatalf("value after restart: %q", out)
	}
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: DialerIn(c.Hosts[0])}}
	resp, err := hc.Get(c.Etcd.Endpoint() + "/health")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "true") {
		t.Fatalf("health: %s", b)
	}
	root, _ := exec.Command("ss", "-ltnH").Output()
	if strings.Contains(string(root), ":2379") {
		t.Fatalf("something listens on :2379 in the root namespace:\n%s", root)
	}
}
