package main

import (
	"strings"
	"testing"
)

// TestNetworkPrune (issue 21 item 13): network prune removes the bridge
// networks no endpoint uses and prints them as docker network prune does;
// it keeps networks in use and the default network, and without -f it
// asks and, not told yes, removes nothing.
func TestNetworkPrune(t *testing.T) {
	tp := newHost(t)
	c1 := tp.AddContainer("c1")
	for _, args := range [][]string{
		{"network", "create", "used", "--subnet", "172.30.0.0/24"},
		{"network", "create", "idle1", "--subnet", "172.30.1.0/24"},
		{"network", "create", "idle2", "--subnet", "172.30.2.0/24"},
		{"attach", "--network", "used", c1},
	} {
		tp.MustEbpfnet(args...)
	}
	// The default network, made by an attach and unused after its detach.
	c2 := tp.AddContainer("c2")
	tp.MustEbpfnet("attach", c2)
	tp.MustEbpfnet("detach", c2)

	runCases(t, tp, []cliCase{
		{name: "not confirmed", args: []string{"network", "prune"}, stdout: `^WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue\? \[y/N\] $`},
		{name: "bad flag", args: []string{"network", "prune", "--bogus"}, code: 1, stderr: `unknown flag: --bogus`},
		{name: "arguments", args: []string{"network", "prune", "-f", "idle1"}, code: 1, stderr: `unknown command "idle1"`},
		{name: "ls before", args: []string{"network", "ls", "-q"}, stdout: `^bridge\nhost\nidle1\nidle2\nnone\nused\n$`},
		{name: "prune", args: []string{"network", "prune", "-f"}, stdout: `^Deleted Networks:\nidle1\nidle2\n\n$`},
		{name: "ls after", args: []string{"network", "ls", "-q"}, stdout: `^bridge\nhost\nnone\nused\n$`},
		{name: "prune again", args: []string{"network", "prune", "--force"}, stdout: `^$`},
	})
	// The network in use still works for its endpoint.
	if out := tp.Exec(c1, "ip", "-o", "-4", "addr", "show", "eth0"); !strings.Contains(out, "172.30.0.2/24") {
		t.Errorf("c1's eth0 after network prune: %q", out)
	}
}
