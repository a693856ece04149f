package main

import "testing"

func TestDetachCommand(t *testing.T) {
	tp := newHost(t)
	c1 := tp.AddContainer("c1")
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	tp.MustEbpfnet("attach", "--network", "n1", c1)
	runCases(t, tp, []cliCase{
		{name: "detach", args: []string{"detach", c1}, stdout: `^` + c1 + `\n$`},
		{name: "twice", args: []string{"detach", c1}, code: 1, stderr: `is not attached`},
		{name: "no target", args: []string{"detach"}, code: 1, stderr: `requires at least 1 arg`},
	})
}
