package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ebpfnet/ebpfnet/bench/internal/report"
)

// The IPv6 part: DNAT ingress through a published port, SNAT egress
// (masquerade) and container-to-container traffic over IPv6, each mode on a
// dual-stack sandbox of its own, built at the start of the part and removed
// at its end in every repetition (so an ebpfnet instance of this part, whose
// IPv4 socket hooks sit on the root cgroup, is never up while another part
// measures). The table's mode columns:
//
//	host      the client (SNAT) or server (DNAT, c2c) in <p>-host itself
//	iptables  Docker 28's way for an IPv6 bridge: docker0 with the IPv6
//	          gateway, net.ipv6.conf.all.forwarding=1, and its ip6tables rules
//	          (ip6tablesRules) beside its iptables ones
//	ebpfnet   a dual-stack ebpfnet network (--ipv6), c1 attached with the
//	          ports published (-p, every address), no ip6tables rule, the
//	          host's IPv6 forwarding left at 0
//
// Layout (prefix p = bn<id><letter>, the letter per mode in ipv6Modes):
//
//	<p>-ext   eth0 198.18.0.1/24 2001:db8:18::1/64 <-veth-> <p>-host uplink0 198.18.0.2/24 2001:db8:18::2/64
//	<p>-host  default routes via .1 and 2001:db8:18::1; bridge fd00:30::/64 (gateway ::1) and 172.30.0.0/16
//	<p>-c1    fd00:30::2: named server on [::]:80, iperf3 on 5201
//	<p>-c2    fd00:30::3: client of the container-to-container runs
//
// ext has no route to fd00:30::/64: the containers reach it masqueraded to
// 2001:db8:18::2, and it reaches c1 only through the published ports on
// [2001:db8:18::2] (8080->80, 5201->5201), DNATed with its own address kept;
// the connectivity check verifies both.
const (
	extIP6     = "2001:db8:18::1"
	hostIP6    = "2001:db8:18::2"
	subnet6    = "fd00:30::/64"
	gatewayIP6 = "fd00:30::1"
	c1IP6      = "fd00:30::2"
	c2IP6      = "fd00:30::3"
)

// ipv6Modes are the modes the part measures and the last letter of each
// one's sandbox prefix (the traffic part's are the modes' first letters, the
// conntrack part's k, the overlay's o).
var ipv6Modes = []struct{ mode, letter string }{{"host", "v"}, {"iptables", "w"}, {"ebpfnet", "x"}}

// ipv6Workloads are the part's rows, run for every mode in turn.
var ipv6Workloads = []struct {
	name string
	ms   []metricDef
	dir  string // "dnat" (ext to c1's published port), "snat" (c1 to ext) or "c2c"
	kind string
}{
	{"dnat6_tcp", gbps, "dnat", "tcp"},
	{"dnat6_rr", rrMetrics, "dnat", "rr"},
	{"dnat6_connrate", connMetrics, "dnat", "connrate"},
	{"snat6_tcp", gbps, "snat", "tcp"},
	{"snat6_rr", rrMetrics, "snat", "rr"},
	{"snat6_connrate", connMetrics, "snat", "connrate"},
	{"c2c6_tcp", gbps, "c2c", "tcp"},
	{"c2c6_rr", rrMetrics, "c2c", "rr"},
}

var ipv6RatioMetrics = []metricDef{{"dnat_tcp_ratio", "x"}, {"dnat_conn_ratio", "x"}, {"snat_tcp_ratio", "x"}, {"snat_conn_ratio", "x"}, {"c2c_tcp_ratio", "x"}, {"c2c_rr_ratio", "x"}}

// ipv6 runs the part for one repetition.
func (b *bench) ipv6(ctx context.Context) {
	c := b.cfg
	id := strings.TrimPrefix(b.envs[0].prefix[:len(b.envs[0].prefix)-1], benchPrefix)
	b.v6 = nil
	for _, m := range ipv6Modes {
		if !slicesContains(c.modes, m.mode) || ctx.Err() != nil {
			continue
		}
		e := newEnv(m.mode, benchPrefix+id+m.letter, c, b.r, b.logf)
		b.v6 = append(b.v6, e)
		b.logf("setup IPv6 %-8s (namespaces %s-*)", m.mode, e.prefix)
		if err := e.setup6(ctx); err != nil {
			e.broken = fmt.Errorf("IPv6 setup: %w", err)
			b.logf("!! IPv6 %s: %v -- every IPv6 %s cell will be recorded as failed", m.mode, e.broken, m.mode)
			b.note(fmt.Sprintf("IPv6 %s: %v", m.mode, e.broken))
		}
		if e.pubErr != nil {
			b.note(fmt.Sprintf("IPv6 %s: %v", m.mode, e.pubErr))
		}
	}
	defer b.teardown6()
	last := map[string]metrics{} // workload/mode -> this repetition's value
	for _, w := range ipv6Workloads {
		for _, e := range b.v6 {
			if ctx.Err() != nil {
				return
			}
			p := e.snat6()
			switch w.dir {
			case "dnat":
				p = e.dnat6()
			case "c2c":
				p = e.c2c6()
			}
			b.measure(e, w.name, report.NoN, w.ms, func() (metrics, json.RawMessage, error) {
				var m metrics
				var raw json.RawMessage
				var err error
				switch w.kind {
				case "tcp":
					m, raw, err = e.iperf(ctx, p)
				case "rr":
					m, raw, err = e.rr(ctx, p, c.rrN)
				case "connrate":
					m, raw, err = e.connrate(ctx, p)
				}
				if err == nil {
					last[w.name+"/"+e.mode] = m
				}
				return m, raw, err
			})
		}
	}
	// ebpfnet against Docker's bridge and ip6tables, in this repetition
	// (when -modes has both).
	for _, e := range b.v6 {
		if e.mode != "ebpfnet" || !slicesContains(c.modes, "iptables") {
			continue
		}
		b.measure(e, "ipv6_vs_ip6tables", report.NoN, ipv6RatioMetrics, func() (metrics, json.RawMessage, error) {
			return ipv6Ratios(last)
		})
	}
}

// ipv6Ratios divides ebpfnet's figures by the ip6tables mode's.
func ipv6Ratios(last map[string]metrics) (metrics, json.RawMessage, error) {
	r := metrics{}
	for _, q := range []struct{ name, workload, metric string }{
		{"dnat_tcp_ratio", "dnat6_tcp", "gbps"},
		{"dnat_conn_ratio", "dnat6_connrate", "conn_per_sec"},
		{"snat_tcp_ratio", "snat6_tcp", "gbps"},
		{"snat_conn_ratio", "snat6_connrate", "conn_per_sec"},
		{"c2c_tcp_ratio", "c2c6_tcp", "gbps"},
		{"c2c_rr_ratio", "c2c6_rr", "avg_us"},
	} {
		ours, theirs := last[q.workload+"/ebpfnet"], last[q.workload+"/iptables"]
		if ours == nil || theirs == nil || theirs[q.metric] == 0 {
			continue // measure records a missing metric as failed
		}
		r[q.name] = ours[q.metric] / theirs[q.metric]
	}
	if len(r) == 0 {
		return nil, nil, errors.New("no IPv6 measurement of both ebpfnet and ip6tables succeeded in this repetition")
	}
	return r, nil, nil
}

// teardown6 removes the part's sandboxes (also called on the run's way out).
func (b *bench) teardown6() {
	for _, e := range b.v6 {
		for _, p := range e.bg { // by PID, then the namespaces
			b.r.stop(p)
		}
		e.teardown()
	}
	b.v6 = nil
}

// dnat6: from ext to c1's published ports on the uplink's IPv6 address,
// [2001:db8:18::2]:8080 (-> c1:80) and 5201, the server seeing ext's own
// address (DNAT keeps the client); host mode: to the servers in the host
// namespace itself on [2001:db8:18::2]:80 and 5201, nothing translated.
func (e *env) dnat6() path {
	if e.mode == "host" {
		return path{e.ext, fmt.Sprintf("[%s]:%d", hostIP6, srvPort), hostIP6, e.srvName, extIP6, false}
	}
	return path{e.ext, fmt.Sprintf("[%s]:%d", hostIP6, pubPort), hostIP6, e.srvName, extIP6, true}
}

// snat6: to the server in ext over IPv6, masqueraded to the uplink's
// address (host mode: from the host namespace itself, no NAT).
func (e *env) snat6() path {
	ns := e.c1
	if e.mode == "host" {
		ns = e.host
	}
	return path{ns, fmt.Sprintf("[%s]:%d", extIP6, srvPort), extIP6, extName, hostIP6, false}
}

// c2c6: container to container over IPv6 on one bridge; host mode: ext to
// the host, one veth hop, as c2c's.
func (e *env) c2c6() path {
	if e.mode == "host" {
		return path{e.ext, fmt.Sprintf("[%s]:%d", hostIP6, srvPort), hostIP6, e.srvName, extIP6, false}
	}
	return path{e.c2, fmt.Sprintf("[%s]:%d", e.c1IP6, srvPort), e.c1IP6, e.srvName, e.c2IP6, false}
}

// addNetns6 is addNetns with duplicate address detection off for the
// interfaces made in it later (nothing else hands out these addresses), so
// no address is tentative when the first packet leaves.
func (e *env) addNetns6(ctx context.Context, name string) error {
	if err := e.addNetns(ctx, name); err != nil {
		return err
	}
	_, err := e.sh(ctx, name, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
		"net.ipv4.ip_local_port_range=1024 65000") // the connection-rate client may be in any of them
	return err
}

// setup6 builds one mode's dual-stack sandbox and starts its servers.
func (e *env) setup6(ctx context.Context) error {
	for _, ns := range []string{e.host, e.ext} {
		if err := e.addNetns6(ctx, ns); err != nil {
			return err
		}
	}
	steps := [][]string{
		{"ip", "link", "add", "eth0", "netns", e.ext, "type", "veth", "peer", "name", uplinkIf, "netns", e.host},
		{"ip", "-n", e.ext, "addr", "add", extIP + "/24", "dev", "eth0"},
		{"ip", "-n", e.ext, "addr", "add", extIP6 + "/64", "dev", "eth0", "nodad"},
		{"ip", "-n", e.ext, "link", "set", "eth0", "up"},
		{"ip", "-n", e.host, "addr", "add", hostIP + "/24", "dev", uplinkIf},
		{"ip", "-n", e.host, "addr", "add", hostIP6 + "/64", "dev", uplinkIf, "nodad"},
		{"ip", "-n", e.host, "link", "set", uplinkIf, "up"},
		{"ip", "-n", e.host, "route", "add", "default", "via", extIP},
		{"ip", "-n", e.host, "-6", "route", "add", "default", "via", extIP6},
	}
	for _, s := range steps {
		if _, err := e.r.run(ctx, 10*time.Second, s...); err != nil {
			return err
		}
	}
	var err error
	switch e.mode {
	case "host":
	case "iptables":
		err = e.setupBridge6(ctx)
	case "ebpfnet":
		err = e.setupEbpfnet6(ctx)
	default:
		err = fmt.Errorf("no IPv6 sandbox for mode %q", e.mode)
	}
	if err != nil {
		return err
	}
	return e.startServers6(ctx)
}

// setupBridge6 does what Docker 28 does for a dual-stack bridge network: the
// bridge with both gateways, forwarding of both families on, each container's
// veth on the bridge with both addresses and default routes, then the
// iptables and ip6tables rules.
func (e *env) setupBridge6(ctx context.Context) error {
	e.c1IP, e.c2IP, e.c1IP6, e.c2IP6 = "172.30.0.2", "172.30.0.3", c1IP6, c2IP6
	steps := [][]string{
		{"ip", "-n", e.host, "link", "add", bridgeIf, "type", "bridge"},
		{"ip", "-n", e.host, "addr", "add", gatewayIP + "/16", "dev", bridgeIf},
		{"ip", "-n", e.host, "addr", "add", gatewayIP6 + "/64", "dev", bridgeIf, "nodad"},
		{"ip", "-n", e.host, "link", "set", bridgeIf, "up"},
		// bridge-nf-call-ip6tables is 1 in every new netns, as Docker sets it.
		inNS(e.host, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"),
	}
	for _, c := range [][3]string{{e.c1, e.c1IP, e.c1IP6}, {e.c2, e.c2IP, e.c2IP6}} {
		if err := e.addNetns6(ctx, c[0]); err != nil {
			return err
		}
		veth := manualVeth(e, c[0])
		steps = append(steps,
			[]string{"ip", "link", "add", veth, "netns", e.host, "type", "veth", "peer", "name", "eth0", "netns", c[0]},
			[]string{"ip", "-n", e.host, "link", "set", veth, "master", bridgeIf, "up"},
			[]string{"ip", "-n", c[0], "addr", "add", c[1] + "/16", "dev", "eth0"},
			[]string{"ip", "-n", c[0], "addr", "add", c[2] + "/64", "dev", "eth0", "nodad"},
			[]string{"ip", "-n", c[0], "link", "set", "eth0", "up"},
			[]string{"ip", "-n", c[0], "route", "add", "default", "via", gatewayIP},
			[]string{"ip", "-n", c[0], "-6", "route", "add", "default", "via", gatewayIP6},
		)
	}
	for _, s := range steps {
		if _, err := e.r.run(ctx, 10*time.Second, s...); err != nil {
			return err
		}
	}
	if err := e.applyRules(ctx, 0); err != nil { // the IPv4 half, as Docker installs it too
		return err
	}
	_, err := e.r.runStdin(ctx, 60*time.Second, ip6tablesRules(e.measuredBindings6()), inNS(e.host, "ip6tables-restore", "--wait")...)
	return err
}

// measuredBindings6 are c1's published ports on its IPv6 address, as
// Docker 28 publishes -p 8080:80 on a dual-stack network (the dnat6 rows go
// through the TCP ones).
func (e *env) measuredBindings6() []binding {
	return []binding{
		{"tcp", pubPort, e.c1IP6, srvPort},
		{"udp", pubPort, e.c1IP6, srvPort},
		{"tcp", iperfPort, e.c1IP6, iperfPort},
	}
}

// ip6tablesRules is the ip6tables rule set Docker 28 (iptables backend,
// userland-proxy on, the default) keeps for one dual-stack bridge with the
// ports published, as ip6tables-save prints it: its FORWARD layout with the
// per-port ACCEPT and the "no direct access" DROP in DOCKER, the subnet's
// MASQUERADE and one DNAT per port, no per-port hairpin masquerade (the
// userland proxy serves hairpin). Docker 28 matches "destination is a
// bridge network" with the ipset docker-ext-bridges-v6; with one bridge
// that set holds the one subnet, written here as -d (ipset is not
// installed by make deps). Source: moby
// integration/network/bridge/iptablesdoc/generated/usernet-portmap.md.
func ip6tablesRules(bs []binding) string {
	var nat, filter strings.Builder
	br := bridgeIf
	nat.WriteString("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n")
	nat.WriteString("-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n")
	nat.WriteString("-A OUTPUT ! -d ::1/128 -m addrtype --dst-type LOCAL -j DOCKER\n")
	fmt.Fprintf(&nat, "-A POSTROUTING -s %s ! -o %s -j MASQUERADE\n", subnet6, br)
	fmt.Fprintf(&nat, "-A DOCKER -i %s -j RETURN\n", br)
	for _, b := range bs {
		fmt.Fprintf(&nat, "-A DOCKER ! -i %s -p %s -m %s --dport %d -j DNAT --to-destination [%s]:%d\n", br, b.proto, b.proto, b.hostPort, b.ip, b.ctrPort)
	}
	nat.WriteString("COMMIT\n")

	filter.WriteString("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:DOCKER - [0:0]\n:DOCKER-ISOLATION-STAGE-1 - [0:0]\n:DOCKER-ISOLATION-STAGE-2 - [0:0]\n:DOCKER-USER - [0:0]\n")
	filter.WriteString("-A FORWARD -j DOCKER-USER\n")
	fmt.Fprintf(&filter, "-A FORWARD -d %s -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n", subnet6)
	filter.WriteString("-A FORWARD -j DOCKER-ISOLATION-STAGE-1\n")
	fmt.Fprintf(&filter, "-A FORWARD -d %s -j DOCKER\n", subnet6)
	fmt.Fprintf(&filter, "-A FORWARD -i %s ! -o %s -j ACCEPT\n", br, br)
	fmt.Fprintf(&filter, "-A FORWARD -i %s -o %s -j ACCEPT\n", br, br)
	for _, b := range bs {
		fmt.Fprintf(&filter, "-A DOCKER -d %s/128 ! -i %s -o %s -p %s -m %s --dport %d -j ACCEPT\n", b.ip, br, br, b.proto, b.proto, b.ctrPort)
	}
	fmt.Fprintf(&filter, "-A DOCKER ! -i %s -o %s -j DROP\n", br, br)
	fmt.Fprintf(&filter, "-A DOCKER-ISOLATION-STAGE-1 -i %s ! -o %s -j DOCKER-ISOLATION-STAGE-2\n", br, br)
	fmt.Fprintf(&filter, "-A DOCKER-ISOLATION-STAGE-2 -o %s -j DROP\n", br)
	filter.WriteString("-A DOCKER-USER -j RETURN\nCOMMIT\n")
	return nat.String() + filter.String()
}

// setupEbpfnet6: a dual-stack ebpfnet network on the uplink, two containers
// attached, c1 with the measured ports published on every address as the
// IPv4 part publishes them (so on the uplink's IPv6 address too), nothing
// else (no ip6tables rule, IPv6 forwarding left at 0).
func (e *env) setupEbpfnet6(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "ebpfnet-bench-"+e.prefix+"-")
	if err != nil {
		return err
	}
	e.stateDir = dir
	e.pinRoot = filepath.Join(benchPins, e.prefix)
	if _, _, err := e.ebpfnet(ctx, "network", "create", "bench6", "--ipv6", "--subnet", subnet, "--subnet", subnet6, "--uplink", uplinkIf); err != nil {
		return err
	}
	for _, c := range []struct {
		ns, ip6  string
		ip, ipv6 *string
	}{{e.c1, c1IP6, &e.c1IP, &e.c1IP6}, {e.c2, c2IP6, &e.c2IP, &e.c2IP6}} {
		if err := e.addNetns6(ctx, c.ns); err != nil {
			return err
		}
		args := []string{"attach", "--net=bridge", "--network", "bench6", "--ip6", c.ip6}
		if c.ns == e.c1 {
			args = append(args, publishArgs()...)
		}
		_, out, err := e.ebpfnet(ctx, append(args, c.ns)...)
		if err != nil && c.ns == e.c1 {
			// As the IPv4 part: record it and attach without -p, so the
			// cells that need no published port still run.
			e.pubErr = fmt.Errorf("ebpfnet attach -p: %w", err)
			e.logf("!! IPv6 ebpfnet: %v\n!! IPv6 ebpfnet: attaching %s without published ports; DNAT6 cells will fail", err, e.c1)
			_, out, err = e.ebpfnet(ctx, "attach", "--net=bridge", "--network", "bench6", "--ip6", c.ip6, c.ns)
		}
		if err != nil {
			return err
		}
		if *c.ip, *c.ipv6, err = attachedIPs(out); err != nil {
			return err
		}
	}
	return nil
}

// attachedIPs parses "NAME NETWORK IP IP6" from ebpfnet attach on a
// dual-stack network.
func attachedIPs(out string) (string, string, error) {
	f := strings.Fields(lastLine(out))
	if len(f) != 4 || !strings.Contains(f[3], ":") {
		return "", "", fmt.Errorf("unexpected ebpfnet attach output %q (want NAME NETWORK IP IP6)", out)
	}
	return f[2], f[3], nil
}

// startServers6 starts the named server on [::]:80 (IPv6 only) and iperf3 in
// the server namespace and in ext, pinned to the server CPU, and waits until
// they listen.
func (e *env) startServers6(ctx context.Context) error {
	self, cpu := e.cfg.self, e.cfg.serverCPU
	addr := fmt.Sprintf("[::]:%d", srvPort)
	for _, s := range []struct {
		name string
		args []string
	}{
		{e.srvName + "@v6", inNS(e.srvNS, pinned(cpu, self, "serve", "-name", e.srvName, "-addr", addr)...)},
		{"iperf3@" + e.srvNS, inNS(e.srvNS, pinned(cpu, "iperf3", "-s", "-p", fmt.Sprint(iperfPort))...)},
		{extName + "@" + e.ext, inNS(e.ext, pinned(cpu, self, "serve", "-name", extName, "-addr", addr)...)},
		{"iperf3@" + e.ext, inNS(e.ext, pinned(cpu, "iperf3", "-s", "-p", fmt.Sprint(iperfPort))...)},
	} {
		p, err := e.r.start(s.name, s.args...)
		if err != nil {
			return err
		}
		e.bg = append(e.bg, p)
	}
	for _, ns := range []string{e.srvNS, e.ext} {
		for _, port := range []int{srvPort, iperfPort} {
			if err := retry(ctx, 5*time.Second, func() error {
				out, _ := e.sh(ctx, ns, "ss", "-Hltn", fmt.Sprintf("sport = :%d", port))
				if strings.TrimSpace(out) == "" {
					return fmt.Errorf("no server listening on :%d in %s", port, ns)
				}
				return nil
			}); err != nil {
				return err
			}
		}
	}
	return nil
}
