package integration

// End-to-end with a real runtime: containerd's ctr and nerdctl, started in
// the simulated host by internal/testing/runtimetest.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/internal/testing/runtimetest"
	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

// containerdHost is a sandbox host running containerd, with the ebpfnet
// plugin in the test's CNI bin dir and a conflist for a network of a
// per-test name on this host's ebpfnet instance.
func containerdHost(t *testing.T, subnet string) (*testutil.Topology, *runtimetest.ContainerdDaemon, string) {
	return containerdHostWith(t, subnet, "")
}

// containerdHostWith is containerdHost with more settings for the plugin
// (extra: JSON members, each with a leading comma).
func containerdHostWith(t *testing.T, subnet, extra string) (*testutil.Topology, *runtimetest.ContainerdDaemon, string) {
	tp := newTopology(t)
	runtimetest.Require(t, runtimetest.UnshareBin, runtimetest.BusyboxBin)
	c := runtimetest.Containerd(t, tp.Host)
	if err := os.Symlink(cniPlugin(t), filepath.Join(c.CNIBinDir, "ebpfnet")); err != nil {
		t.Fatal(err)
	}
	name := runtimetest.UniqueName("eb")
	c.WriteCNIConfig("10-"+name+".conflist", fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {"type": "ebpfnet", "subnet": %q, "stateDir": %q, "pinRoot": %q%s,
     "capabilities": {"portMappings": true}},
    {"type": "tuning", "sysctl": {"net.ipv4.ip_unprivileged_port_start": "0"}}
  ]
}`, name, subnet, tp.StateDir, tp.PinRoot, extra))
	return tp, c, name
}

// TestContainerdCtrRunCNI: `ctr run --cni` gets an ebpfnet interface,
// reaches the outside masqueraded to the host's address, and --rm's CNI DEL
// removes the endpoint.
func TestContainerdCtrRunCNI(t *testing.T) {
	tp, c, _ := containerdHost(t, "10.81.0.0/24")
	tp.Exec(tp.Host, "iptables", "-P", "FORWARD", "DROP")
	testutil.Serve(t, tp.Namespace(tp.Ext), "ext", ":9000")
	out := c.MustCtrCNI("run", "--rm", "--cni", runtimetest.ImageRef, runtimetest.UniqueName("ctr-"),
		"sh", "-c", "ip -o -4 addr show eth0; echo hello | timeout 5 nc "+testutil.ExtIP+" 9000")
	t.Logf("container:\n%s", out)
	if !strings.Contains(out, "10.81.0.") {
		t.Fatalf("no ebpfnet address in the container:\n%s", out)
	}
	if !strings.Contains(out, "ext "+testutil.HostIP+":") {
		t.Fatalf("outside server did not answer seeing the host's address (masquerade):\n%s", out)
	}
	if ls := tp.MustEbpfnet("ls"); strings.Contains(ls, "10.81.0.") {
		t.Fatalf("endpoint left after ctr run --rm:\n%s", ls)
	}
}

// TestContainerdCtrRunCNIDualStack: a dual-stack conflist through
// containerd (`ctr run --cni`): the container gets both addresses and
// reaches the outside over IPv6, masqueraded (NAT66) to the host's IPv6
// address, with the host's IPv6 FORWARD policy DROP.
func TestContainerdCtrRunCNIDualStack(t *testing.T) {
	tp, c, _ := containerdHostWith(t, "10.84.0.0/24", `, "ipv6": true, "subnet6": "fd00:84::/64"`)
	dualStackUplink(tp)
	tp.Exec(tp.Host, "ip6tables", "-P", "FORWARD", "DROP")
	testutil.Serve6(t, tp.Namespace(tp.Ext), "ext", ":9000")
	out := c.MustCtrCNI("run", "--rm", "--cni", runtimetest.ImageRef, runtimetest.UniqueName("ctr-"),
		"sh", "-c", "ip -o addr show eth0; echo hello | timeout 5 nc "+extIP6+" 9000")
	t.Logf("container:\n%s", out)
	if !strings.Contains(out, "10.84.0.") || !strings.Contains(out, "fd00:84::") {
		t.Fatalf("the container lacks an address of a family:\n%s", out)
	}
	if !strings.Contains(out, "ext ["+hostIP6+"]:") {
		t.Fatalf("the outside server did not answer over IPv6 seeing the host's address (NAT66):\n%s", out)
	}
	if ls := tp.MustEbpfnet("ls"); strings.Contains(ls, "fd00:84::") {
		t.Fatalf("endpoint left after ctr run --rm:\n%s", ls)
	}
}

// TestContainerdNerdctlPublish: nerdctl on containerd 1.6 passes -p as the
// portMappings runtimeConfig; the outside host reaches the container's
// server through the eBPF DNAT, and the endpoint is an ordinary ebpfnet one.
func TestContainerdNerdctlPublish(t *testing.T) {
	runtimetest.Require(t, runtimetest.NerdctlBin)
	tp, c, name := containerdHost(t, "10.82.0.0/24")
	tp.Exec(tp.Host, "iptables", "-P", "FORWARD", "DROP")
	c.MustNerdctl("run", "-d", "--name", "web", "--network", name, "-p", "8080:80", runtimetest.ImageRef, "httpd", "-f", "-p", "80", "-h", "/var/www")
	var out []byte
	var err error
	for range 30 {
		out, err = exec.Command("ip", "netns", "exec", tp.Ext, "timeout", "5", runtimetest.BusyboxBin, "wget", "-qO-", "http://"+testutil.HostIP+":8080/index.html").Output()
		if err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil || strings.TrimSpace(string(out)) != "ebpfnet-test" {
		t.Fatalf("GET %s:8080 from outside: %q %v", testutil.HostIP, out, err)
	}
	if nat := tp.MustEbpfnet("nat", "ls"); !strings.Contains(nat, "8080") {
		t.Fatalf("nat ls lacks 8080:\n%s", nat)
	}
	// The client's address is kept: conntrack holds the outside host's.
	if ct := tp.MustEbpfnet("ct", "ls"); !strings.Contains(ct, testutil.ExtIP) {
		t.Fatalf("no flow from %s in conntrack:\n%s", testutil.ExtIP, ct)
	}
	c.MustNerdctl("rm", "-f", "web")
	if ls := tp.MustEbpfnet("ls"); strings.Contains(ls, "10.82.0.") {
		t.Fatalf("endpoint left after nerdctl rm:\n%s", ls)
	}
}
