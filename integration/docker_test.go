package integration

// The Docker remote network driver (`ebpfnet docker-plugin`) with a real
// dockerd in the simulated host, driven through the docker CLI.

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/internal/testing/runtimetest"
	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

// dockerHost is a sandbox host (FORWARD policy DROP) running
// `ebpfnet docker-plugin` under a per-test name and a dockerd.
type dockerHost struct {
	*testutil.Topology
	t      *testing.T
	dk     *runtimetest.Dockerd
	name   string // driver name: docker network create -d NAME
	socket string
	// dockerAPI is the plugin's --docker-host socket: absent (no
	// container names, and never a machine's own dockerd) until
	// exposeDockerAPI links it to the test's dockerd.
	dockerAPI string
	mu        sync.Mutex
	plugin    *exec.Cmd
	log       *syncBuffer
}

func newDockerHost(t *testing.T) *dockerHost {
	tp := newTopology(t)
	runtimetest.Require(t, runtimetest.BusyboxBin)
	tp.Exec(tp.Host, "iptables", "-P", "FORWARD", "DROP")
	h := &dockerHost{Topology: tp, t: t}
	h.name, h.socket = runtimetest.PluginSocket(t, "ebpfnet")
	h.dockerAPI = filepath.Join(runtimetest.ShortDir(t, "ebdapi"), "docker.sock")
	// The plugin first: cleanups run last-in first-out, so it still
	// answers while dockerd's cleanup removes containers.
	h.startPlugin()
	t.Cleanup(func() {
		h.stopPlugin(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("plugin log:\n%s", h.log)
		}
	})
	h.dk = runtimetest.Docker(t, tp.Host)
	return h
}

func (h *dockerHost) startPlugin() {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.log == nil {
		h.log = &syncBuffer{}
	}
	cmd := exec.Command(runtimetest.NsenterBin, "--net="+filepath.Join("/run/netns", h.Host), "--",
		ebpfnetBin, "--state-dir", h.StateDir, "--pin-root", h.PinRoot,
		"docker-plugin", "--name", h.name, "--gc-interval", "1s", "--docker-host", "unix://"+h.dockerAPI)
	cmd.Stdout, cmd.Stderr = h.log, h.log
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.plugin = cmd
	for range 100 {
		if _, err := os.Stat(h.socket); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.t.Fatalf("plugin did not listen on %s:\n%s", h.socket, h.log)
}

// exposeDockerAPI lets the plugin reach the test's dockerd (whose socket
// path is made after the plugin starts, so that it answers dockerd's
// cleanup): from now on it learns container names.
func (h *dockerHost) exposeDockerAPI() {
	h.t.Helper()
	if err := os.Symlink(h.dk.Socket, h.dockerAPI); err != nil {
		h.t.Fatal(err)
	}
}

// stopPlugin signals the plugin (by PID) and waits for it.
func (h *dockerHost) stopPlugin(sig syscall.Signal) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.plugin == nil {
		return
	}
	h.plugin.Process.Signal(sig)
	done := make(chan struct{})
	go func() { h.plugin.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		h.plugin.Process.Kill()
		<-done
	}
	h.plugin = nil
}

func (h *dockerHost) docker(args ...string) string { h.t.Helper(); return h.dk.MustCmd(args...) }

// inExt runs a command in the outside namespace.
func (h *dockerHost) inExt(timeout int, args ...string) (string, error) {
	full := append([]string{"netns", "exec", h.Ext, "timeout", fmt.Sprint(timeout), runtimetest.BusyboxBin}, args...)
	out, err := exec.Command("ip", full...).CombinedOutput()
	return string(out), err
}

// retry runs fn until it returns nil, for up to 6 s (a container's server
// starts a moment after docker run returns).
func retry(fn func() error) error {
	var err error
	for range 30 {
		if err = fn(); err == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return err
}

func (h *dockerHost) wget(url string) (string, error) {
	var out string
	err := retry(func() (err error) {
		out, err = h.inExt(5, "wget", "-qO-", url)
		return err
	})
	return strings.TrimSpace(out), err
}

// execRetry runs docker exec until it succeeds.
func (h *dockerHost) execRetry(args ...string) (string, error) {
	var out string
	err := retry(func() (err error) {
		out, _, err = h.dk.Cmd(append([]string{"exec"}, args...)...)
		return err
	})
	return out, err
}

// noNetfilter checks that nothing of the network's ports is in the host's
// netfilter and that no docker-proxy runs.
func (h *dockerHost) noNetfilter(ports ...string) {
	h.t.Helper()
	rules := h.Exec(h.Host, "iptables-save") + h.Exec(h.Host, "nft", "list", "ruleset")
	for _, p := range ports {
		if strings.Contains(rules, p) {
			h.t.Errorf("netfilter mentions port %s:\n%s", p, rules)
		}
	}
	if strings.Contains(rules, "DNAT") || strings.Contains(rules, "MASQUERADE") {
		h.t.Errorf("netfilter has NAT rules:\n%s", rules)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/comm")
	for _, p := range procs {
		if b, _ := os.ReadFile(p); strings.TrimSpace(string(b)) == "docker-proxy" {
			cmdline, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "cmdline"))
			if strings.Contains(string(cmdline), h.dk.Dir) || strings.Contains(string(cmdline), "172.") {
				h.t.Errorf("docker-proxy runs: %s", bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
			}
		}
	}
}

// gone checks that no trace of Docker's endpoints or networks is left:
// records, veths, bridges, pins.
func (h *dockerHost) gone() {
	h.t.Helper()
	if ls := h.MustEbpfnet("ls", "-o", "json"); strings.TrimSpace(ls) != "[]" {
		h.t.Errorf("endpoints left:\n%s", ls)
	}
	if ls := h.MustEbpfnet("network", "ls"); strings.Contains(ls, "br-") {
		h.t.Errorf("networks left:\n%s", ls)
	}
	if links := h.Exec(h.Host, "ip", "-o", "link"); regexp.MustCompile(`ebp[0-9a-f]+[hc]|br-[0-9a-f]`).MatchString(links) {
		h.t.Errorf("interfaces left:\n%s", links)
	}
	if _, err := os.Stat(h.PinRoot); !os.IsNotExist(err) {
		h.t.Errorf("pins left in %s (%v)", h.PinRoot, err)
	}
}

var (
	udpEchoOnce sync.Once
	udpEchoBin  string
	udpEchoErr  error
)

// udpEcho builds testdata/udpecho (static) once and returns its path.
func udpEcho(t *testing.T) string {
	udpEchoOnce.Do(func() {
		dir, err := os.MkdirTemp(workDir, "udpecho-") // removed with workDir
		if err != nil {
			udpEchoErr = err
			return
		}
		udpEchoBin = filepath.Join(dir, "udpecho")
		cmd := exec.Command("go", "build", "-o", udpEchoBin, "./testdata/udpecho")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			udpEchoErr = fmt.Errorf("build udpecho: %v: %s", err, out)
		}
	})
	if udpEchoErr != nil {
		t.Fatal(udpEchoErr)
	}
	return udpEchoBin
}

// endpointOf is the ebpfnet endpoint name of a container on a network.
func (h *dockerHost) endpointOf(container, network string) string {
	h.t.Helper()
	id := strings.TrimSpace(h.docker("inspect", "-f", fmt.Sprintf("{{(index .NetworkSettings.Networks %q).EndpointID}}", network), container))
	if len(id) < 12 {
		h.t.Fatalf("no endpoint ID for %s on %s: %q", container, network, id)
	}
	return id[:12]
}

// TestDockerBridge: network create/inspect/rm, container to container on
// the eBPF path, -p from outside with the client's address kept, a UDP
// range, masquerade, hairpin, a loopback binding, no netfilter and no
// docker-proxy, ebpfnet's views of Docker's endpoints, and nothing left
// after docker rm -f and docker network rm.
func TestDockerBridge(t *testing.T) {
	h := newDockerHost(t)
	testutil.Serve(t, h.Namespace(h.Ext), "ext", ":9000")
	h.docker("network", "create", "-d", h.name, "--subnet", "172.30.0.0/16", "-o", "com.docker.network.driver.mtu=1400", "net1")
	if d := strings.TrimSpace(h.docker("network", "inspect", "-f", "{{.Driver}} {{(index .IPAM.Config 0).Subnet}}", "net1")); d != h.name+" 172.30.0.0/16" {
		t.Fatalf("docker network inspect: %q", d)
	}
	netID := strings.TrimSpace(h.docker("network", "inspect", "-f", "{{.Id}}", "net1"))[:12]
	if ni := h.MustEbpfnet("network", "inspect", netID); !strings.Contains(ni, `"mtu": 1400`) || !strings.Contains(ni, `"bridge": "br-`+netID) {
		t.Errorf("ebpfnet network inspect %s:\n%s", netID, ni)
	}

	h.docker("run", "-d", "--name", "web", "--network", "net1", "--ip", "172.30.0.10", "-p", "8080:80", "-p", "7000:7000",
		runtimetest.ImageName, "sh", "-c", "nc -ll -p 7000 -e netstat -tn & exec httpd -f -p 80 -h /var/www")
	h.docker("run", "-d", "--name", "udp", "--network", "net1", "-p", "9000-9002:9000-9002/udp",
		"-v", udpEcho(t)+":/udpecho:ro", runtimetest.ImageName, "/udpecho", "9001")
	h.docker("run", "-d", "--name", "client", "--network", "net1", "-p", "127.0.0.1::80",
		runtimetest.ImageName, "sh", "-c", "exec httpd -f -p 80 -h /var/www")

	// The container got what Docker's IPAM chose and the MTU.
	if a := h.docker("exec", "web", "ip", "-o", "-4", "addr", "show", "eth0"); !strings.Contains(a, "172.30.0.10/16") {
		t.Errorf("web eth0: %s", a)
	}
	if l := h.docker("exec", "web", "ip", "link", "show", "eth0"); !strings.Contains(l, "mtu 1400") {
		t.Errorf("web eth0 MTU: %s", l)
	}

	t.Run("container to container", func(t *testing.T) {
		out, err := h.execRetry("client", "timeout", "5", "wget", "-qO-", "http://172.30.0.10/index.html")
		if err != nil || strings.TrimSpace(out) != "ebpfnet-test" {
			t.Errorf("client -> web: %q %v", out, err)
		}
	})
	t.Run("published port from outside keeps the client address", func(t *testing.T) {
		if out, err := h.wget("http://" + testutil.HostIP + ":8080/index.html"); err != nil || out != "ebpfnet-test" {
			t.Errorf("outside -> 8080: %q %v", out, err)
		}
		var out string
		err := retry(func() (err error) {
			out, err = h.inExt(5, "nc", testutil.HostIP, "7000")
			if err == nil && !strings.Contains(out, ":7000") {
				err = fmt.Errorf("no connection listed")
			}
			return err
		})
		if err != nil || !strings.Contains(out, testutil.ExtIP+":") {
			t.Errorf("web's view of the connection from outside (want peer %s):\n%s %v", testutil.ExtIP, out, err)
		}
	})
	t.Run("udp range", func(t *testing.T) {
		nat := h.MustEbpfnet("nat", "ls", "--expand")
		for _, p := range []string{":9000/udp", ":9001/udp", ":9002/udp"} {
			if !strings.Contains(nat, p) {
				t.Errorf("nat ls lacks %s:\n%s", p, nat)
			}
		}
		var line string
		err := retry(func() (err error) {
			line, err = testutil.Ask(h.Namespace(h.Ext), "udp4", testutil.HostIP+":9001")
			return err
		})
		if err != nil || !strings.HasPrefix(line, "udp "+testutil.ExtIP+":") {
			t.Errorf("udp 9001 from outside: %q %v (want the client's address)", line, err)
		}
	})
	t.Run("masquerade", func(t *testing.T) {
		out, err := h.execRetry("client", "sh", "-c", "echo hello | timeout 5 nc "+testutil.ExtIP+" 9000")
		if err != nil || !strings.Contains(out, "ext "+testutil.HostIP+":") {
			t.Errorf("client -> outside: %q %v (want the host's address)", out, err)
		}
	})
	t.Run("hairpin", func(t *testing.T) {
		out, err := h.execRetry("client", "timeout", "5", "wget", "-qO-", "http://"+testutil.HostIP+":8080/index.html")
		if err != nil || strings.TrimSpace(out) != "ebpfnet-test" {
			t.Errorf("client -> host:8080: %q %v", out, err)
		}
	})
	t.Run("loopback binding", func(t *testing.T) {
		ep := h.endpointOf("client", "net1")
		port := h.MustEbpfnet("port", ep)
		m := regexp.MustCompile(`127\.0\.0\.1:(\d+)`).FindStringSubmatch(port)
		if m == nil {
			t.Fatalf("ebpfnet port %s: %q", ep, port)
		}
		if nat := h.MustEbpfnet("nat", "ls"); !strings.Contains(nat, "127.0.0.1:"+m[1]+"/tcp") {
			t.Errorf("nat ls lacks the loopback binding:\n%s", nat)
		}
		// The host itself reaches it on loopback, through the socket hooks.
		out, err := exec.Command("ip", "netns", "exec", h.Host, "timeout", "5", runtimetest.BusyboxBin, "wget", "-qO-", "http://127.0.0.1:"+m[1]+"/index.html").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "ebpfnet-test" {
			t.Errorf("host -> 127.0.0.1:%s: %q %v, want the container's page", m[1], out, err)
		}
		if out, err := h.inExt(3, "wget", "-qO-", "http://"+testutil.HostIP+":"+m[1]+"/index.html"); err == nil {
			t.Errorf("a 127.0.0.1 binding answered from outside: %q", out)
		}
	})
	t.Run("ebpfnet views", func(t *testing.T) {
		ep := h.endpointOf("web", "net1")
		ls := h.MustEbpfnet("ls")
		if !strings.Contains(ls, ep) || !strings.Contains(ls, "172.30.0.10") {
			t.Errorf("ls lacks %s:\n%s", ep, ls)
		}
		if p := h.MustEbpfnet("port", ep); !strings.Contains(p, "80/tcp -> 0.0.0.0:8080") {
			t.Errorf("port %s: %s", ep, p)
		}
		if ct := h.MustEbpfnet("ct", "ls"); !strings.Contains(ct, "172.30.0.10") {
			t.Errorf("ct ls has no flow of web:\n%s", ct)
		}
		if in := h.MustEbpfnet("inspect", ep); !strings.Contains(in, h.dk.ExecRoot) {
			t.Errorf("inspect %s lacks the sandbox:\n%s", ep, in)
		}
	})
	h.noNetfilter("8080", "9001", "7000")

	h.docker("rm", "-f", "web", "udp", "client")
	if ls := h.MustEbpfnet("ls", "-o", "json"); strings.TrimSpace(ls) != "[]" {
		t.Errorf("endpoints left after docker rm -f:\n%s", ls)
	}
	if nat := h.MustEbpfnet("nat", "ls"); strings.Contains(nat, "172.30.") {
		t.Errorf("port bindings left after docker rm -f:\n%s", nat)
	}
	h.docker("network", "rm", "net1")
	h.gone()
}

// TestDockerContainerNames: with dockerd's API reachable, ebpfnet shows
// Docker's containers by the names docker ps shows: ls's NAME column, the
// error of a second container publishing the same port, inspect and port
// by name (ls -q keeps the endpoint's short ID); a rename while the plugin
// was down is learnt when it starts.
func TestDockerContainerNames(t *testing.T) {
	h := newDockerHost(t)
	h.exposeDockerAPI()
	h.docker("network", "create", "-d", h.name, "--subnet", "172.24.0.0/24", "net1")
	srv := []string{runtimetest.ImageName, "httpd", "-f", "-p", "80", "-h", "/var/www"}
	h.docker(append([]string{"run", "-d", "--name", "web", "--network", "net1", "-p", "8080:80"}, srv...)...)
	ep := h.endpointOf("web", "net1")
	h.waitLsName("web", ep)
	if q := h.MustEbpfnet("ls", "-q"); strings.TrimSpace(q) != ep {
		t.Errorf("ls -q: %q, want the endpoint's short ID %s", q, ep)
	}

	_, stderr, err := h.dk.Cmd(append([]string{"run", "-d", "--name", "web2", "--network", "net1", "-p", "8080:80"}, srv...)...)
	if err == nil || !strings.Contains(stderr, "port 8080/tcp on 0.0.0.0 is already published by container web") {
		t.Errorf("second container on 8080: %v %q, want an error naming container web", err, stderr)
	}
	if in := h.MustEbpfnet("inspect", "web"); !strings.Contains(in, `"container_name": "web"`) || !strings.Contains(in, `"name": "`+ep+`"`) {
		t.Errorf("inspect web:\n%s", in)
	}
	if p := h.MustEbpfnet("port", "web"); !strings.Contains(p, "80/tcp -> 0.0.0.0:8080") {
		t.Errorf("port web: %s", p)
	}

	h.stopPlugin(syscall.SIGTERM)
	h.docker("rename", "web", "front")
	h.startPlugin()
	h.waitLsName("front", ep)

	h.docker("rm", "-f", "web2", "front")
	h.docker("network", "rm", "net1")
	h.gone()
}

// waitLsName waits (the plugin asks dockerd after Join, or at start) until
// ls shows the endpoint ep as container name, and fails the test if not.
func (h *dockerHost) waitLsName(name, ep string) {
	h.t.Helper()
	row := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\s+bridge\s+.*\sebp` + ep[:10] + `h\s`)
	var ls string
	for range 50 {
		if ls = h.MustEbpfnet("ls"); row.MatchString(ls) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	h.t.Fatalf("ls does not show endpoint %s as %s:\n%s", ep, name, ls)
}

// TestDockerOptionsAndModes: invalid options are refused with Docker-shown
// errors and change nothing; icc off; --internal; connect and disconnect
// of a running container; docker restart.
func TestDockerOptionsAndModes(t *testing.T) {
	h := newDockerHost(t)
	testutil.Serve(t, h.Namespace(h.Ext), "ext", ":9000")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-o", "ebpfnet.icc=maybe"}, `invalid option ebpfnet.icc="maybe": want true or false`},
		{[]string{"-o", "ebpfnet.colour=blue"}, "option ebpfnet.colour is not supported by ebpfnet"},
		{[]string{"-o", "com.docker.network.driver.mtu=10"}, "invalid MTU 10"},
		{[]string{"--ipv6", "--subnet", "fd00:1::/64", "--subnet", "fd00:2::/64"}, "one IPv6 subnet per network"},
	} {
		args := append([]string{"network", "create", "-d", h.name, "--subnet", "172.29.0.0/24"}, tt.args...)
		_, stderr, err := h.dk.Cmd(append(args, "bad")...)
		if err == nil || !strings.Contains(stderr, tt.want) {
			t.Errorf("docker %v: %v %q, want an error with %q", tt.args, err, stderr, tt.want)
		}
		if ls := h.docker("network", "ls", "--format", "{{.Name}}"); strings.Contains(ls, "bad") {
			t.Errorf("docker kept the refused network:\n%s", ls)
		}
	}
	if ls := h.MustEbpfnet("network", "ls"); strings.Contains(ls, "br-") {
		t.Errorf("a refused network was made:\n%s", ls)
	}
	if links := h.Exec(h.Host, "ip", "-o", "link"); strings.Contains(links, "br-") {
		t.Errorf("a refused network left a bridge:\n%s", links)
	}

	h.docker("network", "create", "-d", h.name, "--subnet", "172.28.0.0/24", "-o", "com.docker.network.bridge.enable_icc=false", "noicc")
	h.docker("network", "create", "-d", h.name, "--internal", "--subnet", "172.27.0.0/24", "int")
	h.docker("network", "create", "-d", h.name, "--subnet", "172.26.0.0/24", "open")
	srv := []string{runtimetest.ImageName, "httpd", "-f", "-p", "80", "-h", "/var/www"}
	h.docker(append([]string{"run", "-d", "--name", "ca", "--network", "noicc", "--ip", "172.28.0.10"}, srv...)...)
	h.docker(append([]string{"run", "-d", "--name", "cb", "--network", "noicc"}, srv...)...)
	h.docker(append([]string{"run", "-d", "--name", "ci1", "--network", "int", "--ip", "172.27.0.10"}, srv...)...)
	h.docker(append([]string{"run", "-d", "--name", "cc", "--network", "open"}, srv...)...)

	t.Run("icc off", func(t *testing.T) {
		if out, err := h.execRetry("cb", "true"); err != nil {
			t.Fatal(out, err)
		}
		if out, _, err := h.dk.Cmd("exec", "cb", "timeout", "3", "wget", "-qO-", "http://172.28.0.10/index.html"); err == nil {
			t.Errorf("icc=false network: b reached a: %q", out)
		}
		// The outside still works.
		if out, _, err := h.dk.Cmd("exec", "cb", "sh", "-c", "echo hi | timeout 5 nc "+testutil.ExtIP+" 9000"); err != nil || !strings.Contains(out, "ext ") {
			t.Errorf("icc=false network: b -> outside: %q %v", out, err)
		}
	})
	t.Run("internal", func(t *testing.T) {
		if out, _, err := h.dk.Cmd("exec", "ci1", "sh", "-c", "echo hi | timeout 3 nc "+testutil.ExtIP+" 9000"); err == nil && strings.Contains(out, "ext") {
			t.Errorf("--internal network reached the outside: %q", out)
		}
		if r := h.docker("exec", "ci1", "ip", "route"); strings.Contains(r, "default") {
			t.Errorf("--internal network container has a default route:\n%s", r)
		}
		_, stderr, err := h.dk.Cmd(append([]string{"run", "-d", "--name", "ci2", "--network", "int", "-p", "8081:80"}, srv...)...)
		if err == nil {
			// dockerd programs no external connectivity for an internal
			// network's endpoint: nothing must be published.
			if nat := h.MustEbpfnet("nat", "ls"); strings.Contains(nat, ":8081") {
				t.Errorf("--internal network published a port:\n%s", nat)
			}
			h.docker("rm", "-f", "ci2")
		} else {
			t.Logf("run -p on --internal: %s", stderr)
		}
	})
	t.Run("connect and disconnect", func(t *testing.T) {
		before := h.MustEbpfnet("ls")
		h.docker("network", "connect", "--ip", "172.27.0.20", "int", "cc")
		if a := h.docker("exec", "cc", "ip", "-o", "-4", "addr"); !strings.Contains(a, "172.27.0.20/24") {
			t.Fatalf("connected container lacks 172.27.0.20:\n%s", a)
		}
		if out, err := h.execRetry("cc", "timeout", "5", "wget", "-qO-", "http://172.27.0.10/index.html"); err != nil || strings.TrimSpace(out) != "ebpfnet-test" {
			t.Errorf("c -> i1 over the connected network: %q %v", out, err)
		}
		h.docker("network", "disconnect", "int", "cc")
		if a := h.docker("exec", "cc", "ip", "-o", "-4", "addr"); strings.Contains(a, "172.27.0.20") {
			t.Errorf("disconnected container keeps 172.27.0.20:\n%s", a)
		}
		if after := h.MustEbpfnet("ls"); after != before {
			t.Errorf("ls before connect:\n%s\nafter disconnect:\n%s", before, after)
		}
	})
	t.Run("restart", func(t *testing.T) {
		h.docker("restart", "-t", "0", "cc")
		if out, err := h.execRetry("cc", "sh", "-c", "echo hi | timeout 5 nc "+testutil.ExtIP+" 9000"); err != nil || !strings.Contains(out, "ext "+testutil.HostIP) {
			t.Errorf("after docker restart: %q %v", out, err)
		}
		ls := h.MustEbpfnet("ls", "-o", "json")
		if n := strings.Count(ls, `"name"`); n != 4 {
			t.Errorf("want 4 endpoints (ca cb ci1 cc), got %d:\n%s", n, ls)
		}
	})
	h.docker("rm", "-f", "ca", "cb", "ci1", "cc")
	h.docker("network", "rm", "noicc", "int", "open")
	h.gone()
}

// TestDockerPluginRestart: the plugin killed and restarted while a
// transfer through a published port runs; the transfer completes, the
// endpoint survives, and the new plugin serves new containers.
func TestDockerPluginRestart(t *testing.T) {
	h := newDockerHost(t)
	h.docker("network", "create", "-d", h.name, "--subnet", "172.25.0.0/24", "net1")
	// 40 lines, one every 100 ms once a client is there: a 4 s transfer.
	h.docker("run", "-d", "--name", "slow", "--network", "net1", "-p", "8080:80", runtimetest.ImageName,
		"sh", "-c", "nc -l -p 80 -e sh -c 'for i in $(seq 1 40); do echo line $i; sleep 0.1; done'; sleep 600")
	ep := h.endpointOf("slow", "net1")
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	var c net.Conn
	err := retry(func() (err error) {
		c, err = testutil.Dial(h.Namespace(h.Ext), "tcp4", testutil.HostIP+":8080", 3*time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(20 * time.Second))
			b := make([]byte, 7)
			if _, err = io.ReadFull(c, b); err != nil {
				c.Close()
			}
		}
		return err
	})
	if err != nil {
		t.Fatalf("connect to the published port: %v", err)
	}
	go func() {
		b, err := io.ReadAll(c)
		c.Close()
		done <- result{"line 1" + string(b), err}
	}()
	time.Sleep(500 * time.Millisecond)
	h.stopPlugin(syscall.SIGKILL)
	time.Sleep(300 * time.Millisecond)
	h.startPlugin()
	r := <-done
	if r.err != nil || !strings.Contains(r.out, "line 20\n") || !strings.HasSuffix(r.out, "line 40\n") {
		t.Errorf("transfer across the plugin's restart: %v\n%s", r.err, r.out)
	}
	// The restarted plugin's reconcile kept the endpoint.
	time.Sleep(1500 * time.Millisecond) // one --gc-interval
	if ls := h.MustEbpfnet("ls"); !strings.Contains(ls, ep) {
		t.Errorf("endpoint lost across the restart:\n%s", ls)
	}
	h.docker("run", "-d", "--name", "web", "--network", "net1", "-p", "8081:80", runtimetest.ImageName, "httpd", "-f", "-p", "80", "-h", "/var/www")
	if out, err := h.wget("http://" + testutil.HostIP + ":8081/index.html"); err != nil || out != "ebpfnet-test" {
		t.Errorf("a container started after the restart: %q %v", out, err)
	}
	h.docker("rm", "-f", "slow", "web")
	h.docker("network", "rm", "net1")
	h.gone()
}
