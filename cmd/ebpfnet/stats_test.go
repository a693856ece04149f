package main

import "testing"

func TestStatsCommand(t *testing.T) {
	tp := newHost(t)
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	runCases(t, tp, []cliCase{
		{name: "table", args: []string{"stats"}, stdout: `(?s)DIRECTION\s+VERDICT\s+PACKETS\s+BYTES.*DROP REASON`},
		{name: "json", args: []string{"stats", "-o", "json"}, stdout: `(?s)"verdicts": \[.*"direction": "from_container"`},
		{name: "yaml refused", args: []string{"stats", "-o", "yaml"}, code: 1, stderr: `invalid argument "yaml" for "-o, --output" flag: want table or json`},
	})
}
