package main

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestMonitorCommand(t *testing.T) {
	tp := newHost(t)
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	runCases(t, tp, []cliCase{
		{name: "bad format", args: []string{"monitor", "-o", "xml"}, code: 1, stderr: `want text or json`},
	})
	// A second monitor is refused instead of silently taking half the events.
	first := tp.EbpfnetCmd("monitor")
	var errOut bytes.Buffer
	first.Stderr = &errOut
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { first.Process.Kill(); first.Wait() }()
	// Until the first one holds the lock, a second one would run: bound it.
	for try := 0; ; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		second := tp.EbpfnetCmd("monitor")
		second = exec.CommandContext(ctx, second.Path, second.Args[1:]...)
		out, err := second.CombinedOutput()
		cancel()
		if err != nil && strings.Contains(string(out), "another monitor is running on this instance") {
			break
		}
		if try == 5 {
			t.Fatalf("second monitor: %v, %q; first monitor stderr %q", err, out, errOut.String())
		}
	}
}
