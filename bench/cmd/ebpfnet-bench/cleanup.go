package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ebpfnet/ebpfnet/loader"
)

// Every run names what it makes after one id: namespaces "bn<id><m>-*"
// (m: the mode's first letter), pins /sys/fs/bpf/ebpfnet/bn<id><m> (which
// also hold the instance's TCX and cgroup socket-hook links: removing them
// detaches the programs) and state dirs $TMPDIR/ebpfnet-bench-bn<id><m>-*.
// While it runs it holds an flock on lockDir/<id>.lock; the kernel drops the
// lock when the process dies, however it dies, so the next run (or -clean)
// can tell a killed run's leftovers from a live run's sandbox.
const (
	benchPrefix = "bn"
	benchPins   = "/sys/fs/bpf/ebpfnet"
)

var (
	lockDir = "/run/ebpfnet-bench"
	// a run's prefix: bn, four hex digits of id, the mode's letter
	prefixRE = regexp.MustCompile(`^` + benchPrefix + `([0-9a-f]{4})[a-z]$`)
)

// runLock marks a run live.
type runLock struct {
	id   string
	path string
	f    *os.File
}

// lockRun picks a fresh run id and locks it.
func lockRun() (*runLock, error) {
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return nil, err
	}
	for range 100 {
		id := randHex(2)
		path := filepath.Join(lockDir, id+".lock")
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
		if errors.Is(err, os.ErrExist) {
			continue // live, or a dead run's the cleaner has not seen yet
		}
		if err != nil {
			return nil, err
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			os.Remove(path)
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		fmt.Fprintf(f, "%d\n", os.Getpid())
		return &runLock{id: id, path: path, f: f}, nil
	}
	return nil, errors.New("no free run id")
}

func (l *runLock) release() {
	os.Remove(l.path)
	l.f.Close()
}

// liveRuns returns the ids of runs that hold their lock, removing the lock
// files of dead ones (whose ids are returned as dead).
func liveRuns() (live, dead map[string]bool) {
	live, dead = map[string]bool{}, map[string]bool{}
	files, _ := filepath.Glob(filepath.Join(lockDir, "*.lock"))
	for _, path := range files {
		id := strings.TrimSuffix(filepath.Base(path), ".lock")
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			continue
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			live[id] = true // EWOULDBLOCK: its run is alive
		} else {
			dead[id] = true
		}
		f.Close()
	}
	return live, dead
}

// cleanLeftovers removes what runs that are no longer alive left behind:
// namespaces (and the processes still in them), pins and state dirs whose
// prefix is a bench run's that holds no lock. It returns the prefixes it
// cleaned.
func cleanLeftovers(r *runner) []string {
	live, dead := liveRuns()
	prefixes := map[string]bool{}
	consider := func(prefix string) {
		if m := prefixRE.FindStringSubmatch(prefix); m != nil && !live[m[1]] {
			prefixes[prefix] = true
		}
	}
	for _, ns := range netnsNames(r) {
		p, _, _ := strings.Cut(ns, "-")
		consider(p)
	}
	pins, _ := filepath.Glob(filepath.Join(benchPins, benchPrefix+"*"))
	for _, p := range pins {
		consider(filepath.Base(p))
	}
	states, _ := filepath.Glob(filepath.Join(os.TempDir(), "ebpfnet-bench-"+benchPrefix+"*"))
	for _, s := range states {
		p, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(s), "ebpfnet-bench-"), "-")
		consider(p)
	}
	var done []string
	for p := range prefixes {
		removePrefix(r, p, "")
		done = append(done, p)
	}
	for p := range prefixes {
		dead[prefixRE.FindStringSubmatch(p)[1]] = true
	}
	for id := range dead {
		bins, _ := filepath.Glob(filepath.Join(os.TempDir(), "ebpfnet-bench-bin-"+id+"-*"))
		for _, b := range bins {
			os.RemoveAll(b) // the run's private copies of the binaries
		}
		os.Remove(filepath.Join(lockDir, id+".lock"))
	}
	return done
}

func netnsNames(r *runner) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, _ := r.run(ctx, 10*time.Second, "ip", "netns", "list")
	var names []string
	for _, line := range strings.Split(out, "\n") {
		if name, _, _ := strings.Cut(line, " "); name != "" {
			names = append(names, name)
		}
	}
	return names
}

// removePrefix deletes every namespace named prefix-*, killing the processes
// left in them (servers of a killed run), the pin directory, which detaches
// the instance's TCX and cgroup links, and the state dirs.
func removePrefix(r *runner, prefix, pinRoot string) {
	// Pins first: the socket hooks sit on the host's root cgroup, the most
	// harmful thing to leave behind, and removing their pins detaches them.
	if pinRoot == "" {
		pinRoot = filepath.Join(benchPins, prefix)
	}
	if err := loader.RemovePins(pinRoot); err != nil {
		fmt.Fprintf(os.Stderr, "cleanup: remove pins %s: %v\n", pinRoot, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, name := range netnsNames(r) {
		if !strings.HasPrefix(name, prefix+"-") {
			continue
		}
		pids, _ := r.run(ctx, 10*time.Second, "ip", "netns", "pids", name)
		for _, f := range strings.Fields(pids) {
			if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if _, err := r.run(ctx, 20*time.Second, "ip", "netns", "delete", name); err != nil {
			fmt.Fprintf(os.Stderr, "cleanup: %v\n", err)
		}
	}
	// Attach wrote resolv.conf and hosts for the named namespaces it
	// attached (embedded DNS); deleting a namespace leaves them.
	etcs, _ := filepath.Glob(filepath.Join("/etc/netns", prefix+"-*"))
	for _, d := range etcs {
		os.RemoveAll(d)
	}
	states, _ := filepath.Glob(filepath.Join(os.TempDir(), "ebpfnet-bench-"+prefix+"-*"))
	for _, s := range states {
		os.RemoveAll(s)
	}
}
