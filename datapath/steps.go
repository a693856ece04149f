package datapath

import (
	"os"
	"sync"
	"time"
)

// Step timing. With EBPFNET_STEP_TIMES set, a command adds up how long each
// step of its work took (store, loading the datapath, netlink, sysctl, map
// writes, TCX), and the CLI prints the totals, so the bench can show where
// an attach's time goes. Unset, a step costs one branch.
var stepTimesOn = os.Getenv("EBPFNET_STEP_TIMES") != ""

// StepTimesOn says whether steps are timed (EBPFNET_STEP_TIMES was set).
func StepTimesOn() bool { return stepTimesOn }

// Step is the time spent in one kind of step, summed over a command.
type Step struct {
	Name string
	Took time.Duration
}

var steps struct {
	sync.Mutex
	list []Step
}

// timeStep starts timing a step; the returned function ends it.
func timeStep(name string) func() {
	if !stepTimesOn {
		return func() {}
	}
	t0 := time.Now()
	return func() { addStep(name, time.Since(t0)) }
}

func addStep(name string, d time.Duration) {
	steps.Lock()
	defer steps.Unlock()
	for k := range steps.list {
		if steps.list[k].Name == name {
			steps.list[k].Took += d
			return
		}
	}
	steps.list = append(steps.list, Step{name, d})
}

// TakeStepTimes returns the steps timed so far and starts counting anew:
// a long-lived process (the daemon's API) reports each request's own.
func TakeStepTimes() []Step {
	steps.Lock()
	defer steps.Unlock()
	out := steps.list
	steps.list = nil
	return out
}

// StepTimes returns the steps timed so far in the order they first ran,
// or nothing unless EBPFNET_STEP_TIMES is set.
func StepTimes() []Step {
	steps.Lock()
	defer steps.Unlock()
	return append([]Step(nil), steps.list...)
}
