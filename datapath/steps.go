package datapath

import (
	"errors"
	"os"
	"sync"
	"time"
)

// Steps. A command that changes the kernel (attach, detach, network create
// and rm, a firewall change) is a list of steps run by one runner: runSteps
// stops at the first failure, with each finished step's undo on the
// caller's rollback; runAll (a teardown) goes on past failures. The runner
// times each step under its name and, in a test build only, runs the test
// hooks at the points in the list (at): that is all the instrumentation
// the commands have.

// step is one step of a command.
type step struct {
	// name is what the step's time is counted under (EBPFNET_STEP_TIMES:
	// "netlink", "map writes", "store write", ...; the bench groups by
	// these names); empty: not timed.
	name string
	do   func() error
	// undo reverts do once it succeeded (runSteps adds it to the
	// rollback); nil: nothing to revert.
	undo func()
	// point makes the step a test point (at) instead: no do, no undo.
	point string
}

// at is the test point point: where a test build's hooks fail, kill or
// hold the command (testhooks.go). The names are the tests': after-veth,
// after-maps, after-link, before-save, detach-after-unlink, ...
func at(point string) step { return step{point: point} }

// runSteps runs list in order and returns the first error. A step that
// succeeded puts its undo onto rollback (a step may add undos of its own
// there while it runs); the caller runs rollback if the command as a whole
// fails, and drops it if it succeeds. rollback may be nil for steps
// without undo.
func runSteps(rollback *undo, list ...step) error {
	for _, s := range list {
		if err := s.run(); err != nil {
			return err
		}
		if s.undo != nil {
			rollback.add(s.undo)
		}
	}
	return nil
}

// runAll runs every step of list, also past failures (a teardown removes
// as much as it can), and returns their errors joined.
func runAll(list ...step) error {
	var errs []error
	for _, s := range list {
		errs = append(errs, s.run())
	}
	return errors.Join(errs...)
}

func (s step) run() error {
	if s.do == nil {
		if s.point != "" && testHooks != nil {
			return testHooks.at(s.point)
		}
		return nil
	}
	if s.name == "" {
		return s.do()
	}
	defer timeStep(s.name)()
	return s.do()
}

// testHooks fail, kill or hold a command at a test point. A binary built
// with -tags ebpfnet_testhooks (testhooks.go) sets them from the
// environment; in a production build they are nil and no code reads a
// test variable.
var testHooks interface {
	at(point string) error
}

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

var stepTimes struct {
	sync.Mutex
	list []Step
}

// timeStep starts timing a step outside a step list (store open, loading
// the datapath); the returned function ends it.
func timeStep(name string) func() {
	if !stepTimesOn {
		return func() {}
	}
	t0 := time.Now()
	return func() { addStep(name, time.Since(t0)) }
}

func addStep(name string, d time.Duration) {
	stepTimes.Lock()
	defer stepTimes.Unlock()
	for k := range stepTimes.list {
		if stepTimes.list[k].Name == name {
			stepTimes.list[k].Took += d
			return
		}
	}
	stepTimes.list = append(stepTimes.list, Step{name, d})
}

// TakeStepTimes returns the steps timed so far and starts counting anew:
// a long-lived process (the daemon's API) reports each request's own.
func TakeStepTimes() []Step {
	stepTimes.Lock()
	defer stepTimes.Unlock()
	out := stepTimes.list
	stepTimes.list = nil
	return out
}

// StepTimes returns the steps timed so far in the order they first ran,
// or nothing unless EBPFNET_STEP_TIMES is set.
func StepTimes() []Step {
	stepTimes.Lock()
	defer stepTimes.Unlock()
	return append([]Step(nil), stepTimes.list...)
}
