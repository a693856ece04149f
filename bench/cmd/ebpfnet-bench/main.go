// Command ebpfnet-bench compares ebpfnet with Docker-style bridge networking
// (Docker's iptables rules, and its nftables rules) and with host mode, on
// sandbox network namespaces it builds and removes itself. See bench/README.md.
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ebpfnet/ebpfnet/bench/internal/report"
)

type config struct {
	quick      bool
	strict     bool // exit non-zero when a cell failed (CI)
	reps       int
	modes      []string
	out        string
	ebpfnetBin string // the private copy the run uses
	ebpfnetSrc string // what -ebpfnet named
	ebpfnetSum string // its sha256
	self       string
	clientCPU  int
	serverCPU  int
	maxTime    time.Duration
	trace      bool

	iperfTime, iperfOmit    int
	rrSize, rrWarmup, rrN   int
	rrScaleN                int
	rrMaxTime               time.Duration
	connConc                int
	connMax, connWarmup     int64
	connTime, connScaleTime time.Duration
	udpSize                 int
	udpMax                  int64
	udpTime                 time.Duration
	scaleNs, attachNs       []int
	scaleSetupLimit         time.Duration
	ctEntries               int             // conntrack scale: table size, entries
	parts                   map[string]bool // which parts of the bench run (-only)
}

// benchParts are the parts -only selects from, in the order they run.
var benchParts = []string{"traffic", "ipv6", "scaling", "attach", "range", "conntrack", "overlay"}

func main() {
	if tool(os.Args[1:]) {
		return
	}
	cfg := &config{}
	var modes, scaleNs, attachNs, only string
	flag.BoolVar(&cfg.strict, "strict", false, "exit with an error if any cell failed (for CI)")
	flag.BoolVar(&cfg.quick, "quick", false, "CI smoke run: 1 repetition, short runs, N up to 1000, no overlay or ipv6 part and no routed mode unless -only / -modes name them (< 2 minutes)")
	flag.IntVar(&cfg.reps, "reps", 0, "repetitions (default 3, quick 1)")
	flag.StringVar(&modes, "modes", "host,routed,iptables,nftables,ebpfnet", "modes, in the order they are interleaved (routed: plain veth pairs and routing, no NAT: the second reference)")
	flag.StringVar(&cfg.out, "out", "", "results directory (default bench/results, quick: bench/results/quick)")
	flag.StringVar(&cfg.ebpfnetBin, "ebpfnet", "bin/ebpfnet", "ebpfnet binary")
	flag.IntVar(&cfg.clientCPU, "client-cpu", 0, "CPU the clients are pinned to (-1: none)")
	flag.IntVar(&cfg.serverCPU, "server-cpu", 1, "CPU the servers are pinned to (-1: none)")
	flag.DurationVar(&cfg.maxTime, "max-time", 0, "bound on the whole run (default 90m, quick 150s)")
	flag.StringVar(&scaleNs, "scale-n", "", "other published ports for the scaling runs (default 0,1000,10000,50000; quick 0,1000)")
	flag.StringVar(&attachNs, "attach-n", "", "attached containers for the attach-time runs (default 0,10,50; quick 0,10)")
	flag.BoolVar(&cfg.trace, "trace", false, "print every command")
	flag.StringVar(&only, "only", strings.Join(benchParts, ","), "parts to run: traffic (throughput, latency), ipv6 (DNAT ingress, SNAT egress and container to container over IPv6: host, ip6tables, ebpfnet), scaling (N published ports), attach (N attached containers), range (a 40002-port publish), conntrack (a full conntrack table), overlay (two hosts: ebpfnet overlay vs the underlay vs kernel VXLAN)")
	flag.IntVar(&cfg.ctEntries, "ct-entries", 0, "conntrack scale run: table size in entries, filled to the brim (default 1048576, quick 131072)")
	clean := flag.Bool("clean", false, "only remove what killed runs left behind (namespaces, pins and their cgroup links, state) and exit")
	render := flag.String("render", "", "only re-render results.md and the SVGs from this results.json (into its directory unless -out)")
	flag.Parse()
	if *render != "" {
		if err := rerender(*render, cfg.out); err != nil {
			fail(err)
		}
		return
	}
	if *clean {
		for _, p := range cleanLeftovers(newRunner(cfg.trace)) {
			fmt.Printf("removed what a killed run left: %s-*\n", p)
		}
		return
	}
	cfg.modes = strings.Split(modes, ",")
	cfg.parts = map[string]bool{}
	for _, p := range strings.Split(only, ",") {
		if !slicesContains(benchParts, p) {
			fail(fmt.Errorf("-only: unknown part %q (parts: %s)", p, strings.Join(benchParts, ",")))
		}
		cfg.parts[p] = true
	}
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if cfg.quick && !set["only"] {
		// Its sandbox (etcd, two daemons) costs ~20 s: more than the
		// quick run's two minutes allow. -only overlay runs it.
		delete(cfg.parts, "overlay")
		// The IPv6 part too (~40 s of sandboxes and runs): -only ipv6.
		delete(cfg.parts, "ipv6")
	}
	if cfg.quick && !set["modes"] {
		// The second reference too (~20 s): -modes names it.
		cfg.modes = slices.DeleteFunc(cfg.modes, func(m string) bool { return m == "routed" })
	}
	cfg.defaults()
	var err error
	if cfg.scaleNs, err = parseInts(scaleNs, cfg.scaleNs); err != nil {
		fail(err)
	}
	if cfg.attachNs, err = parseInts(attachNs, cfg.attachNs); err != nil {
		fail(err)
	}
	if cfg.self, err = os.Executable(); err != nil {
		fail(err)
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "ebpfnet-bench:", err)
		os.Exit(1)
	}
}

func (c *config) defaults() {
	if c.quick {
		c.reps = cmp(c.reps, 1)
		c.out = cmpS(c.out, "bench/results/quick")
		c.maxTime = cmpD(c.maxTime, 150*time.Second)
		c.iperfTime, c.iperfOmit = 2, 1
		c.rrN, c.rrScaleN, c.rrWarmup = 5000, 2000, 500
		c.rrMaxTime = 3 * time.Second
		c.connTime, c.connScaleTime, c.connMax, c.connWarmup = 1500*time.Millisecond, 1*time.Second, 20000, 100
		c.udpTime, c.udpMax = 1*time.Second, 2_000_000
		c.scaleNs, c.attachNs = []int{0, 1000}, []int{0, 10}
		c.scaleSetupLimit = 60 * time.Second
		c.ctEntries = cmp(c.ctEntries, 128*1024)
	} else {
		c.reps = cmp(c.reps, 3)
		c.out = cmpS(c.out, "bench/results")
		c.maxTime = cmpD(c.maxTime, 90*time.Minute)
		c.iperfTime, c.iperfOmit = 10, 2
		c.rrN, c.rrScaleN, c.rrWarmup = 50000, 10000, 2000
		c.rrMaxTime = 20 * time.Second
		c.connTime, c.connScaleTime, c.connMax, c.connWarmup = 5*time.Second, 3*time.Second, 60000, 500
		c.udpTime, c.udpMax = 5*time.Second, 10_000_000
		c.scaleNs, c.attachNs = []int{0, 1000, 10000, 50000}, []int{0, 10, 50, 1000}
		c.scaleSetupLimit = 240 * time.Second
		c.ctEntries = cmp(c.ctEntries, 1024*1024)
	}
	c.rrSize, c.connConc, c.udpSize = 64, 4, 64
}

func cmp(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}
func cmpS(v, d string) string {
	if v == "" {
		return d
	}
	return v
}
func cmpD(v, d time.Duration) time.Duration {
	if v == 0 {
		return d
	}
	return v
}

func parseInts(s string, def []int) ([]int, error) {
	if s == "" {
		return def, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("bad number %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

type bench struct {
	cfg   *config
	r     *runner
	res   *report.Results
	envs  []*env
	start time.Time
	rep   int
	ctx   context.Context // the run's; a cell cut short by its end is not recorded
	maxN  map[string]int  // mode -> largest N it survived setting up; beyond: skipped
	ctEnv *env            // the conntrack scale run's own ebpfnet sandbox
	ov    *ovBench        // the overlay part's sandbox (two hosts, etcd)
	v6    []*env          // the IPv6 part's sandboxes, one per mode, while the part runs
}

func (b *bench) logf(format string, a ...any) {
	el := time.Since(b.start).Truncate(100 * time.Millisecond)
	fmt.Printf("[%7s] "+format+"\n", append([]any{el}, a...)...)
}

func run(cfg *config) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces, iptables, BPF)")
	}
	for _, m := range cfg.modes {
		switch m {
		case "host", "routed", "iptables", "nftables", "ebpfnet":
		default:
			return fmt.Errorf("unknown mode %q", m)
		}
	}
	if cfg.clientCPU >= 0 && cfg.serverCPU >= 0 && cfg.clientCPU == cfg.serverCPU {
		return errors.New("client and server CPUs must differ")
	}
	// Lock this run's id before making anything (released after everything
	// made is removed), then remove what killed runs left.
	lock, err := lockRun()
	if err != nil {
		return err
	}
	defer lock.release()
	for _, p := range cleanLeftovers(newRunner(cfg.trace)) {
		fmt.Printf("removed what a killed run left: %s-*\n", p)
	}
	// Run a private copy of ebpfnet: bin/ebpfnet may be rebuilt while the
	// benchmark runs, and a build with other map layouts cannot use the
	// instance's pins.
	snap, sum, err := snapshot(cfg.ebpfnetBin, lock.id)
	if err != nil && slicesContains(cfg.modes, "ebpfnet") {
		return fmt.Errorf("ebpfnet binary: %w (run make build)", err)
	}
	if snap != "" {
		defer os.RemoveAll(filepath.Dir(snap))
		cfg.ebpfnetSrc, cfg.ebpfnetBin, cfg.ebpfnetSum = cfg.ebpfnetBin, snap, sum
	}
	// The same for this program, which the namespaces run as the traffic tools.
	if self, _, err := snapshot(cfg.self, lock.id); err == nil {
		defer os.RemoveAll(filepath.Dir(self))
		cfg.self = self
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.maxTime)
	defer cancel()

	b := &bench{cfg: cfg, r: newRunner(cfg.trace), start: time.Now(), maxN: map[string]int{}, ctx: ctx}
	b.res = &report.Results{Meta: report.Meta{
		Start: b.start, Quick: cfg.quick, Reps: cfg.reps, Modes: cfg.modes,
		Machine: machineInfo(cfg), Params: cfg.params(),
	}}
	// Everything made is removed on every way out: processes first (by PID),
	// then namespaces, pins and state.
	defer func() {
		b.r.stopAll()
		for _, e := range b.envs {
			e.teardown()
		}
		if b.ctEnv != nil {
			b.ctEnv.teardown()
		}
		if b.ov != nil {
			b.ov.teardown(b.r)
		}
		b.teardown6()
	}()

	// The traffic sandboxes serve these parts; the others build their own
	// (and only name theirs after b.envs[0]'s prefix).
	needEnvs := cfg.parts["traffic"] || cfg.parts["scaling"] || cfg.parts["attach"] || cfg.parts["range"]
	for _, m := range cfg.modes {
		e := newEnv(m, benchPrefix+lock.id+m[:1], cfg, b.r, b.logf)
		b.envs = append(b.envs, e)
		if !needEnvs {
			continue
		}
		b.logf("setup %-8s (namespaces %s-*)", m, e.prefix)
		if err := e.setup(ctx); err != nil {
			e.broken = fmt.Errorf("setup: %w", err)
		}
		if e.broken != nil {
			b.logf("!! %s: %v -- every %s cell will be recorded as failed", m, e.broken, m)
			b.note(fmt.Sprintf("%s: %v", m, e.broken))
		}
		if e.pubErr != nil {
			b.note(fmt.Sprintf("%s: %v", m, e.pubErr))
		}
	}

	err = b.loop(ctx)
	b.res.Meta.End = time.Now()
	b.res.Meta.Machine["loadavg_end"] = loadavg()
	if ctx.Err() != nil {
		b.note(fmt.Sprintf("run interrupted or over its time bound (%s): results are partial", cfg.maxTime))
	}
	if werr := b.write(); werr != nil {
		return werr
	}
	if err != nil {
		return err
	}
	if cfg.strict {
		failed := 0
		for _, smp := range b.res.Samples {
			if !smp.OK {
				failed++
			}
		}
		if failed > 0 {
			return fmt.Errorf("%d measurements failed (see the notes in %s)", failed, cfg.out)
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", context.Cause(ctx))
	}
	return nil
}

// rerender rebuilds the Markdown and SVG files from a results.json.
func rerender(file, out string) error {
	js, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	b := &bench{cfg: &config{}, start: time.Now(), res: &report.Results{}}
	if err := json.Unmarshal(js, b.res); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	b.cfg.modes, b.cfg.out = b.res.Meta.Modes, cmpS(out, filepath.Dir(file))
	return b.write()
}

func (b *bench) note(s string) {
	for _, n := range b.res.Notes {
		if n == s {
			return
		}
	}
	b.res.Notes = append(b.res.Notes, s)
}

// loop runs the repetitions; within each, every workload runs for every mode
// in turn (host iptables nftables ebpfnet, host iptables ...).
func (b *bench) loop(ctx context.Context) error {
	c := b.cfg
	for b.rep = 1; b.rep <= c.reps; b.rep++ {
		b.logf("=== repetition %d/%d", b.rep, c.reps)
		workloads := []struct {
			name string
			f    func(*env) (metrics, json.RawMessage, error)
			ms   []metricDef
		}{
			{"dnat_tcp", func(e *env) (metrics, json.RawMessage, error) { return e.iperf(ctx, e.ingress()) }, gbps},
			{"snat_tcp", func(e *env) (metrics, json.RawMessage, error) { return e.iperf(ctx, e.egress()) }, gbps},
			{"dnat_rr", func(e *env) (metrics, json.RawMessage, error) { return e.rr(ctx, e.ingress(), c.rrN) }, rrMetrics},
			{"dnat_connrate", func(e *env) (metrics, json.RawMessage, error) { return e.connrate(ctx, e.ingress()) }, connMetrics},
			{"dnat_udp", func(e *env) (metrics, json.RawMessage, error) { return e.udp(ctx, e.ingress()) }, udpMetrics},
			{"c2c_tcp", func(e *env) (metrics, json.RawMessage, error) { return e.iperf(ctx, e.c2c()) }, gbps},
			{"c2c_rr", func(e *env) (metrics, json.RawMessage, error) { return e.rr(ctx, e.c2c(), c.rrN) }, rrMetrics},
		}
		// Each repetition starts the modes' turns one mode further on: a
		// cell leaves state the next one meets (the server's TIME_WAIT
		// sockets in the kernel's one connection table, netfilter's
		// conntrack), so a fixed order would always favour the first mode.
		order := rotated(b.envs, b.rep-1)
		for _, w := range workloads {
			if !c.parts["traffic"] {
				break
			}
			for _, e := range order {
				if ctx.Err() != nil {
					return nil
				}
				b.measure(e, w.name, report.NoN, w.ms, func() (metrics, json.RawMessage, error) { return w.f(e) })
			}
		}
		if c.parts["ipv6"] {
			b.ipv6(ctx)
		}
		if c.parts["scaling"] {
			b.scaling(ctx)
		}
		if c.parts["attach"] {
			b.attachScaling(ctx)
		}
		if c.parts["range"] {
			b.rangePublishing(ctx)
			b.ranges(ctx)
		}
		if c.parts["conntrack"] {
			b.conntrackScale(ctx)
		}
		if c.parts["overlay"] {
			b.overlay(ctx)
		}
	}
	return nil
}

// rotated returns envs starting at index k (mod their number).
func rotated(envs []*env, k int) []*env {
	if len(envs) == 0 {
		return envs
	}
	k %= len(envs)
	return append(append([]*env{}, envs[k:]...), envs[:k]...)
}

// rangePublishing: publishing and removing a 40002-port range in one go.
func (b *bench) rangePublishing(ctx context.Context) {
	n := 2 * (rangeHi - rangeLo + 1)
	for _, e := range b.envs {
		if ctx.Err() != nil {
			return
		}
		if e.reference() {
			continue
		}
		var unpublish time.Duration
		b.measure(e, "publish_range", n, msMetric, func() (metrics, json.RawMessage, error) {
			p, u, err := e.publishRange(ctx)
			unpublish = u
			return metrics{"ms": ms(p)}, nil, err
		})
		if unpublish > 0 {
			b.measure(e, "unpublish_range", n, msMetric, func() (metrics, json.RawMessage, error) {
				return metrics{"ms": ms(unpublish)}, nil, nil
			})
		}
	}
}

// ranges: a container publishing 40002 ports against Docker 28+'s range
// rules (one per protocol and purpose), started and removed; for ebpfnet
// also `port` and `nat ls` on it, the ports map's memory and step times.
func (b *bench) ranges(ctx context.Context) {
	for _, e := range b.envs {
		if ctx.Err() != nil || e.reference() {
			continue
		}
		res, err := e.publishRangeRules(ctx)
		b.measure(e, "publish_range_rules", report.NoN, msMetric, func() (metrics, json.RawMessage, error) {
			return metrics{"ms": ms(res.publish)}, nil, err
		})
		if err != nil {
			continue
		}
		b.measure(e, "unpublish_range_rules", report.NoN, msMetric, func() (metrics, json.RawMessage, error) {
			return metrics{"ms": ms(res.unpublish)}, nil, nil
		})
		if e.mode != "ebpfnet" {
			continue
		}
		b.measure(e, "range_port_cmd", report.NoN, msMetric, func() (metrics, json.RawMessage, error) {
			return metrics{"ms": ms(res.port)}, nil, nil
		})
		b.measure(e, "range_nat_ls", report.NoN, msMetric, func() (metrics, json.RawMessage, error) {
			return metrics{"ms": ms(res.natLs)}, nil, nil
		})
		b.measure(e, "ports_map", report.NoN, []metricDef{{"kib", "KiB"}, {"bytes_per_port", "bytes"}}, func() (metrics, json.RawMessage, error) {
			return metrics{"kib": float64(res.portsBytes) / 1024, "bytes_per_port": float64(res.portsBytes) / float64(res.portsCapacity)}, nil, nil
		})
		for w, m := range map[string]metrics{"publish_range_steps": res.publishSteps, "unpublish_range_steps": res.unpublishSteps} {
			b.measure(e, w, report.NoN, stepMetrics, func() (metrics, json.RawMessage, error) {
				if m == nil {
					return nil, nil, errors.New("ebpfnet printed no step times (EBPFNET_STEP_TIMES)")
				}
				return m, nil, nil
			})
		}
	}
}

// scaling: connection rate and latency through the published port with N
// other published ports, and the cost of publishing one more.
func (b *bench) scaling(ctx context.Context) {
	c := b.cfg
	for _, n := range c.scaleNs {
		for _, e := range b.envs {
			if ctx.Err() != nil {
				return
			}
			if e.mode == "routed" || (e.mode == "host" && n != 0) {
				continue // nothing to publish: host is measured at N=0 as the reference
			}
			if e.broken == nil && e.mode != "host" {
				if lim, ok := b.maxN[e.mode]; ok && n > lim {
					b.skip(e, n, fmt.Sprintf("skipped: setting up N=%d failed or took too long earlier, see notes", lim))
					continue
				}
				b.logf("%-8s N=%d: publishing %d other ports", e.mode, n, n)
				t0 := time.Now()
				sctx, cancel := context.WithTimeout(ctx, c.scaleSetupLimit)
				err := e.setDummies(sctx, n)
				cancel()
				if err != nil {
					b.maxN[e.mode] = n - 1
					msg := fmt.Sprintf("%s: publishing N=%d other ports failed after %s: %v", e.mode, n, time.Since(t0).Truncate(time.Millisecond), err)
					b.logf("!! %s", msg)
					b.note(msg)
					b.skip(e, n, msg)
					continue
				}
				b.logf("%-8s N=%d: in place after %s", e.mode, n, time.Since(t0).Truncate(time.Millisecond))
			}
			b.measure(e, "scale_connrate", n, connMetrics, func() (metrics, json.RawMessage, error) {
				return e.connrateScale(ctx)
			})
			b.measure(e, "scale_rr", n, rrMetrics, func() (metrics, json.RawMessage, error) { return e.rr(ctx, e.ingress(), c.rrScaleN) })
			if e.mode != "host" {
				b.measure(e, "publish_one", n, msMetric, func() (metrics, json.RawMessage, error) {
					d, err := e.publishOne(ctx)
					return metrics{"ms": ms(d)}, nil, err
				})
			}
		}
	}
	for _, e := range b.envs { // back to the plain topology
		if e.broken == nil && e.mode != "host" && e.dummies != 0 {
			if err := e.setDummies(ctx, 0); err != nil {
				b.logf("!! %s: removing other ports: %v", e.mode, err)
			}
		}
	}
}

func (e *env) connrateScale(ctx context.Context) (metrics, json.RawMessage, error) {
	saved := e.cfg.connTime
	e.cfg.connTime = e.cfg.connScaleTime
	defer func() { e.cfg.connTime = saved }()
	return e.connrate(ctx, e.ingress())
}

// attachScaling: time to attach one container with N others attached.
func (b *bench) attachScaling(ctx context.Context) {
	for _, e := range b.envs {
		if e.mode == "ebpfnet" && e.broken == nil {
			if err := e.startAPI(ctx); err != nil {
				e.logf("!! %s: its daemon's API: %v (no in-process rows)", e.mode, err)
				e.stopAPI()
			}
			defer e.stopAPI()
		}
	}
	for _, n := range b.cfg.attachNs {
		for _, e := range b.envs {
			if ctx.Err() != nil {
				return
			}
			if e.reference() {
				continue
			}
			res, err := e.attachOne(ctx, n)
			b.measure(e, "attach_one", n, msMetric, func() (metrics, json.RawMessage, error) {
				return metrics{"ms": ms(res.attach)}, nil, err
			})
			if err != nil {
				continue
			}
			b.measure(e, "detach_one", n, msMetric, func() (metrics, json.RawMessage, error) {
				return metrics{"ms": ms(res.detach)}, nil, nil
			})
			if res.attachIn > 0 {
				b.measure(e, "attach_inproc", n, msMetric, func() (metrics, json.RawMessage, error) {
					return metrics{"ms": ms(res.attachIn)}, nil, nil
				})
				b.measure(e, "detach_inproc", n, msMetric, func() (metrics, json.RawMessage, error) {
					return metrics{"ms": ms(res.detachIn)}, nil, nil
				})
			}
			if e.mode != "ebpfnet" {
				continue
			}
			b.measure(e, "ls_all", n, msMetric, func() (metrics, json.RawMessage, error) {
				return metrics{"ms": ms(res.ls)}, nil, nil
			})
			b.measure(e, "map_memory", n, mibMetric, func() (metrics, json.RawMessage, error) {
				return metrics{"mib": float64(res.mapBytes) / (1 << 20)}, nil, nil
			})
			for w, m := range map[string]metrics{"attach_steps": res.attachSteps, "detach_steps": res.detachSteps,
				"attach_api_steps": res.attachInSteps, "detach_api_steps": res.detachInSteps} {
				b.measure(e, w, n, stepMetrics, func() (metrics, json.RawMessage, error) {
					if m == nil {
						return nil, nil, errors.New("ebpfnet printed no step times (EBPFNET_STEP_TIMES)")
					}
					return m, nil, nil
				})
			}
		}
	}
	for _, e := range b.envs {
		if e.broken == nil && !e.reference() {
			e.attachOne(ctx, 0) // remove the extra containers (one more timed attach, discarded)
		}
	}
}

type metricDef struct{ name, unit string }

var (
	gbps        = []metricDef{{"gbps", "Gbit/s"}}
	rrMetrics   = []metricDef{{"avg_us", "µs"}, {"p99_us", "µs"}}
	connMetrics = []metricDef{{"conn_per_sec", "conn/s"}, {"conn_avg_us", "µs"}, {"conn_p99_us", "µs"}}
	udpMetrics  = []metricDef{{"kpps", "kpps"}, {"loss", "fraction"}}
	msMetric    = []metricDef{{"ms", "ms"}}
	mibMetric   = []metricDef{{"mib", "MiB"}}
)

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }

// measure runs one cell and records a sample per metric; a failure is
// recorded (and printed) and the run goes on.
func (b *bench) measure(e *env, workload string, n int, ms []metricDef, f func() (metrics, json.RawMessage, error)) {
	label := workload
	if n != report.NoN {
		label = fmt.Sprintf("%s N=%d", workload, n)
	}
	var vals metrics
	var detail json.RawMessage
	err := e.broken
	if err == nil {
		vals, detail, err = f()
	}
	if errors.Is(err, errSkip) {
		return
	}
	if b.ctx.Err() != nil {
		b.logf("rep %d  %-22s %-8s cut short by the end of the run, not recorded", b.rep, label, e.mode)
		return
	}
	now := time.Now()
	var parts []string
	for _, m := range ms {
		s := report.Sample{Rep: b.rep, Mode: e.mode, Workload: workload, Metric: m.name, Unit: m.unit, N: n, At: now, Detail: detail}
		if err != nil {
			s.Error = err.Error()
		} else if v, ok := vals[m.name]; ok {
			s.OK, s.Value = true, v
			parts = append(parts, fmt.Sprintf("%s %s", report.Num(v), m.unit))
		} else {
			s.Error = "metric " + m.name + " missing from the tool's output"
		}
		b.res.Samples = append(b.res.Samples, s)
	}
	if err != nil {
		b.logf("rep %d  %-22s %-8s FAILED: %v", b.rep, label, e.mode, err)
		return
	}
	b.logf("rep %d  %-22s %-8s %s", b.rep, label, e.mode, strings.Join(parts, ", "))
}

func (b *bench) skip(e *env, n int, why string) {
	for _, w := range []struct {
		name string
		ms   []metricDef
	}{{"scale_connrate", connMetrics}, {"scale_rr", rrMetrics}, {"publish_one", msMetric}} {
		for _, m := range w.ms {
			b.res.Samples = append(b.res.Samples, report.Sample{Rep: b.rep, Mode: e.mode, Workload: w.name, Metric: m.name, Unit: m.unit, N: n, Error: why, At: time.Now()})
		}
	}
}

// snapshot copies bin into a private temp dir and returns the copy's path
// and the sha256 of its content.
func snapshot(bin, id string) (string, string, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return "", "", err
	}
	dir, err := os.MkdirTemp("", "ebpfnet-bench-bin-"+id+"-") // id: see cleanLeftovers
	if err != nil {
		return "", "", err
	}
	dst := filepath.Join(dir, "ebpfnet")
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", "", err
	}
	sum := sha256.Sum256(data)
	return dst, hex.EncodeToString(sum[:]), nil
}

func slicesContains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func randHex(n int) string {
	buf := make([]byte, n)
	rand.Read(buf)
	return hex.EncodeToString(buf)
}
