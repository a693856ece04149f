package main

import (
	"slices"
	"testing"
)

// Every mode takes every turn once over as many repetitions as modes.
func TestRotatedGivesEveryModeEveryTurn(t *testing.T) {
	envs := []*env{{mode: "host"}, {mode: "routed"}, {mode: "iptables"}}
	first := map[string]int{}
	for rep := 0; rep < 6; rep++ {
		got := rotated(envs, rep)
		if len(got) != len(envs) {
			t.Fatalf("rep %d: %d envs, want %d", rep, len(got), len(envs))
		}
		for _, e := range envs {
			if !slices.Contains(got, e) {
				t.Fatalf("rep %d: %s missing", rep, e.mode)
			}
		}
		first[got[0].mode]++
	}
	for _, e := range envs {
		if first[e.mode] != 2 {
			t.Errorf("%s went first %d times in 6 repetitions, want 2", e.mode, first[e.mode])
		}
	}
	if got := rotated(envs, 0); got[0] != envs[0] || &got[0] == &envs[0] {
		t.Errorf("rotated(envs, 0) must be a copy in the same order")
	}
}
