package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebpfnet/ebpfnet/datapath"
)

// tuneGC lets the heap of a short command grow to 5x its live size before
// collecting (Go's default is 2x): a command lives tens of milliseconds, and
// with a 40000-port range a quarter of its CPU went to collections that free
// nothing it would not free by exiting. The servers (daemon, docker-plugin)
// keep the default; GOGC set by the user wins.
func tuneGC(cmd *cobra.Command) {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	for c := cmd; c != nil; c = c.Parent() {
		if c.Name() == "daemon" || c.Name() == "docker-plugin" {
			return
		}
	}
	debug.SetGCPercent(400)
}

// stepTimesPrefix starts the stderr line with a command's step times.
const stepTimesPrefix = "ebpfnet-steps: "

// printStepTimes writes, when EBPFNET_STEP_TIMES is set (to the time the
// caller started the command, in Unix nanoseconds), one line on stderr with
// how long the command spent from that time to main (exec, the Go runtime,
// package initialization), in main, and in each step datapath timed, in
// microseconds. The bench reads it to show where an attach's time goes.
func printStepTimes(entered time.Time) {
	spawned, err := strconv.ParseInt(os.Getenv("EBPFNET_STEP_TIMES"), 10, 64)
	if err != nil {
		return
	}
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	out := struct {
		Start float64            `json:"start_us"`
		Main  float64            `json:"main_us"`
		Steps map[string]float64 `json:"steps_us"`
	}{us(entered.Sub(time.Unix(0, spawned))), us(time.Since(entered)), map[string]float64{}}
	for _, s := range datapath.StepTimes() {
		out.Steps[s.Name] = us(s.Took)
	}
	raw, _ := json.Marshal(out)
	fmt.Fprintf(os.Stderr, "%s%s\n", stepTimesPrefix, raw)
}
