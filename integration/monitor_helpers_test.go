package integration

import (
	"encoding/json"
	"os/exec"
	"syscall"
	"testing"
)

// monitorEvents starts mon (an `ebpfnet monitor -o json` command) until
// the test ends and yields its events; the channel closes when it exits.
func monitorEvents(t *testing.T, mon *exec.Cmd) <-chan map[string]any {
	t.Helper()
	stdout, err := mon.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := mon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mon.Process.Signal(syscall.SIGTERM); mon.Wait() })
	events := make(chan map[string]any, 64)
	go func() {
		defer close(events)
		dec := json.NewDecoder(stdout)
		for {
			var ev map[string]any
			if dec.Decode(&ev) != nil {
				return
			}
			events <- ev
		}
	}()
	return events
}
