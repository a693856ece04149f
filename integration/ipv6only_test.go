package integration

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

// An IPv6-only network (--ipv4=false --ipv6, Docker 28's): no IPv4
// anywhere on it (bridge, containers, datapath entries), and everything
// IPv6 as on a dual-stack network: container to container, the outside
// through NAT66, names through the embedded resolver on the IPv6 gateway.
// What it cannot have is refused before anything is made; IPv4 and ARP
// from its containers are dropped and counted.
func TestIPv6OnlyNetwork(t *testing.T) {
	tp := newTopology(t)
	dnsSandbox(t, tp)
	dualStackUplink(tp)
	for _, bad := range [][]string{
		{"--ipv4=false"}, // no family at all
		{"--ipv4=false", "--ipv6", "--subnet", "172.33.0.0/24"}, // an IPv4 subnet on it
		{"--ipv4=false", "--ipv6", "--service-cidr", "10.96.0.0/12"},
	} {
		_, stderr, err := tp.Ebpfnet(append([]string{"network", "create", "bad"}, bad...)...)
		if err == nil || !strings.Contains(stderr, "--ipv4=false") {
			t.Errorf("network create %v: %v %q, want a refusal naming --ipv4=false", bad, err, stderr)
		}
	}
	if ls := tp.MustEbpfnet("network", "ls", "-q"); strings.Contains(ls, "bad") {
		t.Fatalf("a refused network exists:\n%s", ls)
	}

	tp.MustEbpfnet("network", "create", "v6only", "--ipv4=false", "--ipv6", "--subnet", "fd00:33::/64")
	startDaemon(t, tp, "127.0.0.1:9481")
	c1, c2 := tp.AddContainer("c1"), tp.AddContainer("c2")
	if _, stderr, err := tp.Ebpfnet("attach", "--network", "v6only", "--ip", "172.33.0.5", c1); err == nil || !strings.Contains(stderr, "IPv6-only") {
		t.Fatalf("attach --ip on an IPv6-only network: %v %q, want a refusal", err, stderr)
	}
	if out := tp.MustEbpfnet("attach", "--network", "v6only", c1); strings.TrimSpace(out) != c1+" v6only fd00:33::2" {
		t.Fatalf("attach printed %q, want only the IPv6 address", out)
	}
	if _, stderr, err := tp.Ebpfnet("attach", "--network", "v6only", "-p", "0.0.0.0:8081:8080", c2); err == nil || !strings.Contains(stderr, "IPv6-only") {
		t.Fatalf("-p 0.0.0.0:... on an IPv6-only network: %v %q, want a refusal", err, stderr)
	}
	tp.MustEbpfnet("attach", "--network", "v6only", "-p", "8081:8080", c2)
	if p := strings.TrimSpace(tp.MustEbpfnet("port", c2)); p != "8080/tcp -> [::]:8081" {
		t.Errorf("port %s: %q, want 8080/tcp -> [::]:8081 (no IPv4 to publish on)", c2, p)
	}
	if row := tp.MustEbpfnet("network", "ls", "--format", "{{.Name}} {{.Subnet6}} {{.Gateway6}}"); !strings.Contains(row, "v6only fd00:33::/64 fd00:33::1") {
		t.Errorf("network ls: %q", row)
	}
	if ls := tp.MustEbpfnet("network", "ls"); !strings.Contains(ls, "fd00:33::/64") || strings.Contains(ls, "invalid") {
		t.Errorf("network ls table:\n%s", ls)
	}
	if addrs := tp.Exec(c1, "ip", "-4", "-o", "addr", "show", "dev", "eth0"); strings.TrimSpace(addrs) != "" {
		t.Errorf("c1 has IPv4 addresses:\n%s", addrs)
	}
	if r := tp.Exec(c1, "ip", "-6", "route", "show", "default"); !strings.Contains(r, "via fd00:33::1") {
		t.Errorf("c1's IPv6 default route: %q", r)
	}
	if r := tp.Exec(c1, "ip", "-4", "route", "show"); strings.TrimSpace(r) != "" {
		t.Errorf("c1 has IPv4 routes: %q", r)
	}
	var nets []struct {
		Bridge string `json:"bridge"`
		Subnet string `json:"subnet"`
	}
	if err := json.Unmarshal([]byte(tp.MustEbpfnet("network", "inspect", "v6only")), &nets); err != nil || len(nets) != 1 || nets[0].Subnet != "" {
		t.Fatalf("network inspect: %+v %v, want one network without an IPv4 subnet", nets, err)
	}
	bridge := nets[0].Bridge
	if a := tp.Exec(tp.Host, "ip", "-4", "-o", "addr", "show", "dev", bridge); strings.TrimSpace(a) != "" {
		t.Errorf("bridge %s has IPv4 addresses:\n%s", bridge, a)
	}
	ls := tp.MustEbpfnet("ls")
	if !strings.Contains(ls, "fd00:33::2") || strings.Contains(ls, "invalid") {
		t.Errorf("ls:\n%s", ls)
	}

	// Container to container, and the outside through NAT66.
	testutil.Serve6(t, tp.Namespace(c2), "c2", ":8080")
	if r := testutil.MustAsk(t, tp.Namespace(c1), "tcp6", "[fd00:33::3]:8080"); r.Server != "c2" || r.Source != "fd00:33::2" {
		t.Fatalf("c1 -> c2: %+v", r)
	}
	// Its published port answers over IPv6 only, the client's address kept.
	if r := testutil.MustAsk(t, tp.Namespace(tp.Ext), "tcp6", "["+hostIP6+"]:8081"); r.Server != "c2" || r.Source != extIP6 {
		t.Errorf("the published port over IPv6: %+v", r)
	}
	if _, err := testutil.Dial(tp.Namespace(tp.Ext), "tcp4", testutil.HostIP+":8081", time.Second); err == nil {
		t.Error("the published port of an IPv6-only container answered over IPv4")
	}
	testutil.Serve6(t, tp.Namespace(tp.Ext), "ext", ":8080")
	if r := testutil.MustAsk(t, tp.Namespace(c1), "tcp6", "["+extIP6+"]:8080"); r.Server != "ext" || r.Source != hostIP6 {
		t.Fatalf("c1 -> outside: %+v, want masqueraded to %s", r, hostIP6)
	}

	// Names: resolv.conf points at the IPv6 gateway, where the daemon
	// answers AAAA; hosts lists the container's own IPv6 address.
	if resolv := readFile(t, filepath.Join("/etc/netns", c1, "resolv.conf")); !strings.Contains(resolv, "nameserver fd00:33::1\n") {
		t.Errorf("%s's resolv.conf:\n%s", c1, resolv)
	}
	if hosts := readFile(t, filepath.Join("/etc/netns", c1, "hosts")); !strings.Contains(hosts, "fd00:33::2\t"+c1) {
		t.Errorf("%s's hosts:\n%s", c1, hosts)
	}
	mustResolve(t, c1, c2, "fd00:33::3")

	// IPv4 and ARP from a container of it go nowhere, counted.
	v := tp.Views()
	noIPv4 := dropCount(t, v, "no_ipv4")
	tp.Exec(c1, "ip", "addr", "add", "172.33.0.9/24", "dev", "eth0")
	tp.Exec(c1, "sh", "-c", "ping -c 1 -W 1 172.33.0.1 || true")
	if dropCount(t, v, "no_ipv4") == noIPv4 {
		t.Error("no no_ipv4 drop counted for IPv4 and ARP from an IPv6-only container")
	}
	if _, err := testutil.Dial(tp.Namespace(c1), "tcp4", testutil.ExtIP+":22", time.Second); err == nil {
		t.Error("IPv4 left an IPv6-only network")
	}

	tp.MustEbpfnet("detach", c1)
	tp.MustEbpfnet("detach", c2)
	tp.MustEbpfnet("network", "rm", "v6only")
	if subnets, err := v.Subnets(); err != nil || len(subnets) != 0 {
		t.Errorf("subnets after network rm: %v %v", subnets, err)
	}
}
