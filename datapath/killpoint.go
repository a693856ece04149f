package datapath

import (
	"os"
	"syscall"
	"time"
)

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
