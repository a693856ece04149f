package etcdtest

import (
	"fmt"
	"os/exec"
	"testing"

	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

// Cluster is a simulated cluster: an underlay namespace with a bridge and
// etcd, and N host namespaces whose uplinks are ports of that bridge.
type Cluster struct {
	t        testing.TB
	Prefix   string
	Underlay string   // netns name of the underlay (bridge, etcd)
	Hosts    []string // netns names <p>-h1 ... <p>-hN
	Etcd     *Etcd
}

// NewCluster builds n hosts and starts etcd on the underlay bridge.
func NewCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if _, err := exec.LookPath("etcd"); err != nil {
		t.Skip("etcd not installed (make deps installs etcd-server)")
	}
	p := "ov" + randHex(3)
	c := &Cluster{t: t, Prefix: p, Underlay: p + "-underlay"}
	t.Cleanup(c.cleanup) // registered first: runs after etcd is stopped
	c.addNetns(c.Underlay)
	c.exec(c.Underlay, "ip", "link", "add", "br0", "type", "bridge")
	c.exec(c.Underlay, "ip", "addr", "add", UnderlayIP+"/24", "dev", "br0")
	c.exec(c.Underlay, "ip", "link", "set", "br0", "up")
	for i := 1; i <= n; i++ {
		h := fmt.Sprintf("%s-h%d", p, i)
		c.addNetns(h)
		port := fmt.Sprintf("h%d", i)
		testutil.Run(t, "ip", "link", "add", UplinkIf, "netns", h, "type", "veth", "peer", "name", port, "netns", c.Underlay)
		c.exec(c.Underlay, "ip", "link", "set", port, "master", "br0")
		c.exec(c.Underlay, "ip", "link", "set", port, "up")
		c.exec(h, "ip", "addr", "add", HostIP(i)+"/24", "dev", UplinkIf)
		c.exec(h, "ip", "link", "set", UplinkIf, "up")
		c.exec(h, "ip", "route", "add", "default", "via", UnderlayIP)
		c.Hosts = append(c.Hosts, h)
	}
	c.Etcd = StartEtcd(t, c.Underlay, UnderlayIP)
	return c
}

func (c *Cluster) addNetns(name string) {
	c.t.Helper()
	testutil.Run(c.t, "ip", "netns", "add", name)
	c.exec(name, "ip", "link", "set", "lo", "up")
}

func (c *Cluster) exec(ns string, args ...string) string {
	c.t.Helper()
	return testutil.Run(c.t, "ip", append([]string{"netns", "exec", ns}, args...)...)
}

// Exec runs a command in a namespace of the cluster and fails the test on error.
func (c *Cluster) Exec(ns string, args ...string) string { return c.exec(ns, args...) }

func (c *Cluster) cleanup() { testutil.RemoveNamespaces(c.t, c.Prefix) }
