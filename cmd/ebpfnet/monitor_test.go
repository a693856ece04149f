package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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
	// Wait until the first one holds the instance's monitor lock.
	lockFile := filepath.Join(tp.StateDir, "monitor.lock")
	deadline := time.Now().Add(15 * time.Second)
	for !heldByOther(lockFile) {
		if time.Now().After(deadline) || first.ProcessState != nil {
			t.Fatalf("first monitor never took the lock; stderr %q", errOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	second := tp.EbpfnetCmd("monitor")
	second = exec.CommandContext(ctx, second.Path, second.Args[1:]...)
	out, err := second.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "another monitor is running on this instance") {
		t.Fatalf("second monitor: %v, %q; want a refusal", err, out)
	}
}

// heldByOther reports whether another process holds an exclusive flock on
// path.
func heldByOther(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return true
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false
}
