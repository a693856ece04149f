// Package runtimetest starts real container runtimes (dockerd, containerd)
// inside a simulated host network namespace (the <prefix>-host namespace of
// internal/testing/testutil.Topology) for tests, and removes everything they made in
// t.Cleanup: processes (by PID), mounts, network namespaces, directories.
//
// Only tests import it. See README.md in this directory for the flags, the
// findings about each runtime and the gotchas.
package runtimetest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Binaries, as Debian installs them (scripts/deps.sh). Absolute paths on
// purpose: a machine may have other builds earlier in PATH (e.g. a docker CLI
// in /usr/local/bin), and CI machines only have what deps.sh installs.
var (
	DockerdBin    = "/usr/sbin/dockerd"
	DockerBin     = "/usr/bin/docker"
	ContainerdBin = "/usr/bin/containerd"
	CtrBin        = "/usr/bin/ctr"
	NsenterBin    = "/usr/bin/nsenter"
	UnshareBin    = "/usr/bin/unshare"
	BusyboxBin    = "/bin/busybox"   // busybox-static
	CNIPluginDir  = "/usr/lib/cni"   // containernetworking-plugins
	cmdTimeout    = 60 * time.Second // bound of one CLI call
	stopTimeout   = 15 * time.Second // SIGTERM to SIGKILL
	readyTimeout  = 30 * time.Second // daemon start to API ready
)

// Require skips the test when it does not run as root or a binary is
// missing. scripts/deps.sh installs every binary, so in CI nothing skips.
func Require(t testing.TB, bins ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("runtime tests need root")
	}
	for _, b := range bins {
		if _, err := os.Stat(b); err != nil {
			t.Skipf("%s is missing (run make deps, which installs it): %v", b, err)
		}
	}
}

// ShortDir makes a fresh directory whose path is short enough for unix
// socket paths (< 108 bytes, also for the sockets daemons make under it;
// t.TempDir() paths can be too long). It is removed in t.Cleanup, after
// every cleanup registered later (LIFO).
func ShortDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", prefix+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unmountUnder(t, dir)
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("cleanup: remove %s: %v", dir, err)
		}
	})
	return dir
}

// UniqueName is prefix plus random hex: a per-test name for anything in a
// shared namespace (plugin names, CNI network names, files in shared dirs).
func UniqueName(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// nsenterCmd returns a command that runs argv in the network namespace
// /run/netns/<host> but keeps this process's mount namespace, so the real
// /sys and cgroup mounts stay visible (ip netns exec remounts /sys).
func nsenterCmd(host string, argv ...string) *exec.Cmd {
	args := append([]string{"--net=/run/netns/" + host, "--"}, argv...)
	return exec.Command(NsenterBin, args...)
}

// runCmd runs cmd bounded by cmdTimeout and returns stdout and stderr.
func runCmd(cmd *exec.Cmd) (string, string, error) {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return "", "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return stdout.String(), stderr.String(), err
	case <-time.After(cmdTimeout):
		cmd.Process.Kill()
		<-done
		return stdout.String(), stderr.String(), fmt.Errorf("%s: timed out after %v", strings.Join(cmd.Args, " "), cmdTimeout)
	}
}

// daemon is a runtime daemon this package started: its PID, its directory
// (every file, socket and mount of it lives under dir) and its log.
type daemon struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	dir  string
	log  string
	done chan struct{}
}

func startDaemon(t testing.TB, name, dir string, cmd *exec.Cmd) (*daemon, error) {
	d := &daemon{t: t, name: name, cmd: cmd, dir: dir, log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	f, err := os.Create(d.log)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group: a ^C to go test does not hit it first, and
	// the cleanup still stops it in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { cmd.Wait(); close(d.done) }()
	return d, nil
}

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// waitReady polls ready until it succeeds, the daemon exits or the timeout.
func (d *daemon) waitReady(ready func() error) error {
	deadline := time.Now().Add(readyTimeout)
	var err error
	for time.Now().Before(deadline) {
		if err = ready(); err == nil {
			return nil
		}
		if d.exited() {
			return fmt.Errorf("%s exited during start-up: %v\n%s", d.name, d.cmd.ProcessState, d.logTail(40))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %v: %v\n%s", d.name, readyTimeout, err, d.logTail(40))
}

func (d *daemon) logTail(n int) string {
	b, _ := os.ReadFile(d.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stop sends SIGTERM to the daemon's PID, SIGKILL after stopTimeout, then
// kills by PID whatever it left behind that names its directory on its
// command line (a managed containerd, containerd-shims) and their
// descendants (container processes), and unmounts everything under dir.
func (d *daemon) stop() {
	pid := d.cmd.Process.Pid
	if !d.exited() {
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(stopTimeout):
			d.t.Logf("cleanup: %s (pid %d) ignored SIGTERM for %v: SIGKILL", d.name, pid, stopTimeout)
			d.cmd.Process.Kill()
			<-d.done
		}
	}
	killLeftovers(d.t, d.dir)
	unmountUnder(d.t, d.dir)
}

// killLeftovers kills, by PID, the processes whose command line names dir
// (every process a daemon of this package starts does: --address, -bundle,
// --config ...) and all their descendants.
func killLeftovers(t testing.TB, dir string) {
	procs := listProcs()
	var roots []int
	for pid, p := range procs {
		if pid != os.Getpid() && strings.Contains(p.cmdline, dir+"/") {
			roots = append(roots, pid)
		}
	}
	if len(roots) == 0 {
		return
	}
	kill := map[int]bool{}
	var add func(int)
	add = func(pid int) {
		if kill[pid] {
			return
		}
		kill[pid] = true
		for c, p := range procs {
			if p.ppid == pid {
				add(c)
			}
		}
	}
	for _, r := range roots {
		add(r)
	}
	for pid := range kill {
		t.Logf("cleanup: SIGKILL leftover pid %d: %.120s", pid, procs[pid].cmdline)
		syscall.Kill(pid, syscall.SIGKILL)
	}
	// Wait (bounded) until they are gone, so their mounts can go.
	deadline := time.Now().Add(5 * time.Second)
	for pid := range kill {
		for time.Now().Before(deadline) && syscall.Kill(pid, 0) == nil && !isZombie(pid) {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

type procInfo struct {
	ppid    int
	cmdline string
}

func listProcs() map[int]procInfo {
	out := map[int]procInfo{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		cl, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		out[pid] = procInfo{ppid: ppid, cmdline: string(bytes.ReplaceAll(cl, []byte{0}, []byte{' '}))}
	}
	return out
}

func isZombie(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// unmountUnder lazily unmounts every mount point under dir (deepest first):
// overlay and shm mounts of containers, netns bind mounts, a data root
// bind-mounted on itself.
func unmountUnder(t testing.TB, dir string) {
	for _, m := range mountsUnder(dir) {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			t.Errorf("cleanup: unmount %s: %v", m, err)
		}
	}
}

// mountsUnder lists the mount points at or under dir, deepest first.
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var ms []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			ms = append(ms, mp)
		}
	}
	sort.Slice(ms, func(i, j int) bool { return len(ms[i]) > len(ms[j]) })
	return ms
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// testutilExec runs argv in a network namespace with nsenter. (Bound
// busybox wget with timeout(1): busybox-static 1.35 wget -T segfaults.)
func testutilExec(ns string, argv ...string) *exec.Cmd { return nsenterCmd(ns, argv...) }
