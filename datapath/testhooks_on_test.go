//go:build ebpfnet_testhooks

package datapath

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A test build (-tags ebpfnet_testhooks) fails at EBPFNET_TEST_FAULT's
// point and holds at EBPFNET_TEST_PAUSE's until the pause file is gone.
// (EBPFNET_TEST_KILL is the integration tests': it ends the process.)
func TestHooksFromEnvironment(t *testing.T) {
	if _, ok := testHooks.(envHooks); !ok {
		t.Fatalf("test hooks %T, want envHooks", testHooks)
	}
	t.Setenv("EBPFNET_TEST_FAULT", "after-x")
	if err := runSteps(nil, at("before-x")); err != nil {
		t.Fatalf("at another point: %v", err)
	}
	if err := runSteps(nil, at("after-x")); err == nil || !strings.Contains(err.Error(), "injected fault at after-x") {
		t.Fatalf("at the fault's point: %v", err)
	}

	pause := filepath.Join(t.TempDir(), "paused")
	t.Setenv("EBPFNET_TEST_PAUSE", "before-x")
	t.Setenv("EBPFNET_TEST_PAUSE_FILE", pause)
	done := make(chan error, 1)
	go func() { done <- runSteps(nil, at("before-x")) }()
	for {
		if _, err := os.Stat(pause); err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("went on without pausing: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	select {
	case <-done:
		t.Fatal("went on while the pause file was there")
	case <-time.After(100 * time.Millisecond):
	}
	os.Remove(pause)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
