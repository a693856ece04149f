package main

import "testing"

func TestPortCommand(t *testing.T) {
	tp := newHost(t)
	c1 := tp.AddContainer("c1")
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	tp.MustEbpfnet("attach", "--network", "n1", "-p", "8080:80", "-p", "127.0.0.1:5353:53/udp", c1)
	runCases(t, tp, []cliCase{
		{name: "like docker port", args: []string{"port", c1}, stdout: `^80/tcp -> 0\.0\.0\.0:8080\n53/udp -> 127\.0\.0\.1:5353\n$`},
		{name: "missing", args: []string{"port", "nope"}, code: 1, stderr: `no endpoint nope`},
	})
}
