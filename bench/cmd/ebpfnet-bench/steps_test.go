package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

// Step times are grouped into the table's metrics, every metric is present,
// and what main spent outside the timed steps is "other".
func TestParseStepTimes(t *testing.T) {
	stderr := "some warning\n" + stepTimesPrefix +
		`{"start_us":30000,"main_us":20000,"steps_us":{"store open":1000,"store write":2000,"netlink":5000,"tcx":1500,"something new":500}}` + "\n"
	m := parseStepTimes(stderr, 55*time.Millisecond)
	want := map[string]float64{"start_ms": 30, "store_ms": 3, "netlink_ms": 5, "tcx_ms": 1.5, "other_ms": 0.5 + 10, "exit_ms": 5, "load_ms": 0}
	for k, v := range want {
		if math.Abs(m[k]-v) > 1e-9 {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	for _, d := range stepMetrics {
		if _, ok := m[d.name]; !ok {
			t.Errorf("metric %s missing", d.name)
		}
	}
	if parseStepTimes("no steps here\n", time.Second) != nil {
		t.Error("a command without the step line gave step times")
	}
	if got := withoutStepTimes(stderr); strings.Contains(got, stepTimesPrefix) || !strings.Contains(got, "some warning") {
		t.Errorf("withoutStepTimes = %q", got)
	}
}

// The range publish is Docker 28+'s: per protocol one DNAT, one accept and
// one hairpin masquerade matching the whole range, each as check, append
// and delete.
func TestIptablesRangeCmds(t *testing.T) {
	cmds := iptablesRangeCmds("172.30.199.2")
	if len(cmds) != 2*3*3 {
		t.Fatalf("%d commands, want 18", len(cmds))
	}
	for i, c := range cmds {
		line := strings.Join(c, " ")
		op := []string{"-C", "-A", "-D"}[i%3]
		if !strings.Contains(line, " "+op+" ") || !strings.Contains(line, "--dport 20000:40000") {
			t.Errorf("command %d: %s", i, line)
		}
	}
	if !strings.Contains(strings.Join(cmds[1], " "), "DNAT --to-destination 172.30.199.2:20000-40000") {
		t.Errorf("DNAT rule: %v", cmds[1])
	}
}
