package datapath

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeHooks fails at the points in fail and records every point it saw.
type fakeHooks struct {
	fail map[string]bool
	seen []string
}

func (h *fakeHooks) at(point string) error {
	h.seen = append(h.seen, point)
	if h.fail[point] {
		return errors.New("fault at " + point)
	}
	return nil
}

// keepHooks puts testHooks back as they were after the test.
func keepHooks(t *testing.T) {
	saved := testHooks
	t.Cleanup(func() { testHooks = saved })
}

// runSteps stops at the first failure; the steps that succeeded left their
// undos (and what they added themselves) on the rollback, in order, for
// the caller to run in reverse, and the failed step's undo is not there.
func TestRunStepsStopsAtFailureWithUndosOnRollback(t *testing.T) {
	var log []string
	do := func(name string) func() error { return func() error { log = append(log, name); return nil } }
	undoOf := func(name string) func() { return func() { log = append(log, "undo "+name) } }
	var rollback undo
	boom := errors.New("boom")
	err := runSteps(&rollback,
		step{name: "netlink", do: do("a"), undo: undoOf("a")},
		step{do: func() error { log = append(log, "b"); rollback.add(undoOf("b's own")); return nil }},
		step{do: do("c")},
		at("after-c"),
		step{do: func() error { log = append(log, "d"); return boom }, undo: undoOf("d")},
		step{do: do("e"), undo: undoOf("e")},
	)
	if !errors.Is(err, boom) {
		t.Fatalf("runSteps = %v, want boom", err)
	}
	rollback.run()
	want := []string{"a", "b", "c", "d", "undo b's own", "undo a"}
	if !slices.Equal(log, want) {
		t.Fatalf("ran %q, want %q", log, want)
	}
}

// runAll runs every step past failures and returns all their errors.
func TestRunAllGoesOnPastFailures(t *testing.T) {
	var ran []string
	e1, e2 := errors.New("e1"), errors.New("e2")
	err := runAll(
		step{do: func() error { ran = append(ran, "a"); return e1 }},
		step{name: "tcx", do: func() error { ran = append(ran, "b"); return nil }},
		step{do: func() error { ran = append(ran, "c"); return e2 }},
	)
	if !errors.Is(err, e1) || !errors.Is(err, e2) {
		t.Fatalf("runAll = %v, want e1 and e2", err)
	}
	if !slices.Equal(ran, []string{"a", "b", "c"}) {
		t.Fatalf("ran %q", ran)
	}
}

// Test points do nothing without hooks; with them, a failing point fails
// runSteps there (no later step runs) and is one more error for runAll.
func TestTestPoints(t *testing.T) {
	ran := 0
	count := step{do: func() error { ran++; return nil }}
	keepHooks(t)
	testHooks = nil
	if err := runSteps(nil, count, at("after-x"), count); err != nil || ran != 2 {
		t.Fatalf("without hooks: %v, %d steps ran", err, ran)
	}

	h := &fakeHooks{fail: map[string]bool{"after-x": true}}
	testHooks = h
	ran = 0
	err := runSteps(nil, count, at("before-x"), at("after-x"), count)
	if err == nil || !strings.Contains(err.Error(), "fault at after-x") || ran != 1 {
		t.Fatalf("runSteps with a fault: %v, %d steps ran, want the fault after 1", err, ran)
	}
	if !slices.Equal(h.seen, []string{"before-x", "after-x"}) {
		t.Fatalf("hooks saw %q", h.seen)
	}
	ran = 0
	if err := runAll(count, at("after-x"), count); err == nil || ran != 2 {
		t.Fatalf("runAll with a fault: %v, %d steps ran, want the fault and 2", err, ran)
	}
}

// Named steps are timed under their names (the bench's step groups),
// summed by name in the order they first ran; test points and unnamed
// steps are not.
func TestStepsAreTimedByName(t *testing.T) {
	saved := stepTimesOn
	stepTimesOn = true
	TakeStepTimes()
	t.Cleanup(func() { stepTimesOn = saved; TakeStepTimes() })
	sleep := func() error { time.Sleep(2 * time.Millisecond); return nil }
	var rollback undo
	if err := runSteps(&rollback,
		step{name: "netlink", do: sleep},
		step{name: "map writes", do: sleep},
		at("after-maps"),
		step{do: sleep},
		step{name: "netlink", do: sleep},
	); err != nil {
		t.Fatal(err)
	}
	got := StepTimes()
	var names []string
	for _, s := range got {
		names = append(names, s.Name)
	}
	if !slices.Equal(names, []string{"netlink", "map writes"}) {
		t.Fatalf("timed %q, want netlink and map writes", names)
	}
	if got[0].Took < 4*time.Millisecond || got[1].Took < 2*time.Millisecond {
		t.Fatalf("times %v: netlink must sum both of its steps", got)
	}
}
