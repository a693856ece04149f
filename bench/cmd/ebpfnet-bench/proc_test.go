package main

import (
	"runtime"
	"testing"
	"time"
)

// A background process must outlive the goroutine (and OS thread) that
// started it: Pdeathsig fires when the forking thread exits, and a
// goroutine that ends while locked to its thread ends the thread. Two
// starters, because the runtime keeps the main thread (it parks it
// instead), and one of them may have run there.
func TestBackgroundProcessOutlivesTheStartingThread(t *testing.T) {
	r := newRunner(false)
	defer r.stopAll()
	var ps []*proc
	for range 2 {
		started := make(chan error, 1)
		go func() {
			runtime.LockOSThread() // not unlocked: the thread exits with this goroutine
			p, err := r.start("sleep", "sleep", "30")
			ps = append(ps, p)
			started <- err
		}()
		if err := <-started; err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	for i, p := range ps {
		if p.exited() {
			t.Errorf("process %d died with the thread of the goroutine that started it: %v", i, p.cmd.ProcessState)
		}
	}
}
