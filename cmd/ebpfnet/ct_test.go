package main

import "testing"

func TestCTCommand(t *testing.T) {
	tp := newHost(t)
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	runCases(t, tp, []cliCase{
		{name: "bare group", args: []string{"ct"}, code: 1, stderr: `ct needs a subcommand: gc, ls`},
		{name: "ls", args: []string{"ct", "ls"}, stdout: `^KIND\s+DIR\s+TUPLE\s+TRANSLATED\s+STATE\s+AGE\s+IDLE\s*\n$`},
		{name: "gc", args: []string{"ct", "gc"}, stdout: `^expired 0 flows in \S+\n$`},
		{name: "gc with timeouts", args: []string{"ct", "gc", "--ct-timeout-udp", "5s", "--ct-timeout-tcp-established", "1h"}, stdout: `^expired 0 flows`},
		{name: "negative timeout", args: []string{"ct", "gc", "--ct-timeout-udp=-5s"}, code: 1, stderr: `invalid argument "-5s" for "--ct-timeout-udp" flag: must be positive`},
		{name: "zero timeout", args: []string{"ct", "gc", "--ct-timeout-icmp=0s"}, code: 1, stderr: `invalid argument "0s" for "--ct-timeout-icmp" flag: must be positive`},
		{name: "bad duration", args: []string{"ct", "gc", "--ct-timeout-udp=soon"}, code: 1, stderr: `invalid argument "soon"`},
	})
}
