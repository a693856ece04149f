package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/internal/runtimetest"
	"github.com/ebpfnet/ebpfnet/internal/testutil"
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
