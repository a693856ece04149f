package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// runner starts every external command of the benchmark, bounded in time,
// and remembers background processes so they are stopped (by PID) on exit.
type runner struct {
	mu    sync.Mutex
	procs map[int]*proc
	trace bool
}

type proc struct {
	cmd    *exec.Cmd
	name   string
	stderr bytes.Buffer
	done   chan struct{}
}

func newRunner(trace bool) *runner { return &runner{procs: map[int]*proc{}, trace: trace} }

// inNS prefixes a command with `ip netns exec NS` (ns "" runs it here).
func inNS(ns string, args ...string) []string {
	if ns == "" {
		return args
	}
	return append([]string{"ip", "netns", "exec", ns}, args...)
}

// pinned prefixes a command with taskset (cpu < 0: not pinned).
func pinned(cpu int, args ...string) []string {
	if cpu < 0 {
		return args
	}
	return append([]string{"taskset", "-c", fmt.Sprint(cpu)}, args...)
}

// run runs a command to completion within timeout and returns its stdout;
// the error carries stderr.
func (r *runner) run(ctx context.Context, timeout time.Duration, args ...string) (string, error) {
	return r.runStdin(ctx, timeout, "", args...)
}

// runStdin is run with stdin fed from a string.
func (r *runner) runStdin(ctx context.Context, timeout time.Duration, stdin string, args ...string) (string, error) {
	out, _, err := r.runFull(ctx, timeout, stdin, nil, args...)
	return out, err
}

// runFull is run with stdin, extra environment variables, and stderr
// returned too.
func (r *runner) runFull(ctx context.Context, timeout time.Duration, stdin string, env []string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if r.trace {
		fmt.Printf("    + %s\n", strings.Join(args, " "))
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	err := cmd.Run()
	if err != nil {
		msg := strings.TrimSpace(withoutStepTimes(stderr.String()))
		if msg == "" {
			msg = lastLine(stdout.String())
		}
		if ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("timed out after %s", timeout)
		}
		return stdout.String(), stderr.String(), fmt.Errorf("%s: %v: %s", short(args), err, msg)
	}
	return stdout.String(), stderr.String(), nil
}

// timed runs a command and returns its wall time.
func (r *runner) timed(ctx context.Context, timeout time.Duration, args ...string) (time.Duration, string, error) {
	t0 := time.Now()
	out, err := r.run(ctx, timeout, args...)
	return time.Since(t0), out, err
}

// timedStdin is runStdin, timed (the time includes writing stdin).
func (r *runner) timedStdin(ctx context.Context, timeout time.Duration, stdin string, args ...string) (time.Duration, string, error) {
	t0 := time.Now()
	out, err := r.runStdin(ctx, timeout, stdin, args...)
	return time.Since(t0), out, err
}

// start runs a command in the background until stop or the end of the run.
func (r *runner) start(name string, args ...string) (*proc, error) {
	if r.trace {
		fmt.Printf("    + (bg) %s\n", strings.Join(args, " "))
	}
	p := &proc{cmd: exec.Command(args[0], args[1:]...), name: name, done: make(chan struct{})}
	p.cmd.Stderr = &p.stderr
	// Servers die with the benchmark even when it is killed outright.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := onSpawnerThread(p.cmd.Start); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	r.mu.Lock()
	r.procs[p.cmd.Process.Pid] = p
	r.mu.Unlock()
	go func() { p.cmd.Wait(); close(p.done) }()
	return p, nil
}

// Pdeathsig fires when the OS thread that forked the child exits, not the
// process, and this process ends threads: a goroutine that exits while
// locked to its thread takes the thread with it (etcdtest.DialerIn, which
// the overlay part's etcd health check uses, does so on purpose). A server
// forked on such a thread was killed in the middle of the run: the
// conntrack part's, started in repetition 1 just before the overlay part,
// answered "connection refused" in repetitions 2 and 3 of the full run of
// 2026-12-07. So every background process is forked on one thread that
// stays locked for the life of the process.
var spawns = make(chan func())

func init() {
	go func() {
		runtime.LockOSThread() // never unlocked: the thread lives as long as the process
		for f := range spawns {
			f()
		}
	}()
}

// onSpawnerThread runs start on the spawner thread and returns its error.
func onSpawnerThread(start func() error) error {
	errc := make(chan error, 1)
	spawns <- func() { errc <- start() }
	return <-errc
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop kills a background process by its PID and reaps it.
func (r *runner) stop(p *proc) {
	if p == nil {
		return
	}
	if !p.exited() {
		p.cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
		}
	}
	r.mu.Lock()
	delete(r.procs, p.cmd.Process.Pid)
	r.mu.Unlock()
}

// stopAll stops every background process still running.
func (r *runner) stopAll() {
	r.mu.Lock()
	var ps []*proc
	for _, p := range r.procs {
		ps = append(ps, p)
	}
	r.mu.Unlock()
	for _, p := range ps {
		r.stop(p)
	}
}

// short describes a command for error messages: "[ns] prog args", without
// ebpfnet's per-instance flags.
func short(args []string) string {
	var parts []string
	if len(args) > 4 && args[0] == "ip" && args[1] == "netns" && args[2] == "exec" {
		parts = append(parts, "["+args[3]+"]")
		args = args[4:]
	}
	for i := 0; i < len(args); i++ {
		if (args[i] == "--state-dir" || args[i] == "--pin-root") && i+1 < len(args) {
			i++
			continue
		}
		a := args[i]
		if i == 0 {
			a = filepath.Base(a)
		}
		parts = append(parts, a)
	}
	s := strings.Join(parts, " ")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

var errSkip = errors.New("not applicable")
