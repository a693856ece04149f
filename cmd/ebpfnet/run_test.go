package main

import "testing"

func TestRunCommand(t *testing.T) {
	tp := newHost(t)
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	name := tp.Prefix + "-r1"
	runCases(t, tp, []cliCase{
		{name: "exit status is the command's", args: []string{"run", "--net=none", "--rm", "--", "sh", "-c", "exit 7"}, code: 7},
		{name: "bridge gets eth0 and a route", args: []string{"run", "--network", "n1", "--name", name, "--rm", "--", "ip", "-4", "route"}, stdout: `default via 172\.30\.0\.1 dev eth0`},
		{name: "host shares the namespace", args: []string{"run", "--net=host", "--", "ip", "-o", "link", "show", "uplink0"}, stdout: `uplink0`},
		{name: "none has only lo", args: []string{"run", "--net=none", "--rm", "--", "ip", "-o", "link"}, stdout: `^1: lo:[^\n]*\n$`},
		{name: "bad mode", args: []string{"run", "--net=bogus", "--", "true"}, code: 1, stderr: `invalid --net "bogus"`},
		{name: "ports need bridge", args: []string{"run", "--net=host", "-p", "80", "--", "true"}, code: 1, stderr: `-p, --network and --ip need --net=bridge`},
		{name: "bad port", args: []string{"run", "-p", "0", "--", "true"}, code: 1, stderr: `invalid port spec "0"`},
		{name: "container mode needs an endpoint", args: []string{"run", "--net=container:nope", "--", "true"}, code: 1, stderr: `--net=container:nope: no endpoint nope`},
		{name: "no command", args: []string{"run"}, code: 1, stderr: `requires at least 1 arg`},
	})
	// --rm removed the endpoint and its namespace.
	runCases(t, tp, []cliCase{{name: "rm left nothing", args: []string{"ls", "-o", "json"}, stdout: `^\[\]\n$`}})
}
