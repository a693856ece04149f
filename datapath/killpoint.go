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
