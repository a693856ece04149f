package main

import "testing"

func TestNetworkCommand(t *testing.T) {
	tp := newHost(t)
	runCases(t, tp, []cliCase{
		{name: "bare group", args: []string{"network"}, code: 1, stderr: `network needs a subcommand: connect, create, disconnect, inspect, ls, prune, rm`},
		{name: "unknown subcommand", args: []string{"network", "frobnicate"}, code: 1, stderr: `unknown command "frobnicate" for "ebpfnet network"`},
		{name: "create", args: []string{"network", "create", "n1", "--subnet", "172.30.0.0/24", "--icc=false"}, stdout: `^n1\n$`},
		{name: "create twice", args: []string{"network", "create", "n1", "--subnet", "172.31.0.0/24"}, code: 1, stderr: `network n1 already exists`},
		{name: "overlap", args: []string{"network", "create", "n2", "--subnet", "172.30.0.128/25"}, code: 1, stderr: `subnet 172.30.0.128/25 overlaps network n1`},
		{name: "bad subnet", args: []string{"network", "create", "n2", "--subnet", "300.1.0.0/16"}, code: 1, stderr: `subnet`},
		{name: "host is a mode", args: []string{"network", "create", "host"}, code: 1, stderr: `network name host is reserved: --network=host is a network mode`},
		{name: "none is a mode", args: []string{"network", "create", "none"}, code: 1, stderr: `network name none is reserved`},
		{name: "bad mtu", args: []string{"network", "create", "n2", "--mtu", "20"}, code: 1, stderr: `invalid MTU 20`},
		{name: "no name", args: []string{"network", "create"}, code: 1, stderr: `accepts 1 arg`},
		{name: "ls", args: []string{"network", "ls"}, stdout: `(?m)^NAME\s+DRIVER\s+SCOPE\s+SUBNET.*\nhost\s+host\s+local\s+-\s+-\s+-\s+-\s+-\s+-\nn1\s+bridge\s+local\s+172\.30\.0\.0/24\s+172\.30\.0\.1\s+\S+\s+uplink0\s+false\s+false\nnone\s+null\s+local\s+-\s+-\s+-\s+-\s+-\s+-\n$`},
		{name: "inspect", args: []string{"network", "inspect", "n1"}, stdout: `"subnet": "172.30.0.0/24"`},
		{name: "inspect missing", args: []string{"network", "inspect", "nope"}, code: 1, stderr: `network nope not found`},
		{name: "rm missing", args: []string{"network", "rm", "nope"}, code: 1, stderr: `network nope not found`},
		{name: "rm", args: []string{"network", "rm", "n1"}, stdout: `^n1\n$`},
		{name: "ls empty: Docker's predefined networks", args: []string{"network", "ls"}, stdout: `^NAME\s+DRIVER\s+SCOPE\s+SUBNET\s+GATEWAY\s+BRIDGE\s+UPLINK\s+ICC\s+INTERNAL\s*\nhost\s+host\s+local\s+-\s+-\s+-\s+-\s+-\s+-\nnone\s+null\s+local\s+-\s+-\s+-\s+-\s+-\s+-\n$`},
		{name: "ls -q", args: []string{"network", "ls", "-q"}, stdout: `^host\nnone\n$`},
		{name: "ls json", args: []string{"network", "ls", "-o", "json"}, stdout: `(?s)"name": "host".*"driver": "host",\s+"scope": "local".*"name": "none".*"driver": "null"`},
		{name: "rm host", args: []string{"network", "rm", "host"}, code: 1, stderr: `^ebpfnet: host is a pre-defined network and cannot be removed\n$`},
		{name: "rm none", args: []string{"network", "rm", "none"}, code: 1, stderr: `none is a pre-defined network`},
	})
}
