package main

import "testing"

// Bad rules are refused in one line and change nothing.
func TestFirewallCommand(t *testing.T) {
	tp := newHost(t)
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	tp.MustEbpfnet("firewall", "add", "--network", "n1", "--source", "10.0.0.0/8")
	// An allow list naming IPv4 prefixes only refuses IPv6 sources too.
	const only = `^SCOPE\s+SOURCE\s+ACTION\nnetwork n1\s+10\.0\.0\.0/8\s+allow\nnetwork n1\s+0\.0\.0\.0/0\s+deny \(implied\)\nnetwork n1\s+::/0\s+deny \(implied\)\n$`
	runCases(t, tp, []cliCase{
		{name: "listed", args: []string{"firewall", "ls"}, stdout: only},
		{name: "quiet", args: []string{"firewall", "ls", "-q"}, stdout: `^--network n1 --source 10\.0\.0\.0/8\n$`},
		{name: "format", args: []string{"firewall", "ls", "--format", "{{.Scope}} {{.Source}} {{.Action}} {{.Implied}}"}, stdout: `^network n1 10\.0\.0\.0/8 allow false\nnetwork n1 0\.0\.0\.0/0 deny true\nnetwork n1 ::/0 deny true\n$`},
		{name: "json", args: []string{"firewall", "ls", "-o", "json"}, stdout: `(?s)"network": "n1",\s+"source": "10.0.0.0/8",\s+"action": "allow".*"implied": true`},
		{name: "host bits", args: []string{"firewall", "add", "--source", "10.1.2.3/8"}, code: 1, stderr: `^ebpfnet: source "10.1.2.3/8" has host bits set: did you mean 10.0.0.0/8\?\n$`},
		{name: "IPv4-mapped", args: []string{"firewall", "add", "--source", "::ffff:10.0.0.1"}, code: 1, stderr: `^ebpfnet: source "::ffff:10.0.0.1" is an IPv4-mapped IPv6 address: write the IPv4 address \(10\.0\.0\.1\)\n$`},
		{name: "IPv6 host bits", args: []string{"firewall", "add", "--source", "2001:db8::1/32"}, code: 1, stderr: `has host bits set: did you mean 2001:db8::/32\?`},
		{name: "zone", args: []string{"firewall", "add", "--source", "fe80::1%eth0"}, code: 1, stderr: `not an IPv4 or IPv6 address or prefix`},
		{name: "garbage", args: []string{"firewall", "add", "--source", "10.0.0.0/33"}, code: 1, stderr: `not an IPv4 or IPv6 address or prefix`},
		{name: "garbage IPv6", args: []string{"firewall", "add", "--source", "2001:db8::/129"}, code: 1, stderr: `not an IPv4 or IPv6 address or prefix`},
		{name: "no source", args: []string{"firewall", "add", "--port", "80"}, code: 1, stderr: `--source is required`},
		{name: "action", args: []string{"firewall", "add", "--source", "any", "--action", "reject"}, code: 1, stderr: `action "reject": must be allow or deny`},
		{name: "port zero", args: []string{"firewall", "add", "--source", "any", "--port", "0"}, code: 1, stderr: `port must be 1-65535`},
		{name: "port too big", args: []string{"firewall", "add", "--source", "any", "--port", "70000/udp"}, code: 1, stderr: `^ebpfnet: --port "70000/udp": port must be 1-65535\n$`},
		{name: "protocol", args: []string{"firewall", "add", "--source", "any", "--port", "80/sctp"}, code: 1, stderr: `must be tcp or udp`},
		{name: "two scopes", args: []string{"firewall", "add", "--source", "any", "--port", "80", "--network", "n1"}, code: 1, stderr: `a rule has one scope`},
		{name: "no such network", args: []string{"firewall", "add", "--source", "any", "--network", "n2"}, code: 1, stderr: `network n2 not found`},
		{name: "rm missing", args: []string{"firewall", "rm", "--source", "10.0.0.0/8"}, code: 1, stderr: `no firewall rule for all from 10.0.0.0/8`},
		{name: "unchanged", args: []string{"firewall", "ls"}, stdout: only},
		{name: "IPv6 allow", args: []string{"firewall", "add", "--network", "n1", "--source", "2001:db8::/32"}},
		{name: "both families", args: []string{"firewall", "ls"}, stdout: `^SCOPE\s+SOURCE\s+ACTION\nnetwork n1\s+10\.0\.0\.0/8\s+allow\nnetwork n1\s+2001:db8::/32\s+allow\nnetwork n1\s+0\.0\.0\.0/0\s+deny \(implied\)\nnetwork n1\s+::/0\s+deny \(implied\)\n$`},
		{name: "IPv6 quiet", args: []string{"firewall", "ls", "-q"}, stdout: `^--network n1 --source 10\.0\.0\.0/8\n--network n1 --source 2001:db8::/32\n$`},
		{name: "any is both families", args: []string{"firewall", "add", "--network", "n1", "--source", "any", "--action", "deny"}},
		{name: "explicit any, nothing implied", args: []string{"firewall", "ls"}, stdout: `^SCOPE\s+SOURCE\s+ACTION\nnetwork n1\s+10\.0\.0\.0/8\s+allow\nnetwork n1\s+0\.0\.0\.0/0\s+deny\nnetwork n1\s+2001:db8::/32\s+allow\nnetwork n1\s+::/0\s+deny\n$`},
		{name: "rm any", args: []string{"firewall", "rm", "--network", "n1", "--source", "any"}},
		{name: "rm IPv6", args: []string{"firewall", "rm", "--network", "n1", "--source", "2001:db8::/32"}},
		{name: "back to IPv4 only", args: []string{"firewall", "ls"}, stdout: only},
		{name: "replace action", args: []string{"firewall", "add", "--network", "n1", "--source", "10.0.0.0/8", "--action", "deny"}},
		{name: "no allow, no implied deny", args: []string{"firewall", "ls"}, stdout: `^SCOPE\s+SOURCE\s+ACTION\nnetwork n1\s+10\.0\.0\.0/8\s+deny\n$`},
		{name: "flush a scope", args: []string{"firewall", "flush", "--network", "n1"}, stdout: `^1 rule\(s\) removed\n$`},
		{name: "empty", args: []string{"firewall", "ls"}, stdout: `^SCOPE\s+SOURCE\s+ACTION\n$`},
	})
}
