package main

import "testing"

func TestLsCommand(t *testing.T) {
	tp := newHost(t)
	runCases(t, tp, []cliCase{
		{name: "empty json is an array", args: []string{"ls", "-o", "json"}, stdout: `^\[\]\n$`},
	})
	c1 := tp.AddContainer("c1")
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	tp.MustEbpfnet("attach", "--network", "n1", "--ip", "172.30.0.7", "-p", "9000-9002:7000-7002/udp", "-p", "127.0.0.1:8080:80", c1)
	runCases(t, tp, []cliCase{
		{name: "table", args: []string{"ls"}, stdout: `(?m)^NAME\s+MODE\s+NETWORK\s+IP\s+PORTS\s+STATUS\s+HOST VETH\s+NETNS\n` + c1 + `\s+bridge\s+n1\s+172\.30\.0\.7\s+0\.0\.0\.0:9000-9002->7000-7002/udp, 127\.0\.0\.1:8080->80/tcp\s+up\s+veth\S+\s+/run/netns/` + c1 + `$`},
		{name: "quiet", args: []string{"ls", "-q"}, stdout: `^` + c1 + `\n$`},
		{name: "format", args: []string{"ls", "--format", "{{.Name}} {{.IP}} {{.Status}} {{len .Ports}}"}, stdout: `^` + c1 + ` 172\.30\.0\.7 up 4\n$`},
		{name: "format json", args: []string{"ls", "--format", "json"}, stdout: `"status": "up"`},
		{name: "bad template", args: []string{"ls", "--format", "{{.Nope}}"}, code: 1, stderr: `--format: .*can't evaluate field Nope`},
		{name: "ps is ls", args: []string{"ps", "-q"}, stdout: `^` + c1 + `\n$`},
		{name: "json", args: []string{"ls", "-o", "json"}, stdout: `"ip": "172.30.0.7"`},
		{name: "bad format", args: []string{"ls", "-o", "yaml"}, code: 1, stderr: `invalid argument "yaml" for "-o, --output" flag: want table or json`},
		{name: "args", args: []string{"ls", "x"}, code: 1, stderr: `unknown command "x" for "ebpfnet ls"`},
	})
}
