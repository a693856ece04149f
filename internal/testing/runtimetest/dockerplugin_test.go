package runtimetest

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var updateCapture = flag.Bool("update-capture", false, "rewrite testdata/docker-driver-capture from a real dockerd")

// captureDriver is a throwaway Docker remote network driver: it answers
// just enough of the protocol for `docker run` with a published port to go
// through a container's whole life, and records every call.
type captureDriver struct {
	t       testing.TB
	host    string // netns where dockerd runs: veths are made there
	mu      sync.Mutex
	log     []capturedCall
	gateway map[string]string // network ID -> gateway IP
}

type capturedCall struct {
	Method   string          `json:"method"`
	Request  json.RawMessage `json:"request"`
	Response json.RawMessage `json:"response"`
	Status   int             `json:"status"`
}

func (d *captureDriver) methods() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var m []string
	for _, c := range d.log {
		m = append(m, c.Method)
	}
	return m
}

func (d *captureDriver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	method := strings.TrimPrefix(r.URL.Path, "/")
	var req map[string]any
	json.Unmarshal(body, &req)

	status, resp := http.StatusOK, any(map[string]any{})
	switch method {
	case "Plugin.Activate":
		resp = map[string]any{"Implements": []string{"NetworkDriver"}}
	case "NetworkDriver.GetCapabilities":
		resp = map[string]any{"Scope": "local", "ConnectivityScope": "local"}
	case "NetworkDriver.CreateNetwork":
		// Remember the gateway (IPv4Data[0].Gateway is a CIDR) for Join.
		var cn struct {
			NetworkID string
			IPv4Data  []struct{ Gateway string }
		}
		json.Unmarshal(body, &cn)
		if len(cn.IPv4Data) > 0 {
			gw, _, _ := strings.Cut(cn.IPv4Data[0].Gateway, "/")
			d.mu.Lock()
			d.gateway[cn.NetworkID] = gw
			d.mu.Unlock()
		}
	case "NetworkDriver.DeleteNetwork",
		"NetworkDriver.ProgramExternalConnectivity", "NetworkDriver.RevokeExternalConnectivity",
		"NetworkDriver.Leave", "NetworkDriver.DiscoverNew", "NetworkDriver.DiscoverDelete":
	case "NetworkDriver.CreateEndpoint":
		resp = map[string]any{"Interface": map[string]any{}}
	case "NetworkDriver.EndpointOperInfo":
		resp = map[string]any{"Value": map[string]any{}}
	case "NetworkDriver.Join":
		eid, _ := req["EndpointID"].(string)
		hostIf, ctrIf := "rth"+eid[:8], "rtc"+eid[:8]
		out, err := exec.Command("ip", "-n", d.host, "link", "add", hostIf, "type", "veth", "peer", "name", ctrIf).CombinedOutput()
		if err == nil {
			out, err = exec.Command("ip", "-n", d.host, "link", "set", hostIf, "up").CombinedOutput()
		}
		if err != nil {
			status, resp = http.StatusInternalServerError, map[string]any{"Err": fmt.Sprintf("make veth: %v: %s", err, out)}
			break
		}
		nid, _ := req["NetworkID"].(string)
		d.mu.Lock()
		gw := d.gateway[nid]
		d.mu.Unlock()
		resp = map[string]any{
			"InterfaceName": map[string]any{"SrcName": ctrIf, "DstPrefix": "eth"},
			"Gateway":       gw,
		}
	case "NetworkDriver.DeleteEndpoint":
		if eid, _ := req["EndpointID"].(string); len(eid) >= 8 {
			exec.Command("ip", "-n", d.host, "link", "del", "rth"+eid[:8]).Run()
		}
	default:
		status, resp = http.StatusNotFound, map[string]any{"Err": "not implemented: " + method}
	}
	rb, _ := json.Marshal(resp)
	d.mu.Lock()
	reqJSON := json.RawMessage(body)
	if !json.Valid(body) {
		reqJSON, _ = json.Marshal(string(body))
	}
	d.log = append(d.log, capturedCall{Method: method, Request: reqJSON, Response: rb, Status: status})
	d.mu.Unlock()
	w.Header().Set("Content-Type", "application/vnd.docker.plugins.v1.2+json")
	w.WriteHeader(status)
	w.Write(rb)
}

func serveDriver(t *testing.T, socket, host string) *captureDriver {
	t.Helper()
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	d := &captureDriver{t: t, host: host, gateway: map[string]string{}}
	srv := &http.Server{Handler: d}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return d
}

// TestDockerRemoteDriverCapture runs a real dockerd against a throwaway
// remote network driver found through /run/docker/plugins/NAME.sock with a
// per-test NAME, takes a container with published TCP and UDP ports
// through its whole life, and checks the calls dockerd makes. With
// -update-capture it saves them in testdata/docker-driver-capture for the
// Docker driver's protocol tests to replay.
func TestDockerRemoteDriverCapture(t *testing.T) {
	t.Parallel()
	tp := newHost(t)
	// The driver first: cleanups run last-in first-out, so it still
	// answers while dockerd's cleanup removes containers and networks.
	name, socket := PluginSocket(t, "ebrtcap")
	drv := serveDriver(t, socket, tp.Host)
	dk := Docker(t, tp.Host)

	dk.MustCmd("network", "create", "-d", name, "--subnet", "172.30.0.0/16", "--gateway", "172.30.0.1",
		"-o", "ebpfnet.icc=false", "-o", "com.docker.network.driver.mtu=1400", "--label", "test=capture", "capnet")
	if drv := strings.TrimSpace(dk.MustCmd("network", "inspect", "-f", "{{.Driver}}", "capnet")); drv != name {
		t.Fatalf("network driver %q, want %q", drv, name)
	}
	dk.MustCmd("run", "-d", "--name", "web", "--network", "capnet", "--ip", "172.30.0.10",
		"-p", "8080:80", "-p", "9000-9001:9000-9001/udp", ImageName, "httpd", "-f", "-p", "80")
	addr := dk.MustCmd("exec", "web", "ip", "-o", "-4", "addr", "show", "eth0")
	if !strings.Contains(addr, "172.30.0.10/16") {
		t.Errorf("container eth0 lacks 172.30.0.10/16:\n%s", addr)
	}
	route := dk.MustCmd("exec", "web", "ip", "route")
	if !strings.Contains(route, "default via 172.30.0.1") {
		t.Errorf("container lacks the default route via the Join gateway:\n%s", route)
	}
	// An ephemeral host port on loopback and a host port range for one
	// container port; then connect and disconnect a running container to
	// an --internal network.
	dk.MustCmd("run", "-d", "--name", "web2", "--network", "capnet",
		"-p", "127.0.0.1::81", "-p", "9100-9102:90", ImageName, "sleep", "600")
	dk.MustCmd("network", "create", "-d", name, "--internal", "--subnet", "172.31.0.0/24", "capint")
	dk.MustCmd("network", "connect", "--ip", "172.31.0.20", "capint", "web2")
	dk.MustCmd("network", "disconnect", "capint", "web2")
	dk.MustCmd("rm", "-f", "web", "web2")
	dk.MustCmd("network", "rm", "capnet", "capint")

	got := drv.methods()
	t.Logf("dockerd called: %s", strings.Join(got, " "))
	want := []string{
		"Plugin.Activate", "NetworkDriver.GetCapabilities", "NetworkDriver.CreateNetwork",
		"NetworkDriver.CreateEndpoint", "NetworkDriver.Join", "NetworkDriver.ProgramExternalConnectivity",
		"NetworkDriver.RevokeExternalConnectivity", "NetworkDriver.Leave", "NetworkDriver.DeleteEndpoint",
		"NetworkDriver.DeleteNetwork",
	}
	if !isSubsequence(want, got) {
		t.Errorf("dockerd's calls\n%v\ndo not contain in order\n%v", got, want)
	}
	// The published ports reach the driver in ProgramExternalConnectivity,
	// one entry per port (the CLI splits 9000-9001:9000-9001), a host
	// range for one container port as HostPort..HostPortEnd, and an
	// ephemeral host port as HostPort 0.
	var pec []string
	for _, c := range drv.log {
		if c.Method == "NetworkDriver.ProgramExternalConnectivity" {
			pec = append(pec, string(c.Request))
		}
	}
	wants := [][]string{
		{`"com.docker.network.portmap"`, `"Port":80,"HostIP":"","HostPort":8080,"HostPortEnd":8080`, `"Proto":17,"IP":"","Port":9001,"HostIP":"","HostPort":9001,"HostPortEnd":9001`},
		{`"Port":90,"HostIP":"","HostPort":9100,"HostPortEnd":9102`, `"Port":81,"HostIP":"127.0.0.1","HostPort":0,"HostPortEnd":0`},
	}
	if len(pec) != len(wants) {
		t.Fatalf("%d ProgramExternalConnectivity calls, want %d (none for the --internal network)", len(pec), len(wants))
	}
	for i, ws := range wants {
		for _, w := range ws {
			if !strings.Contains(pec[i], w) {
				t.Errorf("ProgramExternalConnectivity #%d lacks %s:\n%s", i+1, w, pec[i])
			}
		}
	}
	for _, c := range drv.log {
		if c.Status != http.StatusOK {
			t.Errorf("dockerd called %s, which the capture driver does not answer", c.Method)
		}
	}
	// Nothing of the driver's left in the host namespace.
	if out := tp.Exec(tp.Host, "ip", "-o", "link"); strings.Contains(out, "rth") || strings.Contains(out, "rtc") {
		t.Errorf("veths left in the host namespace:\n%s", out)
	}
	if *updateCapture {
		saveCapture(t, drv.log)
	}
}

func isSubsequence(want, got []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

func saveCapture(t *testing.T, calls []capturedCall) {
	dir := filepath.Join("testdata", "docker-driver-capture")
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, c := range calls {
		var buf bytes.Buffer
		b, _ := json.Marshal(c)
		json.Indent(&buf, b, "", "  ")
		buf.WriteByte('\n')
		f := filepath.Join(dir, fmt.Sprintf("%02d-%s.json", i+1, strings.TrimPrefix(c.Method, "NetworkDriver.")))
		if err := os.WriteFile(f, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("saved %d calls in %s", len(calls), dir)
}

// TestDockerPluginDiscovery shows where dockerd 20.10 finds a remote
// plugin: /run/docker/plugins/NAME.sock and /etc/docker/plugins/NAME.spec
// (pointing at a socket anywhere), not <exec-root>/plugins/NAME.sock.
func TestDockerPluginDiscovery(t *testing.T) {
	t.Parallel()
	tp := newHost(t)
	dk := Docker(t, tp.Host, DockerOptions{NoImage: true})

	// A spec file pointing at a socket in the test's own dir.
	sock := filepath.Join(dk.Dir, "drv.sock")
	specName := PluginSpec(t, "ebrtspec", sock)
	drv := serveDriver(t, sock, tp.Host)
	dk.MustCmd("network", "create", "-d", specName, "--subnet", "172.31.0.0/24", "specnet")
	dk.MustCmd("network", "rm", "specnet")
	if m := drv.methods(); len(m) == 0 || m[0] != "Plugin.Activate" {
		t.Errorf("spec-file plugin calls: %v", m)
	}

	// A socket under the daemon's --exec-root is not found.
	if err := os.MkdirAll(filepath.Join(dk.ExecRoot, "plugins"), 0o700); err != nil {
		t.Fatal(err)
	}
	execName := UniqueName("ebrtexec")
	serveDriver(t, filepath.Join(dk.ExecRoot, "plugins", execName+".sock"), tp.Host)
	start := time.Now()
	_, errOut, err := dk.Cmd("network", "create", "-d", execName, "execnet")
	if err == nil {
		t.Errorf("dockerd found a plugin under --exec-root/plugins (findings in README are wrong)")
		dk.Cmd("network", "rm", "execnet")
	} else {
		t.Logf("exec-root plugin not found after %v: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(errOut))
	}
}
