package integration

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/internal/testing/etcdtest"
	"github.com/ebpfnet/ebpfnet/internal/testing/runtimetest"
)

// startDockerPlugin runs `ebpfnet docker-plugin` on the overlay host in the
// daemon's place (joined to the cluster) under a per-test driver name, and
// a dockerd beside it.
func (h *ovHost) startDockerPlugin() (name string, dk *runtimetest.Dockerd) {
	h.t.Helper()
	name, socket := runtimetest.PluginSocket(h.t, "ebov")
	var log bytes.Buffer
	cmd := exec.Command(runtimetest.NsenterBin, "--net="+filepath.Join("/run/netns", h.ns), "--",
		ebpfnetBin, "--state-dir", h.state, "--pin-root", h.pinRoot, "--cluster-store", h.store,
		"docker-plugin", "--name", name, "--gc-interval", "1s", "--docker-host", "",
		"--advertise-addr", etcdtest.HostIP(h.i), "--lease-ttl", "3s")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	h.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM) // by PID
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if h.t.Failed() {
			h.t.Logf("host %d plugin log:\n%s", h.i, log.String())
		}
	})
	waitUntil(h.t, 30*time.Second, "the plugin joining the cluster", func() bool {
		_, err1 := os.Stat(socket)
		_, err2 := os.Stat(filepath.Join(h.state, "cluster-host"))
		return err1 == nil && err2 == nil
	})
	return name, runtimetest.Docker(h.t, h.ns)
}

// TestDockerOnOverlay: `docker network create -d ebpfnet --ipam-driver
// ebpfnet --ipam-opt ebpfnet.overlay=ov1` on two hosts puts both Docker
// networks on the overlay network ov1: containers of the two dockerds get
// addresses from the cluster and reach each other over ebpfnet's VXLAN;
// removing a container gives its address back.
func TestDockerOnOverlay(t *testing.T) {
	t.Parallel()
	runtimetest.Require(t, runtimetest.BusyboxBin)
	_, hs := newOverlayHosts(t, 2)
	type host struct {
		driver string
		dk     *runtimetest.Dockerd
	}
	var docker []host
	for _, h := range hs {
		name, dk := h.startDockerPlugin()
		docker = append(docker, host{name, dk})
	}
	hs[0].must("network", "create", "--driver", "overlay", "ov1", "--subnet", "10.220.0.0/24")
	for _, d := range docker {
		d.dk.MustCmd("network", "create", "-d", d.driver, "--ipam-driver", d.driver, "--ipam-opt", "ebpfnet.overlay=ov1", "dnet")
	}
	if got := strings.TrimSpace(docker[0].dk.MustCmd("network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}} {{(index .IPAM.Config 0).Gateway}}", "dnet")); got != "10.220.0.0/24 10.220.0.1" {
		t.Errorf("docker network inspect: %q, want ov1's subnet and gateway", got)
	}
	docker[0].dk.MustCmd("run", "-d", "--name", "web", "--network", "dnet", runtimetest.ImageName, "sh", "-c", "exec httpd -f -p 80 -h /var/www")
	docker[1].dk.MustCmd("run", "-d", "--name", "client", "--network", "dnet", runtimetest.ImageName, "sleep", "600")
	ipOf := func(d host, ctr string) string {
		return strings.TrimSpace(d.dk.MustCmd("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", ctr))
	}
	ipWeb, ipClient := ipOf(docker[0], "web"), ipOf(docker[1], "client")
	t.Logf("web %s (host 1), client %s (host 2)", ipWeb, ipClient)
	if !strings.HasPrefix(ipWeb, "10.220.0.") || !strings.HasPrefix(ipClient, "10.220.0.") || ipWeb == ipClient {
		t.Fatalf("addresses %s and %s: want two of ov1's", ipWeb, ipClient)
	}
	// Each host knows the other's container from the cluster.
	waitUntil(t, 15*time.Second, "host 2 learning web", func() bool { return strings.Contains(hs[1].remoteIPs(), ipWeb) })
	var out string
	err := retry(func() (err error) {
		out, _, err = docker[1].dk.Cmd("exec", "client", "timeout", "5", "wget", "-qO-", "http://"+ipWeb+"/index.html")
		return err
	})
	if err != nil || strings.TrimSpace(out) != "ebpfnet-test" {
		t.Fatalf("client (host 2) -> web (host 1): %q %v", out, err)
	}
	if peers := hs[1].must("overlay", "peers"); !strings.Contains(peers, etcdtest.HostIP(1)) {
		t.Errorf("host 2's peers:\n%s", peers)
	}
	// The address goes back to the cluster with the container.
	docker[0].dk.MustCmd("rm", "-f", "web")
	waitUntil(t, 15*time.Second, "host 2 forgetting web", func() bool { return !strings.Contains(hs[1].remoteIPs(), ipWeb) })
}
