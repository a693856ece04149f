package main

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf/link"
)

// Issue 9 item 13: an interrupted benchmark left 64 namespaces, a pin
// directory and five cgroup links on the root cgroup.

// benchRun is a bench binary running a tiny ebpfnet-only workload.
type benchRun struct {
	cmd    *exec.Cmd
	prefix string
	lines  chan string
	done   chan struct{}
}

func buildBench(t *testing.T) (bench, ebpfnet string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	bench, ebpfnet = filepath.Join(dir, "ebpfnet-bench"), filepath.Join(dir, "ebpfnet")
	for _, b := range [][2]string{{bench, "."}, {ebpfnet, "../../../cmd/ebpfnet"}} {
		if out, err := exec.Command(goBin, "build", "-o", b[0], b[1]).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", b[1], err, out)
		}
	}
	return bench, ebpfnet
}

var prefixLine = regexp.MustCompile(`namespaces (` + benchPrefix + `[0-9a-f]{4}e)-\*`)

// startBench starts a run and waits until its sandbox is set up.
func startBench(t *testing.T, bench, ebpfnet string) *benchRun {
	t.Helper()
	cmd := exec.Command(bench, "-quick", "-modes", "ebpfnet", "-reps", "1", "-scale-n", "0", "-attach-n", "0",
		"-client-cpu", "-1", "-server-cpu", "-1", "-max-time", "40s", "-ebpfnet", ebpfnet, "-out", t.TempDir())
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &benchRun{cmd: cmd, lines: make(chan string, 1000), done: make(chan struct{})}
	go func() { cmd.Wait(); pw.Close(); close(r.done) }()
	go func() {
		s := bufio.NewScanner(pr)
		for s.Scan() {
			select {
			case r.lines <- s.Text():
			default:
			}
		}
		close(r.lines)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-r.done
		if r.prefix != "" {
			testRemovePrefix(r.prefix)
		}
	})
	deadline := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-r.lines:
			if !ok {
				t.Fatalf("bench exited before its sandbox was up (prefix %q)", r.prefix)
			}
			t.Logf("bench: %s", l)
			if m := prefixLine.FindStringSubmatch(l); m != nil {
				r.prefix = m[1]
			}
			if strings.Contains(l, "=== repetition") {
				if r.prefix == "" {
					t.Fatal("no prefix in the bench's log")
				}
				return r
			}
		case <-deadline:
			t.Fatal("bench sandbox not up within 30s")
		}
	}
}

func (r *benchRun) wait(t *testing.T) {
	t.Helper()
	go func() {
		for l := range r.lines {
			t.Logf("bench: %s", l)
		}
	}()
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		t.Fatal("bench did not exit within 30s")
	}
}

// cgroupLinks returns the IDs of the instance's pinned cgroup links.
func cgroupLinks(t *testing.T, prefix string) []link.ID {
	t.Helper()
	pins, _ := filepath.Glob(filepath.Join(benchPins, prefix, "links", "cgroup:*"))
	var ids []link.ID
	for _, p := range pins {
		l, err := link.LoadPinnedLink(p, nil)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		info, err := l.Info()
		l.Close()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, info.ID)
	}
	if len(ids) == 0 {
		t.Fatalf("no cgroup links pinned under %s", filepath.Join(benchPins, prefix))
	}
	return ids
}

func namespaces(t *testing.T, prefix string) []string {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	var ns []string
	for _, l := range strings.Split(string(out), "\n") {
		if name, _, _ := strings.Cut(l, " "); strings.HasPrefix(name, prefix+"-") {
			ns = append(ns, name)
		}
	}
	return ns
}

// leftovers lists what of the run with prefix is still there.
func leftovers(t *testing.T, prefix string, links []link.ID) []string {
	t.Helper()
	var left []string
	left = append(left, namespaces(t, prefix)...)
	if _, err := os.Stat(filepath.Join(benchPins, prefix)); err == nil {
		left = append(left, "pins "+filepath.Join(benchPins, prefix))
	}
	states, _ := filepath.Glob(filepath.Join(os.TempDir(), "ebpfnet-bench-"+prefix+"-*"))
	left = append(left, states...)
	for _, id := range links {
		if l, err := link.NewFromID(id); err == nil {
			l.Close()
			left = append(left, "cgroup link "+strconv.Itoa(int(id)))
		}
	}
	id := strings.TrimSuffix(strings.TrimPrefix(prefix, benchPrefix), "e")
	if _, err := os.Stat(filepath.Join(lockDir, id+".lock")); err == nil {
		left = append(left, "lock file")
	}
	bins, _ := filepath.Glob(filepath.Join(os.TempDir(), "ebpfnet-bench-bin-"+id+"-*"))
	left = append(left, bins...)
	return left
}

func TestBenchCleansUpOnSIGTERM(t *testing.T) {
	bench, ebpfnet := buildBench(t)
	r := startBench(t, bench, ebpfnet)
	links := cgroupLinks(t, r.prefix)
	r.cmd.Process.Signal(syscall.SIGTERM)
	r.wait(t)
	if left := leftovers(t, r.prefix, links); len(left) > 0 {
		t.Errorf("after SIGTERM the run left %v", left)
	}
}

func TestBenchRemovesWhatAKilledRunLeft(t *testing.T) {
	bench, ebpfnet := buildBench(t)
	a := startBench(t, bench, ebpfnet)
	links := cgroupLinks(t, a.prefix)
	// A live run's sandbox is not a leftover.
	if out, err := exec.Command(bench, "-clean").CombinedOutput(); err != nil {
		t.Fatalf("-clean: %v %s", err, out)
	}
	if ns := namespaces(t, a.prefix); len(ns) == 0 {
		t.Fatal("-clean removed a live run's namespaces")
	}
	a.cmd.Process.Kill()
	a.wait(t)
	if left := leftovers(t, a.prefix, links); len(left) == 0 {
		t.Fatal("SIGKILL left nothing to clean: the test proves nothing")
	}
	// The next run removes them before it sets up its own sandbox.
	b := startBench(t, bench, ebpfnet)
	if left := leftovers(t, a.prefix, links); len(left) > 0 {
		t.Errorf("the next run left the killed run's %v", left)
	}
	blinks := cgroupLinks(t, b.prefix)
	b.cmd.Process.Signal(syscall.SIGTERM)
	b.wait(t)
	if left := leftovers(t, b.prefix, blinks); len(left) > 0 {
		t.Errorf("after SIGTERM the second run left %v", left)
	}
}

// testRemovePrefix is the test's own cleanup, whatever the code under test
// did: processes in the namespaces, namespaces, pins, state.
func testRemovePrefix(prefix string) {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, l := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(l, " ")
		if !strings.HasPrefix(name, prefix+"-") {
			continue
		}
		pids, _ := exec.Command("ip", "netns", "pids", name).Output()
		for _, f := range strings.Fields(string(pids)) {
			if pid, err := strconv.Atoi(f); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		exec.Command("ip", "netns", "delete", name).Run()
	}
	os.RemoveAll(filepath.Join(benchPins, prefix))
	id := strings.TrimSuffix(strings.TrimPrefix(prefix, benchPrefix), "e")
	states, _ := filepath.Glob(filepath.Join(os.TempDir(), "ebpfnet-bench-"+prefix+"-*"))
	bins, _ := filepath.Glob(filepath.Join(os.TempDir(), "ebpfnet-bench-bin-"+id+"-*"))
	for _, s := range append(states, bins...) {
		os.RemoveAll(s)
	}
}
