// Command progstats measures how long the pinned datapath programs of an
// ebpfnet instance run while a workload runs: it turns on the kernel's BPF
// run-time statistics (BPF_ENABLE_STATS, for as long as it runs; no sysctl
// is changed) and reports each program's runs and ns per run.
//
//	progstats -pin-root /sys/fs/bpf/ebpfnet/<instance> -duration 5s
//
// Given a command after --, it measures exactly while the command runs
// instead, and with -count it turns the figures into a cost per unit of
// work: the command prints a JSON object (the bench's connrate and udp
// clients do) whose field -count names how many units it completed, and
// each program's runs and nanoseconds are divided by that number.
//
//	progstats -pin-root ... -count conns -unit conn -- ebpfnet-bench connrate ...
//
// Every pinned program is listed, those that did not run with 0. The
// socket hooks are attached to the root cgroup, so their runs count every
// socket of the machine, not only the workload's.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"syscall"
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

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "progstats: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	pinRoot := flag.String("pin-root", "", "the instance's pin root")
	duration := flag.Duration("duration", 5*time.Second, "how long to measure (without a command)")
	count := flag.String("count", "", "JSON field of the command's output that counts the units of work (e.g. conns, sent)")
	unit := flag.String("unit", "", "name of one unit of work in the table (default: the -count field)")
	flag.Parse()
	cmdArgs := flag.Args()
	if *count != "" && len(cmdArgs) == 0 {
		fail("-count needs a command after --")
	}
	if *unit == "" {
		*unit = *count
	}
	paths, _ := filepath.Glob(filepath.Join(*pinRoot, "progs", "*"))
	progs := map[string]*ebpf.Program{}
	for _, p := range paths {
		if prog, err := ebpf.LoadPinnedProgram(p, nil); err == nil {
			progs[filepath.Base(p)] = prog
		}
	}
	if len(progs) == 0 {
		fail("no pinned programs under %s", *pinRoot)
	}
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		fail("enable BPF stats: %v", err)
	}
	defer stats.Close()

	var out bytes.Buffer
	before := read(progs)
	if len(cmdArgs) == 0 {
		time.Sleep(*duration)
	} else {
		cmd := exec.Command(cmdArgs[0], cmdArgs[1:]...)
		cmd.Stdout, cmd.Stderr = &out, os.Stderr
		if err := cmd.Start(); err != nil {
			fail("%v", err)
		}
		// Pass an interrupt on to the command, then report what was measured.
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		go func() {
			s := <-sig
			cmd.Process.Signal(s)
		}()
		if err := cmd.Wait(); err != nil {
			stats.Close()
			fail("%s: %v (output %q)", cmdArgs[0], err, out.String())
		}
	}
	after := read(progs)

	units := 0.0
	if *count != "" {
		var res map[string]any
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			fail("decode the command's output %q: %v", out.String(), err)
		}
		n, ok := res[*count].(float64)
		if !ok || n <= 0 {
			fail("the command's output has no positive %q: %s", *count, out.String())
		}
		units = n
	}

	names := make([]string, 0, len(after))
	for n := range after {
		names = append(names, n)
	}
	sort.Strings(names)
	if units == 0 {
		fmt.Printf("%-18s %12s %10s\n", "program", "runs", "ns/run")
	} else {
		fmt.Printf("%-18s %12s %12s %10s %12s\n", "program", "runs", "runs/"+*unit, "ns/run", "ns/"+*unit)
	}
	var totalNs float64
	for _, n := range names {
		runs := after[n].runs - before[n].runs
		ns := float64(after[n].ns - before[n].ns)
		totalNs += ns
		perRun := "-"
		if runs > 0 {
			perRun = fmt.Sprintf("%.0f", ns/float64(runs))
		}
		if units == 0 {
			if runs > 0 {
				fmt.Printf("%-18s %12d %10s\n", n, runs, perRun)
			}
			continue
		}
		fmt.Printf("%-18s %12d %12.3f %10s %12.0f\n", n, runs, float64(runs)/units, perRun, ns/units)
	}
	if units > 0 {
		fmt.Printf("%-18s %12s %12s %10s %12.0f\n", "all programs", "", "", "", totalNs/units)
		fmt.Printf("%s: %.0f (the command's %q); its output: %s", *unit, units, *count, out.String())
	}
}
