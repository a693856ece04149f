package main

import "testing"

func TestNATCommand(t *testing.T) {
	tp := newHost(t)
	c1 := tp.AddContainer("c1")
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	tp.MustEbpfnet("attach", "--network", "n1", "--ip", "172.30.0.5", "-p", "8080:80", "-p", "198.18.0.2:5353:53/udp", c1)
	runCases(t, tp, []cliCase{
		{name: "bare group", args: []string{"nat"}, code: 1, stderr: `nat needs a subcommand: ls`},
		{name: "unknown subcommand", args: []string{"nat", "list"}, code: 1, stderr: `unknown command "list" for "ebpfnet nat"`},
		{name: "ls", args: []string{"nat", "ls"}, stdout: `(?s)^PUBLISHED\s+TO\n0\.0\.0\.0:8080/tcp\s+172\.30\.0\.5:80\n198\.18\.0\.2:5353/udp\s+172\.30\.0\.5:53\n.*KIND\s+FROM\s+TO`},
	})
}
