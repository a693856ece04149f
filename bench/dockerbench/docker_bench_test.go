// Package dockerbench measures `docker run -p` start-to-ready time on the
// ebpfnet Docker driver against Docker's own bridge driver with iptables,
// each with a real dockerd in its own simulated host (internal/testing/runtimetest).
// It runs only from `make bench-docker` (EBPFNET_DOCKER_BENCH=1).
package dockerbench

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/internal/testing/runtimetest"
	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

func env(name string, def int) int {
	var n int
	if _, err := fmt.Sscanf(os.Getenv(name), "%d", &n); err != nil || n <= 0 {
		return def
	}
	return n
}

// TestDockerRunStartup: for each driver, the median over RUNS of the time
// from `docker run -d -p PORT:80` to the first HTTP answer from the outside
// host, first on an empty host and then with PRELOAD ports already
// published (by PRELOAD/100 containers publishing 100 ports each).
func TestDockerRunStartup(t *testing.T) {
	if os.Getenv("EBPFNET_DOCKER_BENCH") == "" {
		t.Skip("run with make bench-docker")
	}
	runtimetest.Require(t, runtimetest.BusyboxBin)
	bin := os.Getenv("EBPFNET_BIN")
	if bin == "" {
		t.Fatal("EBPFNET_BIN must name the ebpfnet binary")
	}
	runs, preload := env("RUNS", 20), env("PRELOAD", 1000)
	var report []string
	for _, mode := range []string{"ebpfnet", "bridge+iptables"} {
		tp := testutil.NewTopology(t, bin)
		net := setup(t, tp, bin, mode)
		empty := measure(t, tp, net, runs, 30000)
		load(t, tp, net, preload)
		loaded := measure(t, tp, net, runs, 31000)
		line := fmt.Sprintf("| %s | %s | %s | %d |", mode, stat(empty), stat(loaded), preload)
		t.Log(line)
		report = append(report, line)
	}
	fmt.Printf("\n`docker run -d -p P:80 ... httpd` to first HTTP answer from outside, %d runs each (median, min-max)\n\n", runs)
	fmt.Println("| driver | empty host | with ports already published | ports |")
	fmt.Println("|---|---|---|---|")
	for _, l := range report {
		fmt.Println(l)
	}
}

type host struct {
	dk   *runtimetest.Dockerd
	net  string
	ext  string
	addr string
}

func setup(t *testing.T, tp *testutil.Topology, bin, mode string) host {
	var dk *runtimetest.Dockerd
	h := host{net: "benchnet", ext: tp.Ext, addr: testutil.HostIP}
	if mode == "ebpfnet" {
		name, socket := runtimetest.PluginSocket(t, "ebpfnetb")
		cmd := exec.Command(runtimetest.NsenterBin, "--net="+filepath.Join("/run/netns", tp.Host), "--",
			bin, "--state-dir", tp.StateDir, "--pin-root", tp.PinRoot, "docker-plugin", "--name", name)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
		for range 100 {
			if _, err := os.Stat(socket); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		dk = runtimetest.Docker(t, tp.Host)
		dk.MustCmd("network", "create", "-d", name, "--subnet", "172.30.0.0/16", h.net)
	} else {
		// Docker's own bridge driver with its iptables rules, all inside
		// the simulated host's namespace (later flags override the
		// harness's --iptables=false ...).
		dk = runtimetest.Docker(t, tp.Host, runtimetest.DockerOptions{ExtraArgs: []string{
			"--iptables=true", "--ip-forward=true", "--ip-masq=true", "--userland-proxy=false"}})
		dk.MustCmd("network", "create", "-d", "bridge", "--subnet", "172.30.0.0/16", h.net)
	}
	h.dk = dk
	return h
}

// ready is the time until an HTTP GET from the outside answers.
func ready(tp *testutil.Topology, h host, port int) error {
	c, err := testutil.Dial(tp.Namespace(h.ext), "tcp4", fmt.Sprintf("%s:%d", h.addr, port), time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(c, "GET /index.html HTTP/1.0\r\n\r\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.Contains(line, "200") {
		return fmt.Errorf("answer %q: %v", line, err)
	}
	return nil
}

func measure(t *testing.T, tp *testutil.Topology, h host, runs, basePort int) []time.Duration {
	var out []time.Duration
	for i := range runs {
		port := basePort + i
		name := fmt.Sprintf("b%d", port)
		start := time.Now()
		h.dk.MustCmd("run", "-d", "--name", name, "--network", h.net, "-p", fmt.Sprintf("%d:80", port),
			runtimetest.ImageName, "httpd", "-f", "-p", "80", "-h", "/var/www")
		deadline := time.Now().Add(20 * time.Second)
		for ready(tp, h, port) != nil {
			if time.Now().After(deadline) {
				t.Fatalf("%s: port %d never answered", name, port)
			}
			time.Sleep(5 * time.Millisecond)
		}
		out = append(out, time.Since(start))
		h.dk.MustCmd("rm", "-f", name)
	}
	return out
}

// load publishes n ports: n/100 containers with 100 ports each.
func load(t *testing.T, tp *testutil.Topology, h host, n int) {
	for i := 0; i < n/100; i++ {
		lo := 40000 + i*100
		h.dk.MustCmd("run", "-d", "--name", fmt.Sprintf("load%d", i), "--network", h.net,
			"-p", fmt.Sprintf("%d-%d:%d-%d", lo, lo+99, lo, lo+99), runtimetest.ImageName, "sleep", "3600")
	}
}

func stat(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
	return fmt.Sprintf("%s (%s-%s)", ms(s[len(s)/2]), ms(s[0]), ms(s[len(s)-1]))
}
