package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ebpfnet/ebpfnet/api"
)

// Sandbox addresses (198.18.0.0/15 is the benchmarking range).
const (
	extIP     = "198.18.0.1"
	hostIP    = "198.18.0.2"
	uplinkIf  = "uplink0"
	subnet    = "172.30.0.0/16"
	gatewayIP = "172.30.0.1"
	bridgeIf  = "docker0" // iptables/nftables modes, as Docker names it

	srvPort    = 80   // named server (TCP and UDP) in the container
	pubPort    = 8080 // its published host port
	iperfPort  = 5201 // iperf3, published as itself
	dummyBase  = 10000
	dummyChunk = 1000 // other published ports per dummy container
	extName    = "ext"
)

// env is one mode's sandbox:
//
//	<p>-ext eth0 198.18.0.1/24 <-veth-> <p>-host uplink0 198.18.0.2/24 (default via .1)
//	<p>-c1, <p>-c2 on 172.30.0.0/16 (gateway .1) behind <p>-host
//
// The named server and iperf3 run in c1 (in <p>-host for host mode) and in ext.
type env struct {
	mode   string
	prefix string
	host   string
	ext    string
	c1, c2 string
	c1IP   string
	c2IP   string
	c1IP6  string // IPv6 part only
	c2IP6  string
	bg     []*proc // IPv6 part: its servers, stopped with its sandbox

	srvNS   string // where the published server runs
	srvName string // what it answers

	// ebpfnet
	stateDir, pinRoot string
	bin               string
	globalFlags       []string    // e.g. --ct-map-size for the conntrack scale env
	lastSteps         metrics     // step times of the last ebpfnet command, ms
	daemon            *proc       // ebpfnet daemon serving api (attach part)
	api               *api.Client // its API

	broken  error // setup failed: every cell of this mode fails with it
	pubErr  error // ebpfnet: publishing (-p) failed; ingress cells fail with it
	dummies int   // other published ports currently in place
	dummyNS []string
	extra   []string // attached extra containers (attach-time test)

	r    *runner
	cfg  *config
	logf func(string, ...any)
}

func newEnv(mode, prefix string, cfg *config, r *runner, logf func(string, ...any)) *env {
	e := &env{
		mode: mode, prefix: prefix,
		host: prefix + "-host", ext: prefix + "-ext", c1: prefix + "-c1", c2: prefix + "-c2",
		r: r, cfg: cfg, logf: logf, bin: cfg.ebpfnetBin,
	}
	if mode == "host" {
		e.srvNS, e.srvName = e.host, mode+"-host"
	} else {
		e.srvNS, e.srvName = e.c1, mode+"-c1"
	}
	return e
}

// reference: a mode that is no container network driver (host, routed),
// measured for traffic only.
func (e *env) reference() bool { return e.mode == "host" || e.mode == "routed" }

func (e *env) sh(ctx context.Context, ns string, args ...string) (string, error) {
	return e.r.run(ctx, 60*time.Second, inNS(ns, args...)...)
}

func (e *env) addNetns(ctx context.Context, name string) error {
	if _, err := e.r.run(ctx, 10*time.Second, "ip", "netns", "add", name); err != nil {
		return err
	}
	_, err := e.sh(ctx, name, "ip", "link", "set", "lo", "up")
	return err
}

// setup builds the sandbox and starts the servers.
func (e *env) setup(ctx context.Context) error {
	steps := [][]string{}
	for _, ns := range []string{e.host, e.ext} {
		if err := e.addNetns(ctx, ns); err != nil {
			return err
		}
	}
	steps = append(steps,
		[]string{"ip", "link", "add", "eth0", "netns", e.ext, "type", "veth", "peer", "name", uplinkIf, "netns", e.host},
		[]string{"ip", "-n", e.ext, "addr", "add", extIP + "/24", "dev", "eth0"},
		[]string{"ip", "-n", e.ext, "link", "set", "eth0", "up"},
		[]string{"ip", "-n", e.host, "addr", "add", hostIP + "/24", "dev", uplinkIf},
		[]string{"ip", "-n", e.host, "link", "set", uplinkIf, "up"},
		[]string{"ip", "-n", e.host, "route", "add", "default", "via", extIP},
		// The outside client opens many connections: give it the whole port range.
		inNS(e.ext, "sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65000"),
	)
	for _, s := range steps {
		if _, err := e.r.run(ctx, 10*time.Second, s...); err != nil {
			return err
		}
	}
	var err error
	switch e.mode {
	case "host":
		err = nil
	case "routed":
		err = e.setupRouted(ctx)
	case "iptables", "nftables":
		err = e.setupBridge(ctx)
	case "ebpfnet":
		err = e.setupEbpfnet(ctx)
	default:
		err = fmt.Errorf("unknown mode %q", e.mode)
	}
	if err != nil {
		return err
	}
	if err := e.startServers(); err != nil {
		return err
	}
	return e.waitServers(ctx)
}

// setupBridge does by hand what Docker does for its default bridge, then
// installs Docker's firewall rules.
func (e *env) setupBridge(ctx context.Context) error {
	e.c1IP, e.c2IP = "172.30.0.2", "172.30.0.3"
	steps := [][]string{
		{"ip", "-n", e.host, "link", "add", bridgeIf, "type", "bridge"},
		{"ip", "-n", e.host, "addr", "add", gatewayIP + "/16", "dev", bridgeIf},
		{"ip", "-n", e.host, "link", "set", bridgeIf, "up"},
		// Docker enables forwarding; br_netfilter's bridge-nf-call-iptables
		// is 1 in every new netns already (checked in the machine info).
		inNS(e.host, "sysctl", "-qw", "net.ipv4.ip_forward=1"),
	}
	for _, s := range steps {
		if _, err := e.r.run(ctx, 10*time.Second, s...); err != nil {
			return err
		}
	}
	for _, c := range [][2]string{{e.c1, e.c1IP}, {e.c2, e.c2IP}} {
		if err := e.addNetns(ctx, c[0]); err != nil {
			return err
		}
		if _, err := e.manualAttach(ctx, c[0], c[1]); err != nil {
			return err
		}
	}
	return e.applyRules(ctx, 0)
}

// setupRouted is the second reference: each container behind a plain veth
// pair routed by the host (a /32 route per container, proxy ARP for the
// containers' gateway, as Calico plumbs them), no bridge, no NAT, no
// netfilter rule, no conntrack. The outside reaches the containers'
// addresses directly and they reach it from theirs, so every path has the
// same veth hops as ebpfnet's and nothing else: what ebpfnet loses against
// it is its own cost, what this loses against host is the veth hop's.
func (e *env) setupRouted(ctx context.Context) error {
	e.c1IP, e.c2IP = "172.30.0.2", "172.30.0.3"
	steps := [][]string{
		inNS(e.host, "sysctl", "-qw", "net.ipv4.ip_forward=1"),
		inNS(e.ext, "ip", "route", "add", subnet, "via", hostIP),
	}
	for _, c := range [][2]string{{e.c1, e.c1IP}, {e.c2, e.c2IP}} {
		if err := e.addNetns(ctx, c[0]); err != nil {
			return err
		}
		veth := manualVeth(e, c[0])
		steps = append(steps,
			[]string{"ip", "link", "add", veth, "netns", e.host, "type", "veth", "peer", "name", "eth0", "netns", c[0]},
			inNS(e.host, "sysctl", "-qw", "net.ipv4.conf."+veth+".proxy_arp=1"),
			[]string{"ip", "-n", e.host, "link", "set", veth, "up"},
			[]string{"ip", "-n", e.host, "route", "add", c[1] + "/32", "dev", veth},
			[]string{"ip", "-n", c[0], "addr", "add", c[1] + "/32", "dev", "eth0"},
			[]string{"ip", "-n", c[0], "link", "set", "eth0", "up"},
			[]string{"ip", "-n", c[0], "route", "add", routedGW, "dev", "eth0"},
			[]string{"ip", "-n", c[0], "route", "add", "default", "via", routedGW, "dev", "eth0"},
		)
	}
	for _, s := range steps {
		if _, err := e.r.run(ctx, 10*time.Second, s...); err != nil {
			return err
		}
	}
	return nil
}

// routedGW is the containers' gateway in the routed mode: link-local, no
// interface holds it, the host's proxy ARP answers for it.
const routedGW = "169.254.1.1"

// manualAttach plumbs a container into docker0 the way Docker's bridge
// driver does (veth pair, eth0 inside, address, default route), in one shell
// so the timing is one process start plus the netlink work.
func (e *env) manualAttach(ctx context.Context, ns, ip string) (time.Duration, error) {
	veth := manualVeth(e, ns)
	script := strings.Join([]string{
		"set -e",
		fmt.Sprintf("ip link add %s type veth peer name eth0 netns %s", veth, ns),
		fmt.Sprintf("ip link set %s master %s up", veth, bridgeIf),
		fmt.Sprintf("ip -n %s addr add %s/16 dev eth0", ns, ip),
		fmt.Sprintf("ip -n %s link set eth0 up", ns),
		fmt.Sprintf("ip -n %s route add default via %s", ns, gatewayIP),
	}, "\n")
	d, _, err := e.r.timed(ctx, 20*time.Second, inNS(e.host, "sh", "-c", script)...)
	return d, err
}

// manualVeth names the host end of a container's veth in the
// iptables/nftables modes.
func manualVeth(e *env, ns string) string { return "veth" + strings.TrimPrefix(ns, e.prefix+"-") }

// ebpfnet runs an ebpfnet command in the host namespace and returns its
// wall time and stdout; the time of each of its steps is in e.lastSteps.
func (e *env) ebpfnet(ctx context.Context, args ...string) (time.Duration, string, error) {
	full := []string{e.bin, "--state-dir", e.stateDir, "--pin-root", e.pinRoot}
	if len(args) > 0 && (args[0] == "attach" || args[0] == "network") { // the commands that may create the datapath
		full = append(full, e.globalFlags...)
	}
	full = append(full, args...)
	t0 := time.Now()
	out, stderr, err := e.r.runFull(ctx, 120*time.Second, "", []string{fmt.Sprintf("EBPFNET_STEP_TIMES=%d", t0.UnixNano())}, inNS(e.host, full...)...)
	d := time.Since(t0)
	e.lastSteps = parseStepTimes(stderr, d)
	return d, out, err
}

func (e *env) setupEbpfnet(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "ebpfnet-bench-"+e.prefix+"-")
	if err != nil {
		return err
	}
	e.stateDir = dir
	e.pinRoot = filepath.Join("/sys/fs/bpf/ebpfnet", e.prefix)
	if _, _, err := e.ebpfnet(ctx, "network", "create", "bench", "--subnet", subnet, "--uplink", uplinkIf); err != nil {
		return err
	}
	for _, c := range []string{e.c1, e.c2} {
		if err := e.addNetns(ctx, c); err != nil {
			return err
		}
	}
	args := append([]string{"attach", "--net=bridge", "--network", "bench"}, publishArgs()...)
	_, out, err := e.ebpfnet(ctx, append(args, e.c1)...)
	if err != nil {
		// Publishing is being built in parallel: record it, attach without
		// -p so the cells that need no published port still run.
		e.pubErr = fmt.Errorf("ebpfnet attach -p: %w", err)
		e.logf("!! ebpfnet: %v\n!! ebpfnet: attaching %s without published ports; DNAT cells will fail", err, e.c1)
		if _, out, err = e.ebpfnet(ctx, "attach", "--net=bridge", "--network", "bench", e.c1); err != nil {
			return err
		}
	}
	if e.c1IP, err = attachedIP(out); err != nil {
		return err
	}
	if _, out, err = e.ebpfnet(ctx, "attach", "--net=bridge", "--network", "bench", e.c2); err != nil {
		return err
	}
	e.c2IP, err = attachedIP(out)
	return err
}

// publishArgs are ebpfnet attach's -p flags for the measured ports
// (measuredBindings), published on every address.
func publishArgs() []string {
	var args []string
	for _, p := range []string{
		fmt.Sprintf("%d:%d", pubPort, srvPort),
		fmt.Sprintf("%d:%d/udp", pubPort, srvPort),
		fmt.Sprintf("%d:%d", iperfPort, iperfPort),
	} {
		args = append(args, "-p", p)
	}
	return args
}

// attachedIP parses "NAME NETWORK IP" from ebpfnet attach.
func attachedIP(out string) (string, error) {
	f := strings.Fields(lastLine(out))
	if len(f) != 3 {
		return "", fmt.Errorf("unexpected ebpfnet attach output %q", out)
	}
	return f[2], nil
}

// startServers starts the named server and iperf3 in the server namespace
// and in ext, pinned to the server CPU.
func (e *env) startServers() error {
	self := e.cfg.self
	srvAddr := fmt.Sprintf(":%d", srvPort)
	if e.mode == "host" {
		srvAddr = fmt.Sprintf(":%d", pubPort)
	}
	cpu := e.cfg.serverCPU
	for _, s := range []struct {
		name string
		args []string
	}{
		{e.srvName, inNS(e.srvNS, pinned(cpu, self, "serve", "-name", e.srvName, "-addr", srvAddr)...)},
		{"iperf3@" + e.srvNS, inNS(e.srvNS, pinned(cpu, "iperf3", "-s", "-p", fmt.Sprint(iperfPort))...)},
		{extName, inNS(e.ext, pinned(cpu, self, "serve", "-name", extName, "-addr", fmt.Sprintf(":%d", srvPort))...)},
		{"iperf3@ext", inNS(e.ext, pinned(cpu, "iperf3", "-s", "-p", fmt.Sprint(iperfPort))...)},
	} {
		if _, err := e.r.start(s.name, s.args...); err != nil {
			return err
		}
	}
	return nil
}

// waitServers waits until the servers listen.
func (e *env) waitServers(ctx context.Context) error {
	port := srvPort
	if e.mode == "host" {
		port = pubPort
	}
	for _, w := range []struct {
		ns   string
		port int
	}{{e.srvNS, port}, {e.srvNS, iperfPort}, {e.ext, srvPort}, {e.ext, iperfPort}} {
		deadline := time.Now().Add(5 * time.Second)
		for {
			out, _ := e.sh(ctx, w.ns, "ss", "-Hltn", fmt.Sprintf("sport = :%d", w.port))
			if strings.TrimSpace(out) != "" {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("no server listening on :%d in %s", w.port, w.ns)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// teardown removes every namespace with the prefix (and what runs in them),
// the pins (which detaches the instance's TCX and cgroup links) and the
// state.
func (e *env) teardown() {
	removePrefix(e.r, e.prefix, e.pinRoot)
	if e.stateDir != "" {
		os.RemoveAll(e.stateDir)
	}
}
