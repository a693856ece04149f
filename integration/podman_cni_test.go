package integration

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

// TestPodmanPublish: podman run -p on an ebpfnet CNI network. Podman
// reserves each published host port with a socket conmon holds, bound
// after CNI ADD; with "runtimeHoldsPorts" the bind guard lets that bind
// through, the outside reaches the container through the eBPF DNAT, and
// other host processes still cannot take the port.
func TestPodmanPublish(t *testing.T) {
	tp := newTopology(t)
	pluginDir := t.TempDir()
	if err := os.Symlink(cniPlugin(t), filepath.Join(pluginDir, "ebpfnet")); err != nil {
		t.Fatal(err)
	}
	p := runtimetest.NewPodman(t, tp.Host, runtimetest.PodmanOptions{CNIPluginDirs: []string{pluginDir}})
	name := runtimetest.UniqueName("pp")
	p.WriteCNIConfig(name+".conflist", fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {"type": "ebpfnet", "subnet": "10.83.0.0/24", "stateDir": %q, "pinRoot": %q,
     "runtimeHoldsPorts": true, "capabilities": {"portMappings": true}}
  ]
}`, name, tp.StateDir, tp.PinRoot))
	tp.Exec(tp.Host, "iptables", "-P", "FORWARD", "DROP")
	p.MustCmd("run", "-d", "--name", "web", "--network", name, "-p", "8080:80", runtimetest.ImageRef, "httpd", "-f", "-p", "80", "-h", "/var/www")

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
	if ct := tp.MustEbpfnet("ct", "ls"); !strings.Contains(ct, testutil.ExtIP) {
		t.Fatalf("no flow from %s in conntrack: the GET did not take the eBPF path:\n%s", testutil.ExtIP, ct)
	}
	// conmon holds the port: another host process cannot bind it.
	if o, err := exec.Command("ip", "netns", "exec", tp.Host, "timeout", "2", runtimetest.BusyboxBin, "nc", "-l", "-p", "8080").CombinedOutput(); err == nil ||
		!strings.Contains(string(o), "in use") {
		t.Errorf("a host process bound the published port 8080: %v %s", err, o)
	}
	// A second container asking for the same host port is refused.
	if _, errOut, err := p.Cmd("run", "-d", "--name", "web2", "--network", name, "-p", "8080:80", runtimetest.ImageRef, "sleep", "60"); err == nil {
		t.Error("a second container published 8080 too")
	} else if !strings.Contains(errOut, "8080") {
		t.Errorf("refusal does not name the port: %s", errOut)
	}
	p.Cmd("rm", "-f", "-t", "0", "web2")
	p.MustCmd("rm", "-f", "-t", "0", "web")
	if nat := tp.MustEbpfnet("nat", "ls"); strings.Contains(nat, "8080") {
		t.Fatalf("binding left after podman rm:\n%s", nat)
	}
}

// podmanEbpfnet is a podman whose CNI networks are ebpfnet networks of tp's
// instance, with runtimeHoldsPorts as Podman needs.
type podmanEbpfnet struct {
	*runtimetest.Podman
	tp *testutil.Topology
}

func newPodmanEbpfnet(t *testing.T, tp *testutil.Topology) podmanEbpfnet {
	pluginDir := t.TempDir()
	if err := os.Symlink(cniPlugin(t), filepath.Join(pluginDir, "ebpfnet")); err != nil {
		t.Fatal(err)
	}
	p := runtimetest.NewPodman(t, tp.Host, runtimetest.PodmanOptions{CNIPluginDirs: []string{pluginDir}})
	return podmanEbpfnet{p, tp}
}

// network writes a conflist for an ebpfnet network on subnet and returns
// its (per-test) name.
func (p podmanEbpfnet) network(prefix, subnet string) string {
	name := runtimetest.UniqueName(prefix)
	p.WriteCNIConfig(name+".conflist", fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {"type": "ebpfnet", "subnet": %q, "stateDir": %q, "pinRoot": %q,
     "runtimeHoldsPorts": true, "capabilities": {"portMappings": true, "ips": true, "mac": true}}
  ]
}`, name, subnet, p.tp.StateDir, p.tp.PinRoot))
	return name
}

// publishedPortAnswers GETs the published port from the outside namespace,
// retrying while the container starts.
func publishedPortAnswers(t *testing.T, tp *testutil.Topology, port string) {
	t.Helper()
	var out []byte
	var err error
	for range 20 {
		out, err = exec.Command("ip", "netns", "exec", tp.Ext, "timeout", "2", runtimetest.BusyboxBin, "wget", "-qO-", "http://"+testutil.HostIP+":"+port+"/index.html").Output()
		if err == nil && strings.TrimSpace(string(out)) == "ebpfnet-test" {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("GET %s:%s from outside: %q %v\nnat ls:\n%s", testutil.HostIP, port, out, err, tp.MustEbpfnet("nat", "ls"))
}

// inspectNet reads a container's address and MAC on a network.
func (p podmanEbpfnet) inspectNet(ctr, network string) string {
	return strings.TrimSpace(p.MustCmd("inspect", "-f", `{{(index .NetworkSettings.Networks "`+network+`").IPAddress}} {{(index .NetworkSettings.Networks "`+network+`").MacAddress}}`, ctr))
}

// TestPodmanNetworkReload is what Podman's own system test `podman network
// reload` (test/system/500-networking.bats) does, on ebpfnet networks:
// podman reload tears the container's networks down (CNI DEL) and sets
// them up again (CNI ADD with the same portMappings) while conmon still
// holds the published host port. The port must answer again with the same
// address and MAC, the container keeps eth0, and a second network
// connected afterwards keeps the port too, through reloads and when the
// first network is disconnected.
func TestPodmanNetworkReload(t *testing.T) {
	tp := newTopology(t)
	p := newPodmanEbpfnet(t, tp)
	net1, net2 := p.network("prl", "10.84.0.0/24"), p.network("prl2", "10.85.0.0/24")
	tp.Exec(tp.Host, "iptables", "-P", "FORWARD", "DROP")
	p.MustCmd("run", "-d", "--name", "web", "--network", net1, "-p", "8080:80", runtimetest.ImageRef, "httpd", "-f", "-p", "80", "-h", "/var/www")
	publishedPortAnswers(t, tp, "8080")
	before := p.inspectNet("web", net1)

	p.MustCmd("network", "reload", "web")
	if out := p.MustCmd("exec", "web", "ip", "-o", "-4", "addr", "show", "eth0"); !strings.Contains(out, strings.Fields(before)[0]+"/24") {
		t.Fatalf("after reload eth0 lacks %s:\n%s", before, out)
	}
	if after := p.inspectNet("web", net1); after != before {
		t.Errorf("address and MAC %q after reload, %q before", after, before)
	}
	publishedPortAnswers(t, tp, "8080")

	p.MustCmd("network", "connect", net2, "web")
	if out := p.MustCmd("exec", "web", "ip", "-o", "-4", "addr", "show", "eth1"); !strings.Contains(out, "10.85.0.") {
		t.Fatalf("eth1 on %s lacks its address:\n%s", net2, out)
	}
	publishedPortAnswers(t, tp, "8080")
	p.MustCmd("network", "reload", "web")
	publishedPortAnswers(t, tp, "8080")
	for _, ifName := range []string{"eth0", "eth1"} {
		p.MustCmd("exec", "web", "ip", "link", "show", ifName)
	}
	// The port follows the container to the network it still has.
	p.MustCmd("network", "disconnect", net1, "web")
	publishedPortAnswers(t, tp, "8080")

	p.MustCmd("rm", "-f", "-t", "0", "web")
	if nat := tp.MustEbpfnet("nat", "ls"); strings.Contains(nat, "8080") {
		t.Fatalf("binding left after podman rm:\n%s", nat)
	}
}
