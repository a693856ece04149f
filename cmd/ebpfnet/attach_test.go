package main

import "testing"

func TestAttachCommand(t *testing.T) {
	tp := newHost(t)
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	c1, c2 := tp.AddContainer("c1"), tp.AddContainer("c2")
	runCases(t, tp, []cliCase{
		{name: "bad mode", args: []string{"attach", "--net=bogus", c1}, code: 1, stderr: `invalid --net "bogus"`},
		{name: "host mode", args: []string{"attach", "--net=host", c1}, code: 1, stderr: `use .ebpfnet run. for host`},
		{name: "bad port", args: []string{"attach", "--network", "n1", "-p", "80/sctp", c1}, code: 1, stderr: `invalid port spec "80/sctp": protocol must be tcp or udp`},
		{name: "ports need bridge", args: []string{"attach", "--net=none", "-p", "80", c1}, code: 1, stderr: `published ports need --net=bridge`},
		{name: "missing target", args: []string{"attach", "--network", "n1", tp.Prefix + "-nope"}, code: 1, stderr: `nope`},
		{name: "unknown network", args: []string{"attach", "--network", "nope", c1}, code: 1, stderr: `network nope not found`},
		{name: "ip outside subnet", args: []string{"attach", "--network", "n1", "--ip", "10.0.0.5", c1}, code: 1, stderr: `10.0.0.5`},
		{name: "bridge", args: []string{"attach", "--network", "n1", "--ip", "172.30.0.10", "-p", "8080:80", "-p", "5353:53/udp", c1}, stdout: `^` + c1 + ` n1 172\.30\.0\.10\n$`},
		{name: "twice", args: []string{"attach", "--network", "n1", c1}, code: 1, stderr: `already`},
		{name: "port taken", args: []string{"attach", "--network", "n1", "-p", "8080:81", c2}, code: 1, stderr: `port 8080/tcp on 0\.0\.0\.0 is already published by endpoint ` + c1},
		{name: "none", args: []string{"attach", "--net=none", c2}, stdout: `^` + c2 + ` none\n$`},
		{name: "no target", args: []string{"attach"}, code: 1, stderr: `accepts 1 arg`},
	})
}
