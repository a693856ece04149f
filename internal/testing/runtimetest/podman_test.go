package runtimetest

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

func TestPodmanRunNetworkNone(t *testing.T) {
	t.Parallel()
	tp := newHost(t)
	p := NewPodman(t, tp.Host)
	if out := strings.TrimSpace(p.MustCmd("run", "--rm", "--network", "none", ImageRef, "echo", "ok")); out != "ok" {
		t.Fatalf("podman run printed %q, want ok", out)
	}
}

// TestPodmanCNIPortmap runs a podman container on a per-test CNI network
// (reference bridge + portmap) and reaches its published port from the
// outside namespace: the path the ebpfnet CNI plugin will take, with
// portMappings passed as runtimeConfig by podman.
func TestPodmanCNIPortmap(t *testing.T) {
	t.Parallel()
	tp := newHost(t)
	Require(t, filepath.Join(CNIPluginDir, "bridge"), filepath.Join(CNIPluginDir, "portmap"))
	p := NewPodman(t, tp.Host)
	name := UniqueName("pm")
	br := UniqueName("pmbr")[:12]
	p.WriteCNIConfig(name+".conflist", fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": %q,
  "plugins": [
    {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.78.0.0/24", "gateway": "10.78.0.1"}]],
              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": %q}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}`, name, br, filepath.Join(p.Dir, "ipam")))
	p.MustCmd("run", "-d", "--name", "web", "--network", name, "-p", "8080:80", ImageRef, "httpd", "-f", "-p", "80", "-h", "/var/www")
	ip := strings.TrimSpace(p.MustCmd("inspect", "-f", "{{(index .NetworkSettings.Networks \""+name+"\").IPAddress}}", "web"))
	if !strings.HasPrefix(ip, "10.78.0.") {
		t.Fatalf("container address %q not in 10.78.0.0/24", ip)
	}
	// From the outside namespace through the published port (portmap's
	// DNAT in the host namespace).
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
	p.MustCmd("rm", "-f", "-t", "0", "web")
}
