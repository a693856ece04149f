package main

import "testing"

// The daemon's serving is covered by integration tests (metrics, GC,
// reconcile, restarts); these are its flags.
func TestDaemonCommand(t *testing.T) {
	tp := newHost(t)
	runCases(t, tp, []cliCase{
		{name: "negative gc interval", args: []string{"daemon", "--gc-interval=-1s"}, code: 1, stderr: `invalid --gc-interval -1s: must be positive`},
		{name: "bad timeout", args: []string{"daemon", "--ct-timeout-tcp-syn=0s"}, code: 1, stderr: `invalid argument "0s" for "--ct-timeout-tcp-syn" flag: must be positive`},
		{name: "args", args: []string{"daemon", "x"}, code: 1, stderr: `unknown command "x" for "ebpfnet daemon"`},
		{name: "bad address", args: []string{"daemon", "--metrics-addr", "nowhere"}, code: 1, stderr: `listen tcp: address nowhere`},
	})
}
