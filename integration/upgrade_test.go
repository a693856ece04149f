package integration

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
	"github.com/ebpfnet/ebpfnet/loader"
)

// Issue 21 item 14: an upgrade from the previous release to this build and
// a downgrade back, each replacing the running daemon and swapping the
// pinned programs in every link, under load, lose nothing: long-lived TCP
// connections (inbound through a published port, masqueraded outbound,
// container to container) keep exchanging lines, and a steady loop of new
// connections through the published port never fails. The previous
// release is the commit in testdata/previous-release, built from this
// repository's history. Map layouts: this build adds maps (ct_inbound,
// ct_ack_ranges) and keeps every map the previous release pins, so both
// directions reopen the pins; a layout change would need a migration or a
// refusal, and this test is where it shows.
func TestUpgradeAndDowngradeUnderLoad(t *testing.T) {
	prev := buildPreviousRelease(t)
	tp := newTopology(t)
	old := tp.WithBinary(prev)
	tp.Exec(tp.Host, "iptables", "-P", "FORWARD", "DROP")
	old.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	c1, c2 := tp.AddContainer("c1"), tp.AddContainer("c2")
	old.MustEbpfnet("attach", "--network", "n1", "--ip", "172.30.0.2", "-p", "8080:80", c1)
	old.MustEbpfnet("attach", "--network", "n1", "--ip", "172.30.0.3", c2)
	serveLines(t, tp.Namespace(c1), ":80")
	serveLines(t, tp.Namespace(c2), ":7000")
	serveLines(t, tp.Namespace(tp.Ext), ":9000")
	daemon := startDaemonBinary(t, old, "old")

	var load loadRecord
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, lc := range []struct {
		name string
		ns   netnsutil.Namespace
		addr string
	}{
		{"inbound via 8080", tp.Namespace(tp.Ext), hostAddr + ":8080"},
		{"masqueraded", tp.Namespace(c1), testutil.ExtIP + ":9000"},
		{"container to container", tp.Namespace(c1), "172.30.0.3:7000"},
	} {
		conn, err := testutil.Dial(lc.ns, "tcp4", lc.addr, 5*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", lc.name, err)
		}
		t.Cleanup(func() { conn.Close() })
		wg.Add(1)
		go func() { defer wg.Done(); load.longLived(lc.name, conn, stop) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); load.newConnections(tp.Namespace(tp.Ext), hostAddr+":8080", stop) }()

	settle := func() { time.Sleep(3 * time.Second) }
	settle()
	before := pinnedProgramID(t, tp)
	daemon.stop(t)
	daemon = startDaemonBinary(t, tp, "this build") // upgrade: loads and swaps every program
	settle()
	tp.MustEbpfnet("ls")
	upgraded := pinnedProgramID(t, tp)
	daemon.stop(t)
	daemon = startDaemonBinary(t, old, "old") // downgrade
	settle()
	old.MustEbpfnet("ls")
	downgraded := pinnedProgramID(t, tp)
	if before == upgraded || upgraded == downgraded {
		t.Errorf("from_container program ids %d, %d, %d: an upgrade and a downgrade must each swap the program", before, upgraded, downgraded)
	}
	close(stop)
	wg.Wait()
	daemon.stop(t)

	t.Logf("long-lived exchanges %v; new connections %d, failed %d", load.exchanges(), load.dials.Load(), load.dialFailures.Load())
	for _, e := range load.errors() {
		t.Error(e)
	}
	if n := load.dials.Load(); n < 100 {
		t.Errorf("only %d new connections in the test: the loop did not run", n)
	}
}

// buildPreviousRelease builds the ebpfnet of testdata/previous-release from
// this repository's history.
func buildPreviousRelease(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile("testdata/previous-release")
	if err != nil {
		t.Fatal(err)
	}
	commit := strings.TrimSpace(string(raw))
	src := t.TempDir()
	archive := exec.Command("git", "archive", "--format=tar", commit)
	archive.Dir = ".."
	tar := exec.Command("tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	tar.Stdin = pipe
	var stderr strings.Builder
	archive.Stderr = &stderr
	if err := tar.Start(); err != nil {
		t.Fatal(err)
	}
	if err := archive.Run(); err != nil {
		t.Fatalf("git archive %s (the previous release must be in this clone's history): %v\n%s", commit, err, stderr.String())
	}
	if err := tar.Wait(); err != nil {
		t.Fatalf("unpack the previous release: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "ebpfnet-previous")
	build := exec.Command("go", "build", "-o", bin, "./cmd/ebpfnet")
	build.Dir = src
	build.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/local/go/bin")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the previous release %s: %v\n%s", commit, err, out)
	}
	return bin
}

// pinnedProgramID is the id of the from_container program pinned now (the
// one every container's link runs: upgrades swap both together).
func pinnedProgramID(t *testing.T, tp *testutil.Topology) ebpf.ProgramID {
	t.Helper()
	p, err := ebpf.LoadPinnedProgram(filepath.Join(tp.PinRoot, "progs", loader.ProgFromContainer), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	return id
}

// runningDaemon is an `ebpfnet daemon` the test started.
type runningDaemon struct {
	cmd  *exec.Cmd
	name string
}

// startDaemonBinary runs the daemon of tp's binary in the host namespace
// and waits until it serves metrics (it has loaded the datapath).
func startDaemonBinary(t *testing.T, tp *testutil.Topology, name string) *runningDaemon {
	t.Helper()
	d := tp.EbpfnetCmd("daemon", "--metrics-addr", "127.0.0.1:9479", "--gc-interval", "500ms")
	d.Stderr = os.Stderr
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	rd := &runningDaemon{cmd: d, name: name}
	t.Cleanup(func() { rd.stop(t) })
	c := httpIn(tp.Namespace(tp.Host))
	waitFor(t, 20*time.Second, func() bool {
		resp, err := c.Get("http://127.0.0.1:9479/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	return rd
}

// stop ends the daemon by PID (SIGTERM) and waits for it; a second call
// does nothing.
func (d *runningDaemon) stop(t *testing.T) {
	if d.cmd.ProcessState != nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.cmd.Wait(); err != nil {
		t.Errorf("%s daemon: %v", d.name, err)
	}
}

// serveLines echoes every line on every TCP connection to addr in ns until
// the test ends.
func serveLines(t *testing.T, ns netnsutil.Namespace, addr string) {
	t.Helper()
	var l net.Listener
	if err := netnsutil.Do(ns, func() (err error) {
		l, err = net.Listen("tcp4", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
}

// loadRecord counts what the load loops did and what broke.
type loadRecord struct {
	dials, dialFailures atomic.Int64
	mu                  sync.Mutex
	count               map[string]int
	errs                []string
}

func (r *loadRecord) fail(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *loadRecord) exchanged(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.count == nil {
		r.count = map[string]int{}
	}
	r.count[name]++
}

func (r *loadRecord) exchanges() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count
}

func (r *loadRecord) errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.errs
}

// echo writes a line on c and wants it back within timeout.
func echo(c net.Conn, line string, timeout time.Duration) error {
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(got) != line {
		return fmt.Errorf("echo %q, want %q", got, line)
	}
	return nil
}

// longLived exchanges a line every 50 ms on one connection until stop; the
// first failure ends it. A lost segment is retransmitted, so the deadline
// is generous: only a broken flow fails.
func (r *loadRecord) longLived(name string, c net.Conn, stop <-chan struct{}) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-time.After(50 * time.Millisecond):
		}
		if err := echo(c, fmt.Sprintf("%s %d", name, i), 10*time.Second); err != nil {
			r.fail("long-lived %s broke after %d exchanges: %v", name, i, err)
			return
		}
		r.exchanged(name)
	}
}

// newConnections opens a connection to addr every 20 ms until stop (at most
// 10k), exchanges a line and closes it; every failure is counted.
func (r *loadRecord) newConnections(ns netnsutil.Namespace, addr string, stop <-chan struct{}) {
	for i := 0; i < 10_000; i++ {
		select {
		case <-stop:
			return
		case <-time.After(20 * time.Millisecond):
		}
		r.dials.Add(1)
		c, err := testutil.Dial(ns, "tcp4", addr, 10*time.Second)
		if err == nil {
			err = echo(c, fmt.Sprintf("new %d", i), 10*time.Second)
			c.Close()
		}
		if err != nil {
			r.dialFailures.Add(1)
			r.fail("new connection %d: %v", i, err)
		}
	}
}
