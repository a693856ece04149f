package runtimetest

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

// newHost builds a simulated host (testutil.Topology) and checks that the
// root namespace is untouched once everything is cleaned up.
func newHost(t *testing.T) *testutil.Topology {
	t.Helper()
	Require(t, NsenterBin)
	CheckRootNetUntouched(t)
	return testutil.NewTopology(t, "") // the ebpfnet binary is not used here
}

func TestImageArchive(t *testing.T) {
	if _, err := os.Stat(BusyboxBin); err != nil {
		t.Skipf("%s missing (make deps installs busybox-static)", BusyboxBin)
	}
	p := filepath.Join(t.TempDir(), "img.tar")
	if err := WriteImageArchive(p, BusyboxBin); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = b
	}
	for _, want := range []string{"oci-layout", "index.json", "manifest.json"} {
		if _, ok := files[want]; !ok {
			t.Errorf("archive lacks %s", want)
		}
	}
	var dm []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &dm); err != nil || len(dm) != 1 {
		t.Fatalf("manifest.json: %v %s", err, files["manifest.json"])
	}
	for _, b := range append([]string{dm[0].Config}, dm[0].Layers...) {
		if _, ok := files[b]; !ok {
			t.Errorf("manifest.json names missing blob %s", b)
		}
	}
	// Deterministic: a second write gives the same bytes.
	p2 := filepath.Join(t.TempDir(), "img2.tar")
	WriteImageArchive(p2, BusyboxBin)
	a, _ := os.ReadFile(p)
	b, _ := os.ReadFile(p2)
	if string(a) != string(b) {
		t.Error("image archive is not deterministic")
	}
}

func TestDockerRunNetworkNone(t *testing.T) {
	t.Parallel()
	tp := newHost(t)
	dk := Docker(t, tp.Host)

	if out := strings.TrimSpace(dk.MustCmd("run", "--rm", "--network", "none", ImageName, "echo", "ok")); out != "ok" {
		t.Fatalf("docker run printed %q, want ok", out)
	}
	// The container sees only lo.
	links := dk.MustCmd("run", "--rm", "--network", "none", ImageName, "ip", "-o", "link")
	if strings.Count(strings.TrimSpace(links), "\n") != 0 || !strings.Contains(links, "lo:") {
		t.Errorf("container with --network none has links:\n%s", links)
	}
	// --bridge=none: no default bridge network, no docker0 in the host ns.
	nets := dk.MustCmd("network", "ls", "--format", "{{.Name}}")
	if strings.Contains(nets, "bridge") {
		t.Errorf("dockerd made a bridge network despite --bridge=none:\n%s", nets)
	}
	if out := tp.Exec(tp.Host, "ip", "-o", "link"); strings.Contains(out, "docker0") {
		t.Errorf("docker0 in the host namespace:\n%s", out)
	}
	// dockerd runs in the host namespace (nsenter), not in the root one.
	self, _ := os.Readlink("/proc/self/ns/net")
	theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", dk.PID()))
	if err != nil || theirs == self {
		t.Errorf("dockerd netns %q (err %v), test netns %q", theirs, err, self)
	}
	// A detached container, left running: the cleanup must remove it.
	dk.MustCmd("run", "-d", "--network", "none", "--name", "left", ImageName, "sleep", "600")
}

func TestDockerOverlay2(t *testing.T) {
	t.Parallel()
	tp := newHost(t)
	dk := Docker(t, tp.Host, DockerOptions{StorageDriver: "overlay2"})
	if out := strings.TrimSpace(dk.MustCmd("run", "--rm", "--network", "none", ImageName, "echo", "ok")); out != "ok" {
		t.Fatalf("docker run printed %q, want ok", out)
	}
	if d := strings.TrimSpace(dk.MustCmd("info", "--format", "{{.Driver}}")); d != "overlay2" {
		t.Errorf("storage driver %q", d)
	}
}

func TestContainerdRun(t *testing.T) {
	t.Parallel()
	tp := newHost(t)
	c := Containerd(t, tp.Host)

	out := c.MustCtr("run", "--rm", ImageRef, UniqueName("ok-"), "echo", "ok")
	if strings.TrimSpace(out) != "ok" {
		t.Fatalf("ctr run printed %q, want ok", out)
	}
	// Without --net-host (the default) the container has a netns of its own.
	links := c.MustCtr("run", "--rm", ImageRef, UniqueName("ln-"), "ip", "-o", "link")
	if strings.Count(strings.TrimSpace(links), "\n") != 0 || !strings.Contains(links, "lo:") {
		t.Errorf("ctr run container has links:\n%s", links)
	}
	// A running container left behind: the cleanup must remove it.
	c.MustCtr("run", "-d", ImageRef, UniqueName("left-"), "sleep", "600")
}

func TestContainerdCNIBridge(t *testing.T) {
	t.Parallel()
	tp := newHost(t)
	Require(t, UnshareBin, filepath.Join(CNIPluginDir, "bridge"), filepath.Join(CNIPluginDir, "host-local"))
	c := Containerd(t, tp.Host)

	// Per-test network name (host-local keeps its leases under
	// /var/lib/cni/networks/<name>, shared by the machine) and bridge.
	name := UniqueName("rt")
	br := UniqueName("rtbr")[:12]
	c.WriteCNIConfig("10-"+name+".conflist", fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.77.0.0/24", "gateway": "10.77.0.1"}]],
              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": %q}}
  ]
}`, name, br, filepath.Join(c.Dir, "ipam")))

	out := c.MustCtrCNI("run", "--rm", "--cni", ImageRef, UniqueName("cni-"),
		"sh", "-c", "ip -o -4 addr show eth0; for i in 1 2 3 4 5; do ping -c 1 -W 2 10.77.0.1 >/dev/null && echo gateway-ok && break; sleep 1; done")
	t.Logf("container:\n%s", out)
	var ip net.IP
	for _, f := range strings.Fields(out) {
		if a, _, err := net.ParseCIDR(f); err == nil && a.To4() != nil {
			ip = a
		}
	}
	_, subnet, _ := net.ParseCIDR("10.77.0.0/24")
	if ip == nil || !subnet.Contains(ip) {
		t.Fatalf("container has no address in %s:\n%s", subnet, out)
	}
	if !strings.Contains(out, "gateway-ok") {
		t.Errorf("container could not ping the bridge gateway in the host namespace")
	}
	// The bridge is in the simulated host, with the gateway address.
	if addrs := tp.Exec(tp.Host, "ip", "-o", "-4", "addr", "show", br); !strings.Contains(addrs, "10.77.0.1/24") {
		t.Errorf("bridge %s in the host namespace lacks the gateway:\n%s", br, addrs)
	}
	// --rm ran CNI DEL: the lease is gone.
	leases, _ := os.ReadDir(filepath.Join(c.Dir, "ipam", name))
	for _, l := range leases {
		if net.ParseIP(l.Name()) != nil {
			t.Errorf("lease %s left after ctr run --rm", l.Name())
		}
	}
}

// TestNerdctlPublish runs a container with nerdctl on containerd 1.6, on a
// per-test CNI network, with -p 8080:80 reached from the outside namespace.
func TestNerdctlPublish(t *testing.T) {
	t.Parallel()
	tp := newHost(t)
	Require(t, NerdctlBin, filepath.Join(CNIPluginDir, "bridge"), filepath.Join(CNIPluginDir, "portmap"))
	c := Containerd(t, tp.Host)
	name := UniqueName("nd")
	ForgetCNINetwork(t, name)
	c.MustNerdctl("network", "create", "--subnet", "10.79.0.0/24", name)
	c.MustNerdctl("run", "-d", "--name", "web", "--network", name, "-p", "8080:80", ImageRef, "httpd", "-f", "-p", "80", "-h", "/var/www")
	var out string
	var err error
	for i := 0; i < 20; i++ {
		out, _, err = runCmd(testutilExec(tp.Ext, "timeout", "5", BusyboxBin, "wget", "-qO-", "http://"+testutil.HostIP+":8080/index.html"))
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil || strings.TrimSpace(out) != "ebpfnet-test" {
		t.Fatalf("GET %s:8080 from outside: %q %v", testutil.HostIP, out, err)
	}
	c.MustNerdctl("rm", "-f", "web")
	c.MustNerdctl("network", "rm", name)
}
