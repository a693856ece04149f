package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ebpfnet/ebpfnet/bench/internal/report"
	"github.com/ebpfnet/ebpfnet/internal/testing/etcdtest"
)

// The overlay part: two simulated hosts on an underlay bridge, a container
// on each, and cross-host TCP throughput and request/response latency
// between the containers, three ways, measured in turn in each repetition.
// The table's mode columns carry them:
//
//	host      the hosts' own underlay addresses, no overlay: the physics
//	iptables  the kernel's VXLAN device and a bridge per host, set up by
//	          hand as Docker's overlay driver does (no rules on this path)
//	ebpfnet   an ebpfnet overlay network: etcd, a daemon per host, attach
//
// Layout (prefix p):
//
//	p-u   underlay: bridge br0 198.18.0.1/24, etcd
//	p-h1, p-h2  ebpfnet hosts, uplink0 198.18.0.11/.12; containers p-a, p-b
//	p-k1, p-k2  kernel VXLAN hosts, uplink0 198.18.0.21/.22; containers p-ka, p-kb
const (
	ovUnderlayIP = etcdtest.UnderlayIP
	ovSubnet     = "10.210.0.0/24"
	kvxSubnet    = "10.220.0.0/24"
	kvxVNI       = "5000"
	vxlanMTU     = "1450" // 1500 minus VXLAN over IPv4
)

// ovBench is the overlay part's sandbox; paths are per column.
type ovBench struct {
	prefix, pinRoot, stateDir string
	etcd                      *etcdtest.Etcd
	envs                      map[string]*env // column -> env recording it
	paths                     map[string]path
	servers                   map[string]string // column -> server namespace
	broken                    error
}

func (b *bench) overlay(ctx context.Context) {
	c := b.cfg
	if !slicesContains(c.modes, "ebpfnet") || ctx.Err() != nil {
		return
	}
	if b.ov == nil {
		b.ov = &ovBench{prefix: b.envs[0].prefix[:len(b.envs[0].prefix)-1] + "o"}
		b.logf("setup overlay: 2 hosts x (ebpfnet, kernel VXLAN) on an underlay with etcd (namespaces %s-*)", b.ov.prefix)
		if err := b.ov.setup(ctx, b); err != nil {
			b.ov.broken = fmt.Errorf("overlay setup: %w", err)
			b.note(b.ov.broken.Error())
		}
	}
	o := b.ov
	last := map[string]metrics{}
	for _, col := range []string{"host", "iptables", "ebpfnet"} {
		e := o.envs[col]
		e.broken = o.broken
		p := o.paths[col]
		b.measure(e, "overlay_tcp", report.NoN, gbps, func() (metrics, json.RawMessage, error) {
			m, raw, err := e.iperf(ctx, p)
			if err == nil {
				last[col+"_tcp"] = m
			}
			return m, raw, err
		})
		b.measure(e, "overlay_rr", report.NoN, rrMetrics, func() (metrics, json.RawMessage, error) {
			m, raw, err := e.rr(ctx, p, c.rrN)
			if err == nil {
				last[col+"_rr"] = m
			}
			return m, raw, err
		})
	}
	// ebpfnet against the kernel's VXLAN, in this repetition.
	b.measure(o.envs["ebpfnet"], "overlay_vs_kernel", report.NoN, ovRatioMetrics, func() (metrics, json.RawMessage, error) {
		ours, kern := last["ebpfnet_tcp"], last["iptables_tcp"]
		oursRR, kernRR := last["ebpfnet_rr"], last["iptables_rr"]
		if ours == nil || kern == nil || oursRR == nil || kernRR == nil {
			return nil, nil, errors.New("a measurement of this repetition failed")
		}
		return metrics{"tcp_ratio": ours["gbps"] / kern["gbps"], "rr_ratio": oursRR["avg_us"] / kernRR["avg_us"]}, nil, nil
	})
}

var ovRatioMetrics = []metricDef{{"tcp_ratio", "x"}, {"rr_ratio", "x"}}

func (o *ovBench) setup(ctx context.Context, b *bench) error {
	c, r := b.cfg, b.r
	if _, err := exec.LookPath("etcd"); err != nil {
		return errors.New("etcd not installed (make deps installs etcd-server)")
	}
	dir, err := os.MkdirTemp("", "ebpfnet-bench-"+o.prefix+"-")
	if err != nil {
		return err
	}
	o.stateDir, o.pinRoot = dir, filepath.Join(benchPins, o.prefix)
	o.envs, o.paths, o.servers = map[string]*env{}, map[string]path{}, map[string]string{}
	for _, col := range []string{"host", "iptables", "ebpfnet"} {
		e := newEnv(col, o.prefix, c, r, b.logf)
		o.envs[col] = e
	}
	e := o.envs["ebpfnet"] // runs the setup commands
	ns := func(s string) string { return o.prefix + "-" + s }
	run := func(args ...string) error {
		_, err := r.run(ctx, 20*time.Second, args...)
		return err
	}
	if err := e.addNetns(ctx, ns("u")); err != nil {
		return err
	}
	for _, s := range [][]string{
		inNS(ns("u"), "ip", "link", "add", "br0", "type", "bridge"),
		inNS(ns("u"), "ip", "addr", "add", ovUnderlayIP+"/24", "dev", "br0"),
		inNS(ns("u"), "ip", "link", "set", "br0", "up"),
	} {
		if err := run(s...); err != nil {
			return err
		}
	}
	hosts := map[string]string{"h1": "198.18.0.11", "h2": "198.18.0.12", "k1": "198.18.0.21", "k2": "198.18.0.22"}
	for _, h := range []string{"h1", "h2", "k1", "k2"} {
		if err := e.addNetns(ctx, ns(h)); err != nil {
			return err
		}
		for _, s := range [][]string{
			{"ip", "link", "add", uplinkIf, "netns", ns(h), "type", "veth", "peer", "name", h, "netns", ns("u")},
			inNS(ns("u"), "ip", "link", "set", h, "master", "br0", "up"),
			inNS(ns(h), "ip", "addr", "add", hosts[h]+"/24", "dev", uplinkIf),
			inNS(ns(h), "ip", "link", "set", uplinkIf, "up"),
			inNS(ns(h), "ip", "route", "add", "default", "via", ovUnderlayIP),
		} {
			if err := run(s...); err != nil {
				return err
			}
		}
	}

	// The underlay column: host 1 to host 2 directly.
	o.servers["host"] = ns("h2")
	o.paths["host"] = path{clientNS: ns("h1"), addr: hosts["h2"] + fmt.Sprintf(":%d", srvPort), iperfIP: hosts["h2"], wantName: "underlay", wantSrc: hosts["h1"]}

	// The kernel's VXLAN and a bridge in each host, as Docker's overlay
	// driver makes them: no learning, the peer in the FDB.
	kIPs := map[string]string{"k1": "10.220.0.2", "k2": "10.220.0.3"}
	for _, h := range []string{"k1", "k2"} {
		other := map[string]string{"k1": "k2", "k2": "k1"}[h]
		cont := ns(h + "c")
		if err := e.addNetns(ctx, cont); err != nil {
			return err
		}
		for _, s := range kernelVXLANCmds(ns(h), cont, hosts[h], hosts[other], kIPs[h]) {
			if err := run(s...); err != nil {
				return err
			}
		}
	}
	o.servers["iptables"] = ns("k2c")
	o.paths["iptables"] = path{clientNS: ns("k1c"), addr: kIPs["k2"] + fmt.Sprintf(":%d", srvPort), iperfIP: kIPs["k2"], wantName: "kernel-vxlan", wantSrc: kIPs["k1"]}

	// ebpfnet: etcd on the underlay (as the tests run it, waited for until
	// it is healthy), a daemon per host, one overlay network.
	o.etcd = etcdtest.NewEtcd(ns("u"), ovUnderlayIP, filepath.Join(dir, "etcd"))
	if err := o.etcd.Start(); err != nil {
		return err
	}
	store := o.etcd.Store()
	cli := func(h string, args ...string) []string {
		full := []string{c.ebpfnetBin, "--state-dir", filepath.Join(dir, h), "--pin-root", filepath.Join(o.pinRoot, h), "--cluster-store", store}
		return inNS(ns(h), append(full, args...)...)
	}
	for _, h := range []string{"h1", "h2"} {
		if _, err := r.start("ebpfnet daemon@"+h, cli(h, "daemon", "--advertise-addr", hosts[h], "--metrics-addr", "")...); err != nil {
			return err
		}
	}
	if err := retry(ctx, 30*time.Second, func() error {
		for _, h := range []string{"h1", "h2"} {
			if _, err := os.Stat(filepath.Join(dir, h, "cluster-host")); err != nil {
				return fmt.Errorf("host %s has not joined the cluster", h)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if _, err := r.run(ctx, 20*time.Second, cli("h1", "network", "create", "--driver", "overlay", "ov1", "--subnet", ovSubnet)...); err != nil {
		return err
	}
	ips := map[string]string{}
	for _, h := range []string{"h1", "h2"} {
		cont := ns(h + "c")
		if err := e.addNetns(ctx, cont); err != nil {
			return err
		}
		out, err := r.run(ctx, 30*time.Second, cli(h, "attach", "--network", "ov1", "--name", "c", cont)...)
		if err != nil {
			return err
		}
		if ips[h], err = attachedIP(out); err != nil {
			return err
		}
	}
	o.servers["ebpfnet"] = ns("h2c")
	o.paths["ebpfnet"] = path{clientNS: ns("h1c"), addr: ips["h2"] + fmt.Sprintf(":%d", srvPort), iperfIP: ips["h2"], wantName: "ebpfnet-overlay", wantSrc: ips["h1"]}

	// Servers, then wait until each path answers (the daemons learn the
	// remote endpoints from etcd within a sync).
	for col, srv := range o.servers {
		name := o.paths[col].wantName
		if _, err := r.start(name, inNS(srv, pinned(c.serverCPU, c.self, "serve", "-name", name, "-addr", fmt.Sprintf(":%d", srvPort))...)...); err != nil {
			return err
		}
		if _, err := r.start("iperf3@"+srv, inNS(srv, pinned(c.serverCPU, "iperf3", "-s", "-p", fmt.Sprint(iperfPort))...)...); err != nil {
			return err
		}
	}
	for col, p := range o.paths {
		if err := retry(ctx, 30*time.Second, func() error { return o.envs[col].check(ctx, p, "tcp4") }); err != nil {
			return fmt.Errorf("%s path: %w", col, err)
		}
	}
	return nil
}

// kernelVXLANCmds are the commands for one host of the kernel VXLAN column: a bridge, a
// VXLAN device on it without learning, whose all-zeros FDB entry floods
// unknown and broadcast frames (ARP included) to the one peer host, and the
// container's veth on the bridge with the overlay MTU on both ends.
func kernelVXLANCmds(hostNS, contNS, local, remote, contIP string) [][]string {
	return [][]string{
		inNS(hostNS, "ip", "link", "add", "br-ov", "type", "bridge"),
		inNS(hostNS, "ip", "link", "set", "br-ov", "up"),
		inNS(hostNS, "ip", "link", "add", "vx0", "type", "vxlan", "id", kvxVNI, "dstport", "4789", "local", local, "nolearning"),
		inNS(hostNS, "ip", "link", "set", "vx0", "master", "br-ov", "up"),
		inNS(hostNS, "bridge", "fdb", "append", "00:00:00:00:00:00", "dev", "vx0", "dst", remote),
		{"ip", "link", "add", "veth0", "netns", hostNS, "mtu", vxlanMTU, "type", "veth", "peer", "name", "eth0", "netns", contNS, "mtu", vxlanMTU},
		inNS(hostNS, "ip", "link", "set", "veth0", "master", "br-ov", "up"),
		inNS(contNS, "ip", "addr", "add", contIP+"/24", "dev", "eth0"),
		inNS(contNS, "ip", "link", "set", "eth0", "up"),
	}
}

// retry calls f until it succeeds or limit passes (its last error).
func retry(ctx context.Context, limit time.Duration, f func() error) error {
	deadline := time.Now().Add(limit)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (o *ovBench) teardown(r *runner) {
	if o.etcd != nil {
		o.etcd.Stop() // by PID
	}
	removePrefix(r, o.prefix, o.pinRoot)
	if o.stateDir != "" && strings.Contains(o.stateDir, "ebpfnet-bench-") {
		os.RemoveAll(o.stateDir)
	}
}
