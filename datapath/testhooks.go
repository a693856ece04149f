//go:build ebpfnet_testhooks

package datapath

import (
	"fmt"
	"os"
	"syscall"
	"time"
)

// Test hooks, compiled only into test builds (go build -tags
// ebpfnet_testhooks; internal/testing/testutil.BuildEbpfnet, which the integration
// tests and scripts/killpoints.sh use). At a test point (at) of a command's
// steps:
//
//   - EBPFNET_TEST_PAUSE=<point> holds the command there while the test
//     changes the world under it (pauseAt);
//   - EBPFNET_TEST_KILL=<point> makes it SIGKILL itself, as a crash or an
//     OOM kill would: no rollback, no deferred function, so tests prove
//     that the next command repairs a crash;
//   - EBPFNET_TEST_FAULT=<point> makes it fail there, so tests prove that
//     a command failing half way rolls back.
//
// A production build has none of this: testHooks stays nil.
func init() { testHooks = envHooks{} }

type envHooks struct{}

func (envHooks) at(point string) error {
	pauseAt(point)
	if os.Getenv("EBPFNET_TEST_KILL") == point {
		killSelf()
	}
	if os.Getenv("EBPFNET_TEST_FAULT") == point {
		return fmt.Errorf("injected fault at %s", point)
	}
	return nil
}

// killSelf ends the process the way a crash or an OOM kill does: SIGKILL,
// so no deferred rollback and no store write runs.
func killSelf() {
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	time.Sleep(time.Hour) // the signal is delivered asynchronously
}

// pauseAt holds the process at point while a test changes the world under
// it (EBPFNET_TEST_PAUSE=<point>): it creates EBPFNET_TEST_PAUSE_FILE and
// goes on once the test removed it (after a minute at most), so a race
// that needs an unlucky scheduler to show (a namespace deleted and made
// again during an ADD) happens every time.
func pauseAt(point string) {
	file := os.Getenv("EBPFNET_TEST_PAUSE_FILE")
	if os.Getenv("EBPFNET_TEST_PAUSE") != point || file == "" {
		return
	}
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		return
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(file); os.IsNotExist(err) {
			return
		}
	}
}
