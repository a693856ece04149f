package main

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// binding is one published port: host port -> container ip:port.
type binding struct {
	proto    string
	hostPort int
	ip       string
	ctrPort  int
}

// dummyBindings are n other published TCP ports, 1000 per dummy container
// (172.30.10.2, 172.30.11.2, ...), host ports from 10000 up.
func dummyBindings(n int) []binding {
	bs := make([]binding, 0, n)
	for k := 0; k < n; k++ {
		p := dummyBase + k
		bs = append(bs, binding{"tcp", p, dummyIP(k / dummyChunk), p})
	}
	return bs
}

func dummyIP(container int) string { return fmt.Sprintf("172.30.%d.2", 10+container) }

// measuredBindings are the ports the workloads use, published by c1.
func (e *env) measuredBindings() []binding {
	return []binding{
		{"tcp", pubPort, e.c1IP, srvPort},
		{"udp", pubPort, e.c1IP, srvPort},
		{"tcp", iperfPort, e.c1IP, iperfPort},
	}
}

// iptablesRules is the rule set Docker (up to 27.x, iptables backend,
// userland-proxy on, the default) keeps for its default bridge, as
// iptables-save prints it, with the n other published ports first: the
// measured container is the most recently started one, so its rules come
// after theirs (Docker appends).
func iptablesRules(bs []binding) string {
	var nat, filter strings.Builder
	br := bridgeIf
	nat.WriteString("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n")
	nat.WriteString("-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n")
	nat.WriteString("-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER\n")
	fmt.Fprintf(&nat, "-A POSTROUTING -s %s ! -o %s -j MASQUERADE\n", subnet, br)
	for _, b := range bs { // hairpin: a container to its own published port
		fmt.Fprintf(&nat, "-A POSTROUTING -s %s/32 -d %s/32 -p %s -m %s --dport %d -j MASQUERADE\n", b.ip, b.ip, b.proto, b.proto, b.ctrPort)
	}
	fmt.Fprintf(&nat, "-A DOCKER -i %s -j RETURN\n", br)
	for _, b := range bs {
		fmt.Fprintf(&nat, "-A DOCKER ! -i %s -p %s -m %s --dport %d -j DNAT --to-destination %s:%d\n", br, b.proto, b.proto, b.hostPort, b.ip, b.ctrPort)
	}
	nat.WriteString("COMMIT\n")

	filter.WriteString("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:DOCKER - [0:0]\n:DOCKER-ISOLATION-STAGE-1 - [0:0]\n:DOCKER-ISOLATION-STAGE-2 - [0:0]\n:DOCKER-USER - [0:0]\n")
	filter.WriteString("-A FORWARD -j DOCKER-USER\n-A FORWARD -j DOCKER-ISOLATION-STAGE-1\n")
	fmt.Fprintf(&filter, "-A FORWARD -o %s -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n", br)
	fmt.Fprintf(&filter, "-A FORWARD -o %s -j DOCKER\n", br)
	fmt.Fprintf(&filter, "-A FORWARD -i %s ! -o %s -j ACCEPT\n", br, br)
	fmt.Fprintf(&filter, "-A FORWARD -i %s -o %s -j ACCEPT\n", br, br)
	for _, b := range bs {
		fmt.Fprintf(&filter, "-A DOCKER -d %s/32 ! -i %s -o %s -p %s -m %s --dport %d -j ACCEPT\n", b.ip, br, br, b.proto, b.proto, b.ctrPort)
	}
	fmt.Fprintf(&filter, "-A DOCKER-ISOLATION-STAGE-1 -i %s ! -o %s -j DOCKER-ISOLATION-STAGE-2\n", br, br)
	filter.WriteString("-A DOCKER-ISOLATION-STAGE-1 -j RETURN\n")
	fmt.Fprintf(&filter, "-A DOCKER-ISOLATION-STAGE-2 -o %s -j DROP\n", br)
	filter.WriteString("-A DOCKER-ISOLATION-STAGE-2 -j RETURN\n")
	filter.WriteString("-A DOCKER-USER -j RETURN\nCOMMIT\n")
	return nat.String() + filter.String()
}

// iptablesPublishCmds are the commands Docker's iptables code runs to publish
// one more port: for each rule a check (-C) and, when missing, an append.
func iptablesPublishCmds(b binding) [][]string {
	br := bridgeIf
	rules := [][]string{
		{"-t", "nat", "DOCKER", "!", "-i", br, "-p", b.proto, "-m", b.proto, "--dport", fmt.Sprint(b.hostPort), "-j", "DNAT", "--to-destination", fmt.Sprintf("%s:%d", b.ip, b.ctrPort)},
		{"-t", "filter", "DOCKER", "-d", b.ip + "/32", "!", "-i", br, "-o", br, "-p", b.proto, "-m", b.proto, "--dport", fmt.Sprint(b.ctrPort), "-j", "ACCEPT"},
		{"-t", "nat", "POSTROUTING", "-s", b.ip + "/32", "-d", b.ip + "/32", "-p", b.proto, "-m", b.proto, "--dport", fmt.Sprint(b.ctrPort), "-j", "MASQUERADE"},
	}
	var cmds [][]string
	for _, r := range rules {
		table, chain, spec := r[:2], r[2], r[3:]
		cmds = append(cmds,
			append(append([]string{"iptables", "--wait"}, table...), append([]string{"-C", chain}, spec...)...),
			append(append([]string{"iptables", "--wait"}, table...), append([]string{"-A", chain}, spec...)...))
	}
	return cmds
}

// nftRules is Docker's nftables firewall backend (29.x, table ip
// docker-bridges) for the default bridge with the ports published, in the
// variant with userland-proxy=false, which is the one that carries the
// hairpin masquerade ("MASQ TO OWN PORT"). nat-OUTPUT's priority is
// written -100, the value of dstnat, which nft 1.0.6 accepts only on prerouting. Other published ports come first,
// as in iptablesRules. Source: moby integration/network/bridge/nftablesdoc.
func nftRules(bs []binding) string {
	br := bridgeIf
	var b strings.Builder
	// Re-create the table atomically in one transaction.
	b.WriteString("table ip docker-bridges\ndelete table ip docker-bridges\n")
	b.WriteString("table ip docker-bridges {\n")
	for _, m := range []string{"filter-forward-in", "filter-forward-out", "nat-postrouting-in", "nat-postrouting-out"} {
		fmt.Fprintf(&b, "\tmap %s-jumps {\n\t\ttype ifname : verdict\n\t\telements = { %q : jump %s__%s }\n\t}\n", m, br, m, br)
	}
	b.WriteString("\tchain filter-FORWARD {\n\t\ttype filter hook forward priority filter; policy accept;\n\t\toifname vmap @filter-forward-in-jumps\n\t\tiifname vmap @filter-forward-out-jumps\n\t}\n")
	b.WriteString("\tchain nat-OUTPUT {\n\t\ttype nat hook output priority -100; policy accept;\n\t\tfib daddr type local counter jump nat-prerouting-and-output\n\t}\n")
	b.WriteString("\tchain nat-POSTROUTING {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t\tiifname vmap @nat-postrouting-out-jumps\n\t\toifname vmap @nat-postrouting-in-jumps\n\t}\n")
	b.WriteString("\tchain nat-PREROUTING {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\tfib daddr type local counter jump nat-prerouting-and-output\n\t}\n")
	b.WriteString("\tchain nat-prerouting-and-output {\n")
	for _, x := range bs {
		fmt.Fprintf(&b, "\t\t%s dport %d counter dnat to %s:%d comment \"DNAT\"\n", x.proto, x.hostPort, x.ip, x.ctrPort)
	}
	b.WriteString("\t}\n")
	b.WriteString("\tchain raw-PREROUTING {\n\t\ttype filter hook prerouting priority raw; policy accept;\n")
	seen := map[string]bool{}
	for _, x := range bs { // one per container with published ports
		if !seen[x.ip] {
			seen[x.ip] = true
			fmt.Fprintf(&b, "\t\tip daddr %s iifname != %q counter drop comment \"DROP DIRECT ACCESS\"\n", x.ip, br)
		}
	}
	b.WriteString("\t}\n")
	fmt.Fprintf(&b, "\tchain filter-forward-in__%s {\n\t\tct state established,related counter accept\n\t\tiifname %q counter accept comment \"ICC\"\n", br, br)
	for _, x := range bs {
		fmt.Fprintf(&b, "\t\tip daddr %s %s dport %d counter accept\n", x.ip, x.proto, x.ctrPort)
	}
	b.WriteString("\t\tcounter drop comment \"UNPUBLISHED PORT DROP\"\n\t}\n")
	fmt.Fprintf(&b, "\tchain filter-forward-out__%s {\n\t\tct state established,related counter accept\n\t\tcounter accept comment \"OUTGOING\"\n\t}\n", br)
	fmt.Fprintf(&b, "\tchain nat-postrouting-in__%s {\n\t\tfib saddr type local counter masquerade comment \"MASQUERADE FROM HOST\"\n", br)
	for _, x := range bs {
		fmt.Fprintf(&b, "\t\tip saddr %s ip daddr %s %s dport %d counter masquerade comment \"MASQ TO OWN PORT\"\n", x.ip, x.ip, x.proto, x.ctrPort)
	}
	b.WriteString("\t}\n")
	fmt.Fprintf(&b, "\tchain nat-postrouting-out__%s {\n\t\toifname != %q ip saddr %s counter masquerade comment \"MASQUERADE\"\n\t}\n", br, br, subnet)
	b.WriteString("}\n")
	return b.String()
}

// nftPublish is the transaction that publishes one more port; the accept
// rule goes before the chain's final drop (handle dropHandle).
func nftPublish(x binding, dropHandle string) string {
	br := bridgeIf
	return fmt.Sprintf(
		"add rule ip docker-bridges nat-prerouting-and-output %s dport %d counter dnat to %s:%d comment \"DNAT\"\n"+
			"insert rule ip docker-bridges filter-forward-in__%s position %s ip daddr %s %s dport %d counter accept\n"+
			"add rule ip docker-bridges nat-postrouting-in__%s ip saddr %s ip daddr %s %s dport %d counter masquerade comment \"MASQ TO OWN PORT\"\n",
		x.proto, x.hostPort, x.ip, x.ctrPort, br, dropHandle, x.ip, x.proto, x.ctrPort, br, x.ip, x.ip, x.proto, x.ctrPort)
}

var dropHandleRe = regexp.MustCompile(`UNPUBLISHED PORT DROP" # handle (\d+)`)

// applyRules (re)installs the mode's full rule set with n other ports.
func (e *env) applyRules(ctx context.Context, n int) error {
	bs := append(dummyBindings(n), e.measuredBindings()...)
	var err error
	switch e.mode {
	case "iptables":
		_, err = e.r.runStdin(ctx, 300*time.Second, iptablesRules(bs), inNS(e.host, "iptables-restore", "--wait")...)
	case "nftables":
		_, err = e.r.runStdin(ctx, 300*time.Second, nftRules(bs), inNS(e.host, "nft", "-f", "-")...)
	}
	if err == nil {
		e.dummies = n
	}
	return err
}
