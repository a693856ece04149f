package main

import (
	"encoding/json"
	"os"
	"strings"
	"time"

	"github.com/cilium/ebpf"
)

// stepTimesPrefix starts the stderr line in which ebpfnet, run with
// EBPFNET_STEP_TIMES, reports where a command's time went
// (cmd/ebpfnet/steps.go).
const stepTimesPrefix = "ebpfnet-steps: "

func withoutStepTimes(stderr string) string {
	var keep []string
	for _, l := range strings.Split(stderr, "\n") {
		if !strings.HasPrefix(l, stepTimesPrefix) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// stepGroups are the metrics step times are summed into, by ebpfnet's step
// names (datapath.timeStep).
var stepGroups = map[string]string{
	"store open":            "store_ms",
	"store write":           "store_ms",
	"store read":            "store_ms",
	"load datapath":         "load_ms",
	"port checks":           "checks_ms",
	"netlink":               "netlink_ms",
	"sysctl":                "sysctl_ms",
	"map writes":            "maps_ms",
	"program attach":        "tcx_ms",
	"program detach":        "tcx_ms",
	"tcx":                   "tcx_ms", // builds before the cls_bpf filter
	"resolv.conf and hosts": "etc_ms",
	"conntrack flush":       "ctflush_ms",
}

// stepMetrics are what an attach or detach is split into; every command
// reports all of them (0 for a step it has not).
var stepMetrics = []metricDef{
	{"start_ms", "ms"}, {"store_ms", "ms"}, {"load_ms", "ms"}, {"checks_ms", "ms"}, {"netlink_ms", "ms"},
	{"sysctl_ms", "ms"}, {"maps_ms", "ms"}, {"tcx_ms", "ms"}, {"etc_ms", "ms"}, {"ctflush_ms", "ms"},
	{"other_ms", "ms"}, {"exit_ms", "ms"},
}

// stepLabels name stepMetrics in the table.
var stepLabels = map[string]string{
	"start_ms":   "process start: ip netns exec, exec, Go runtime and package init",
	"store_ms":   "store: open (lock, owner check, intents), record reads, intent and record writes (an attach's record: the wait for its fsyncs, run beside the netlink steps)",
	"load_ms":    "open the pinned datapath (build-ID fast path)",
	"checks_ms":  "port conflict checks (host sockets, published ports)",
	"netlink_ms": "netlink: veth pair, addresses, routes (detach: veth delete)",
	"sysctl_ms":  "sysctl: forwarding on the host veth",
	"maps_ms":    "map writes (endpoint, port bindings)",
	"tcx_ms":     "from_container's attach or detach (cls_bpf filter; before: TCX link and its pin)",
	"etc_ms":     "resolv.conf and hosts (an attach: the wait for them, written beside the netlink steps)",
	"ctflush_ms": "flush the endpoint's flows from conntrack",
	"other_ms":   "rest of main or of the request (flags or HTTP and JSON, output)",
	"exit_ms":    "process exit and reaping",
}

// parseStepTimes reads ebpfnet's step line; wall is the command's time as
// the bench saw it. Without the line (an older binary) it returns nil.
func parseStepTimes(stderr string, wall time.Duration) metrics {
	var raw struct {
		Start float64            `json:"start_us"`
		Main  float64            `json:"main_us"`
		Steps map[string]float64 `json:"steps_us"`
	}
	found := false
	for _, l := range strings.Split(stderr, "\n") {
		if rest, ok := strings.CutPrefix(l, stepTimesPrefix); ok {
			found = json.Unmarshal([]byte(rest), &raw) == nil
		}
	}
	if !found {
		return nil
	}
	m := groupSteps(raw.Steps, raw.Main)
	m["start_ms"] = raw.Start / 1e3
	m["exit_ms"] = max(ms(wall)-(raw.Start+raw.Main)/1e3, 0)
	return m
}

// groupSteps sums step times (µs, by ebpfnet's names) into stepMetrics;
// what totalUS leaves over is other_ms.
func groupSteps(steps map[string]float64, totalUS float64) metrics {
	m := metrics{}
	for _, d := range stepMetrics {
		m[d.name] = 0
	}
	rest := totalUS
	for name, us := range steps {
		g, ok := stepGroups[name]
		if !ok {
			g = "other_ms"
		}
		m[g] += us / 1e3
		rest -= us
	}
	m["other_ms"] += max(rest, 0) / 1e3
	return m
}

// pinnedMapBytes is the kernel memory of an instance's pinned maps
// (memlock, as the kernel accounts it), in total and per map name.
func pinnedMapBytes(pinRoot string) (total uint64, byName map[string]uint64, err error) {
	dir := pinRoot + "/maps"
	byName = map[string]uint64{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, nil, err
	}
	for _, e := range entries {
		name := e.Name()
		m, err := ebpf.LoadPinnedMap(dir+"/"+name, &ebpf.LoadPinOptions{ReadOnly: true})
		if err != nil {
			return 0, nil, err
		}
		info, err := m.Info()
		m.Close()
		if err != nil {
			return 0, nil, err
		}
		b, _ := info.Memlock()
		total += b
		byName[name] = b
	}
	return total, byName, nil
}
