package main

import "testing"

func TestInspectCommand(t *testing.T) {
	tp := newHost(t)
	c1 := tp.AddContainer("c1")
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	tp.MustEbpfnet("attach", "--network", "n1", "-p", "8080:80", c1)
	runCases(t, tp, []cliCase{
		{name: "bridge endpoint", args: []string{"inspect", c1}, stdout: `(?s)"network": "n1".*"proto": "tcp".*"host_port": 8080.*"program_id": [1-9]`},
		{name: "missing", args: []string{"inspect", "nope"}, code: 1, stderr: `no endpoint nope`},
		{name: "no target", args: []string{"inspect"}, code: 1, stderr: `requires at least 1 arg`},
	})
}
