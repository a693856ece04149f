package main

import "testing"

func TestLsCommand(t *testing.T) {
	tp := newHost(t)
	runCases(t, tp, []cliCase{
		{name: "empty json is an array", args: []string{"ls", "-o", "json"}, stdout: `^\[\]\n$`},
	})
	c1 := tp.AddContainer("c1")
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	tp.MustEbpfnet("attach", "--network", "n1", "--ip", "172.30.0.7", c1)
	runCases(t, tp, []cliCase{
		{name: "table", args: []string{"ls"}, stdout: `(?m)^NAME\s+MODE\s+NETWORK\s+IP\s+MAC\s+HOST VETH\s+NETNS\n` + c1 + `\s+bridge\s+n1\s+172\.30\.0\.7\s+\S+\s+veth\S+\s+/run/netns/` + c1 + `$`},
		{name: "json", args: []string{"ls", "-o", "json"}, stdout: `"ip": "172.30.0.7"`},
		{name: "bad format", args: []string{"ls", "-o", "yaml"}, code: 1, stderr: `invalid argument "yaml" for "-o, --output" flag: want table or json`},
		{name: "args", args: []string{"ls", "x"}, code: 1, stderr: `unknown command "x" for "ebpfnet ls"`},
	})
}
