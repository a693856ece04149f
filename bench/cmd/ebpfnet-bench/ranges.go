package main

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// rangeResult is what publishRangeRules measured.
type rangeResult struct {
	publish, unpublish time.Duration
	publishSteps       metrics // ebpfnet
	unpublishSteps     metrics
	port, natLs        time.Duration // ebpfnet: `port` and `nat ls` with the range in place
	portsBytes         uint64        // ebpfnet: the ports map's kernel memory
	portsCapacity      int           // its entries (preallocated)
}

// publishRangeRules times starting a container that publishes the range
// of rangePublishing (the attach or veth plumbing included) and removing it
// again.
//
// iptables and nftables get what Docker 28+ installs for a range: one DNAT,
// one filter accept and one hairpin masquerade per protocol with a port
// range match (--dport 20000:40000), not one rule per port; Docker 27 and
// earlier expanded a range into a rule (and a docker-proxy) per port.
func (e *env) publishRangeRules(ctx context.Context) (rangeResult, error) {
	var res rangeResult
	if e.mode == "host" {
		return res, errSkip
	}
	ns := e.prefix + "-rr"
	if err := e.addNetns(ctx, ns); err != nil {
		return res, err
	}
	defer e.r.run(context.Background(), 20*time.Second, "ip", "netns", "delete", ns)
	spec := fmt.Sprintf("%d-%d:%d-%d", rangeLo, rangeHi, rangeLo, rangeHi)
	if e.mode == "ebpfnet" {
		var err error
		if res.publish, _, err = e.ebpfnet(ctx, "attach", "--net=bridge", "--network", "bench", "-p", spec, "-p", spec+"/udp", ns); err != nil {
			return res, err
		}
		res.publishSteps = e.lastSteps
		out := ""
		if res.port, out, err = e.ebpfnet(ctx, "port", ns); err != nil {
			return res, err
		}
		if want := fmt.Sprintf("%d-%d/tcp", rangeLo, rangeHi); !strings.Contains(out, want) {
			return res, fmt.Errorf("ebpfnet port %s: no %s in %q", ns, want, out)
		}
		if res.natLs, _, err = e.ebpfnet(ctx, "nat", "ls"); err != nil {
			return res, err
		}
		total, byName, err := pinnedMapBytes(e.pinRoot)
		if err != nil || total == 0 {
			return res, fmt.Errorf("read map memory: %v", err)
		}
		res.portsBytes = byName["ports"]
		res.portsCapacity = 65536 // bpf/lib/ports.h max_entries
		res.unpublish, _, err = e.ebpfnet(ctx, "detach", ns)
		res.unpublishSteps = e.lastSteps
		return res, err
	}
	const ip = "172.30.199.2"
	d, err := e.manualAttach(ctx, ns, ip)
	if err != nil {
		return res, err
	}
	var t time.Duration
	switch e.mode {
	case "iptables":
		script := []string{"set -e"}
		cmds := iptablesRangeCmds(ip)
		for i := 0; i < len(cmds); i += 3 { // Docker: check, then append
			script = append(script, shellJoin(cmds[i])+" 2>/dev/null || "+shellJoin(cmds[i+1]))
		}
		if t, _, err = e.r.timed(ctx, 60*time.Second, inNS(e.host, "sh", "-ec", strings.Join(script, "\n"))...); err != nil {
			return res, err
		}
		res.publish = d + t
		script = []string{"set -e"}
		for i := 2; i < len(cmds); i += 3 {
			script = append(script, shellJoin(cmds[i]))
		}
		if t, _, err = e.r.timed(ctx, 60*time.Second, inNS(e.host, "sh", "-ec", strings.Join(script, "\n"))...); err != nil {
			return res, err
		}
	case "nftables":
		if t, err = e.nftRange(ctx, ip, true); err != nil {
			return res, err
		}
		res.publish = d + t
		if t, err = e.nftRange(ctx, ip, false); err != nil {
			return res, err
		}
	}
	del, _, err := e.r.timed(ctx, 20*time.Second, inNS(e.host, "ip", "link", "del", manualVeth(e, ns))...)
	res.unpublish = t + del
	return res, err
}

// iptablesRangeCmds are, per rule of a range publish (DNAT, filter accept,
// hairpin masquerade, for TCP and UDP), Docker's check (-C), append (-A)
// and, for the removal, delete (-D). Host and container ranges are equal,
// so the DNAT keeps the port.
func iptablesRangeCmds(ip string) [][]string {
	br := bridgeIf
	ports := fmt.Sprintf("%d:%d", rangeLo, rangeHi)
	var cmds [][]string
	for _, proto := range []string{"tcp", "udp"} {
		rules := [][]string{
			{"-t", "nat", "DOCKER", "!", "-i", br, "-p", proto, "-m", proto, "--dport", ports, "-j", "DNAT", "--to-destination", fmt.Sprintf("%s:%d-%d", ip, rangeLo, rangeHi)},
			{"-t", "filter", "DOCKER", "-d", ip + "/32", "!", "-i", br, "-o", br, "-p", proto, "-m", proto, "--dport", ports, "-j", "ACCEPT"},
			{"-t", "nat", "POSTROUTING", "-s", ip + "/32", "-d", ip + "/32", "-p", proto, "-m", proto, "--dport", ports, "-j", "MASQUERADE"},
		}
		for _, r := range rules {
			table, chain, spec := r[:2], r[2], r[3:]
			for _, op := range []string{"-C", "-A", "-D"} {
				cmds = append(cmds, append(append([]string{"iptables", "--wait"}, table...), append([]string{op, chain}, spec...)...))
			}
		}
	}
	return cmds
}

var nftRangeHandleRe = regexp.MustCompile(`dport 20000-40000 .*# handle (\d+)`)

// nftRange publishes the range as Docker's nftables backend does (one
// transaction, the accept rules before the chain's final drop) or, with
// add false, deletes those rules by handle, as Docker does. The time
// includes listing the chains for the handles.
func (e *env) nftRange(ctx context.Context, ip string, add bool) (time.Duration, error) {
	br := bridgeIf
	t0 := time.Now()
	var tx strings.Builder
	if add {
		out, err := e.sh(ctx, e.host, "nft", "-a", "list", "chain", "ip", "docker-bridges", "filter-forward-in__"+br)
		if err != nil {
			return 0, err
		}
		m := dropHandleRe.FindStringSubmatch(out)
		if m == nil {
			return 0, fmt.Errorf("no UNPUBLISHED PORT DROP rule in filter-forward-in__%s", br)
		}
		for _, proto := range []string{"tcp", "udp"} {
			fmt.Fprintf(&tx, "add rule ip docker-bridges nat-prerouting-and-output %s dport %d-%d counter dnat to %s:%d-%d comment \"DNAT\"\n", proto, rangeLo, rangeHi, ip, rangeLo, rangeHi)
			fmt.Fprintf(&tx, "insert rule ip docker-bridges filter-forward-in__%s position %s ip daddr %s %s dport %d-%d counter accept\n", br, m[1], ip, proto, rangeLo, rangeHi)
			fmt.Fprintf(&tx, "add rule ip docker-bridges nat-postrouting-in__%s ip saddr %s ip daddr %s %s dport %d-%d counter masquerade comment \"MASQ TO OWN PORT\"\n", br, ip, ip, proto, rangeLo, rangeHi)
		}
	} else {
		for _, chain := range []string{"nat-prerouting-and-output", "filter-forward-in__" + br, "nat-postrouting-in__" + br} {
			out, err := e.sh(ctx, e.host, "nft", "-a", "list", "chain", "ip", "docker-bridges", chain)
			if err != nil {
				return 0, err
			}
			for _, m := range nftRangeHandleRe.FindAllStringSubmatch(out, -1) {
				fmt.Fprintf(&tx, "delete rule ip docker-bridges %s handle %s\n", chain, m[1])
			}
		}
		if tx.Len() == 0 {
			return 0, fmt.Errorf("no range rules to delete in table ip docker-bridges")
		}
	}
	if _, err := e.r.runStdin(ctx, 60*time.Second, tx.String(), inNS(e.host, "nft", "-f", "-")...); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}
