// Command progstats measures how long the pinned datapath programs of an
// ebpfnet instance run per packet while a workload runs: it turns on the
// kernel's BPF run-time statistics (BPF_ENABLE_STATS, for as long as it runs;
// no sysctl is changed) and reports each program's runs and ns per run.
//
//	progstats -pin-root /sys/fs/bpf/ebpfnet/<instance> -duration 5s
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

type sample struct {
	runs uint64
	ns   time.Duration
}

func read(progs map[string]*ebpf.Program) map[string]sample {
	out := map[string]sample{}
	for name, p := range progs {
		st, err := p.Stats()
		if err != nil {
			continue
		}
		out[name] = sample{st.RunCount, st.Runtime}
	}
	return out
}

func main() {
	pinRoot := flag.String("pin-root", "", "the instance's pin root")
	duration := flag.Duration("duration", 5*time.Second, "how long to measure")
	flag.Parse()
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		fmt.Fprintln(os.Stderr, "enable BPF stats:", err)
		os.Exit(1)
	}
	defer stats.Close()
	paths, _ := filepath.Glob(filepath.Join(*pinRoot, "progs", "*"))
	progs := map[string]*ebpf.Program{}
	for _, p := range paths {
		if prog, err := ebpf.LoadPinnedProgram(p, nil); err == nil {
			progs[filepath.Base(p)] = prog
		}
	}
	if len(progs) == 0 {
		fmt.Fprintln(os.Stderr, "no pinned programs under", *pinRoot)
		os.Exit(1)
	}
	before := read(progs)
	time.Sleep(*duration)
	after := read(progs)
	names := make([]string, 0, len(after))
	for n := range after {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Printf("%-18s %12s %10s\n", "program", "runs", "ns/run")
	for _, n := range names {
		runs := after[n].runs - before[n].runs
		if runs == 0 {
			continue
		}
		ns := after[n].ns - before[n].ns
		fmt.Printf("%-18s %12d %10.0f\n", n, runs, float64(ns)/float64(runs))
	}
}
