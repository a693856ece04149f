// Package etcdtest runs a real etcd (Debian's etcd-server) for tests inside a
// network namespace, and builds simulated cluster hosts whose uplinks meet on
// an underlay bridge:
//
//	<p>-underlay: bridge br0 198.18.0.1/24, etcd on 198.18.0.1:2379
//	<p>-h1 uplink0 198.18.0.11/24 --veth-- h1 (in br0)
//	<p>-h2 uplink0 198.18.0.12/24 --veth-- h2 (in br0)   ...
//
// etcd never listens in the root namespace; its data dir is under the test's
// temp dir; it is stopped by PID. Everything is removed in t.Cleanup, also
// when the test fails.
package etcdtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
)

// Underlay addresses (198.18.0.0/15 is the benchmarking range).
const (
	UnderlayIP  = "198.18.0.1"
	UnderlayNet = "198.18.0.0/24"
	ClientPort  = 2379
	UplinkIf    = "uplink0"
)

// HostIP is the underlay address of simulated host i (1-based).
func HostIP(i int) string { return fmt.Sprintf("198.18.0.%d", 10+i) }

// Etcd is one etcd server process in a network namespace.
type Etcd struct {
	t       testing.TB
	NS      string // netns name
	IP      string // listening address in NS
	DataDir string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Endpoint is the client URL, reachable from namespaces routed to IP.
func (e *Etcd) Endpoint() string { return fmt.Sprintf("http://%s:%d", e.IP, ClientPort) }

// Store is the --cluster-store value for the CLI.
func (e *Etcd) Store() string { return fmt.Sprintf("etcd://%s:%d", e.IP, ClientPort) }

// NewEtcd describes an etcd server in the existing namespace ns on ip (an
// address of ns) with its data and log under dir; Start runs it, Stop ends
// it. For tools (the bench); tests use StartEtcd.
func NewEtcd(ns, ip, dir string) *Etcd {
	return &Etcd{NS: ns, IP: ip, DataDir: filepath.Join(dir, "data"), logPath: filepath.Join(dir, "etcd.log")}
}

// StartEtcd starts etcd in the existing namespace ns on ip (an address of
// ns), waits until it serves, and stops it in t.Cleanup.
func StartEtcd(t testing.TB, ns, ip string) *Etcd {
	t.Helper()
	if _, err := exec.LookPath("etcd"); err != nil {
		t.Skip("etcd not installed (make deps installs etcd-server)")
	}
	e := NewEtcd(ns, ip, t.TempDir())
	e.t = t
	t.Cleanup(func() {
		if err := e.Stop(); err != nil {
			t.Errorf("cleanup: stop etcd: %v", err)
		}
	})
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	return e
}

// Start (re)starts the server on the same data dir and waits until it
// answers /health (30s at most).
func (e *Etcd) Start() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cmd != nil {
		return errors.New("etcd already running")
	}
	if err := os.MkdirAll(filepath.Dir(e.logPath), 0o700); err != nil {
		return err
	}
	logf, err := os.OpenFile(e.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	client := e.Endpoint()
	// Peer traffic stays on the namespace's own loopback.
	peer := "http://127.0.0.1:2380"
	cmd := exec.Command("nsenter", "--net="+filepath.Join(netnsutil.RunDir, e.NS), "--",
		"etcd", "--name", "test", "--data-dir", e.DataDir,
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "test="+peer, "--initial-cluster-state", "new",
		"--logger", "zap", "--log-outputs", "stderr")
	cmd.Stdout, cmd.Stderr = logf, logf
	// No Pdeathsig: it fires when the forking OS thread exits, and DialerIn
	// ends threads. t.Cleanup stops etcd by PID.
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start etcd: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	e.cmd, e.done = cmd, done
	deadline := time.Now().Add(30 * time.Second)
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{DialContext: DialerIn(e.NS)}}
	for {
		select {
		case <-done:
			e.cmd = nil
			return fmt.Errorf("etcd exited at start:\n%s", e.logTail())
		default:
		}
		resp, err := hc.Get(client + "/health")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), `"health":"true"`) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			e.stopLocked()
			return fmt.Errorf("etcd not healthy after 30s:\n%s", e.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop stops the server by PID (SIGTERM, SIGKILL after 10s); no-op when
// it is not running.
func (e *Etcd) Stop() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stopLocked()
}

func (e *Etcd) stopLocked() error {
	if e.cmd == nil {
		return nil
	}
	pid := e.cmd.Process.Pid
	syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-e.done:
	case <-time.After(10 * time.Second):
		syscall.Kill(pid, syscall.SIGKILL)
		select {
		case <-e.done:
		case <-time.After(10 * time.Second):
			return fmt.Errorf("etcd pid %d did not exit", pid)
		}
	}
	e.cmd = nil
	return nil
}

// PID of the running server, 0 when stopped.
func (e *Etcd) PID() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cmd == nil {
		return 0
	}
	return e.cmd.Process.Pid
}

func (e *Etcd) logTail() string {
	b, _ := os.ReadFile(e.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// DialerIn returns a dialer whose sockets are made in the named network
// namespace: a test process in the root namespace reaches etcd through it
// without any route or address of the root namespace.
func DialerIn(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	path := filepath.Join(netnsutil.RunDir, ns)
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type res struct {
			c   net.Conn
			err error
		}
		ch := make(chan res, 1)
		go func() {
			// The thread stays locked and dies with this goroutine, so no
			// other goroutine ever runs in the namespace.
			runtime.LockOSThread()
			fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				ch <- res{nil, err}
				return
			}
			err = unix.Setns(fd, unix.CLONE_NEWNET)
			unix.Close(fd)
			if err != nil {
				ch <- res{nil, fmt.Errorf("setns %s: %w", path, err)}
				return
			}
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			ch <- res{c, err}
		}()
		r := <-ch
		return r.c, r.err
	}
}

// GRPCDialerIn is DialerIn in the form grpc.WithContextDialer takes.
func GRPCDialerIn(ns string) func(ctx context.Context, addr string) (net.Conn, error) {
	d := DialerIn(ns)
	return func(ctx context.Context, addr string) (net.Conn, error) {
		if i := strings.Index(addr, "://"); i >= 0 {
			addr = addr[i+3:]
		}
		return d(ctx, "tcp", addr)
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
