// Package testutil builds sandbox hosts for integration tests: network
// namespaces named with a per-test prefix, the uplink veth into an "outside"
// namespace, an ebpfnet instance of its own, named servers and clients. All of
// it is removed in t.Cleanup, also when the test fails.
package testutil

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

// Addresses of the sandbox uplink (198.18.0.0/15 is for benchmarking).
const (
	ExtIP    = "198.18.0.1"
	HostIP   = "198.18.0.2"
	UplinkIf = "uplink0"
)

// Topology is one simulated container host:
//
//	<p>-ext (outside) eth0 198.18.0.1/24 <-veth-> <p>-host uplink0 198.18.0.2/24
//
// plus containers <p>-<name>. ebpfnet runs inside <p>-host with its own
// state dir and pin root.
type Topology struct {
	t        testing.TB
	Prefix   string
	Host     string // netns name of the container host
	Ext      string // netns name of the outside host
	StateDir string
	PinRoot  string
	bin      string
}

// PinRoot is the pin root tests give the instance of the sandbox host
// named name.
func PinRoot(name string) string { return loader.DefaultPinRoot(name) }

// NewPinRoot is PinRoot(name), removed when the test ends (with the
// directory of pin roots once it is empty).
func NewPinRoot(t testing.TB, name string) string {
	p := PinRoot(name)
	t.Cleanup(func() {
		if err := loader.RemovePins(p); err != nil {
			t.Errorf("cleanup: remove pins: %v", err)
		}
	})
	return p
}

// NewTopology builds the host and outside namespaces. bin is the ebpfnet
// binary the test runs.
func NewTopology(t testing.TB, bin string) *Topology {
	t.Helper()
	p := "eb" + randHex(3)
	tp := &Topology{
		t: t, Prefix: p, Host: p + "-host", Ext: p + "-ext",
		StateDir: filepath.Join(t.TempDir(), "state"),
		PinRoot:  PinRoot(p),
		bin:      bin,
	}
	t.Cleanup(tp.cleanup)
	tp.AddNetns(tp.Host)
	tp.AddNetns(tp.Ext)
	Run(t, "ip", "link", "add", "eth0", "netns", tp.Ext, "type", "veth", "peer", "name", UplinkIf, "netns", tp.Host)
	tp.Exec(tp.Ext, "ip", "addr", "add", ExtIP+"/24", "dev", "eth0")
	tp.Exec(tp.Ext, "ip", "link", "set", "eth0", "up")
	tp.Exec(tp.Host, "ip", "addr", "add", HostIP+"/24", "dev", UplinkIf)
	tp.Exec(tp.Host, "ip", "link", "set", UplinkIf, "up")
	tp.Exec(tp.Host, "ip", "route", "add", "default", "via", ExtIP)
	return tp
}

func (tp *Topology) cleanup() {
	// Deleting the namespaces removes every interface in them: bridges,
	// veths, and with them the tc filters and TCX links. Pins and state go
	// separately.
	RemoveNamespaces(tp.t, tp.Prefix)
	if err := loader.RemovePins(tp.PinRoot); err != nil {
		tp.t.Errorf("cleanup: remove pins: %v", err)
	}
}

// RemoveNamespaces deletes every network namespace named prefix-*, and
// what `ip netns exec` binds over /etc for them (/etc/netns/prefix-*: the
// resolv.conf and hosts attach writes, and any a test wrote), which a test
// that fails before detaching would leave.
func RemoveNamespaces(t testing.TB, prefix string) {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(line, " ")
		if strings.HasPrefix(name, prefix+"-") {
			if err := exec.Command("ip", "netns", "delete", name).Run(); err != nil {
				t.Errorf("cleanup: delete netns %s: %v", name, err)
			}
		}
	}
	if dirs, err := filepath.Glob(filepath.Join("/etc/netns", prefix+"-*")); err == nil {
		for _, d := range dirs {
			if err := os.RemoveAll(d); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	}
}

// T is the test the topology belongs to.
func (tp *Topology) T() testing.TB { return tp.t }

// AddNetns creates a network namespace with lo up; it is deleted in cleanup.
func (tp *Topology) AddNetns(name string) string {
	tp.t.Helper()
	Run(tp.t, "ip", "netns", "add", name)
	tp.Exec(name, "ip", "link", "set", "lo", "up")
	return name
}

// AddContainer creates the (unattached) namespace <p>-<name>.
func (tp *Topology) AddContainer(name string) string {
	return tp.AddNetns(tp.Prefix + "-" + name)
}

// Ebpfnet runs the CLI in the host namespace and returns stdout, stderr
// and the error.
func (tp *Topology) Ebpfnet(args ...string) (string, string, error) {
	tp.t.Helper()
	full := append([]string{"netns", "exec", tp.Host, tp.bin, "--state-dir", tp.StateDir, "--pin-root", tp.PinRoot}, args...)
	cmd := exec.Command("ip", full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// MustEbpfnet runs the CLI and fails the test on error.
func (tp *Topology) MustEbpfnet(args ...string) string {
	tp.t.Helper()
	out, errOut, err := tp.Ebpfnet(args...)
	if err != nil {
		tp.t.Fatalf("ebpfnet %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// EbpfnetCmd returns an unstarted CLI command in the host namespace.
func (tp *Topology) EbpfnetCmd(args ...string) *exec.Cmd {
	full := append([]string{"netns", "exec", tp.Host, tp.bin, "--state-dir", tp.StateDir, "--pin-root", tp.PinRoot}, args...)
	return exec.Command("ip", full...)
}

// Exec runs a command in a namespace and fails the test on error.
func (tp *Topology) Exec(ns string, args ...string) string {
	tp.t.Helper()
	return Run(tp.t, "ip", append([]string{"netns", "exec", ns}, args...)...)
}

// Views opens the instance's pinned maps from the test process.
func (tp *Topology) Views() *maps.Views {
	tp.t.Helper()
	dp, err := loader.Load(loader.Options{PinRoot: tp.PinRoot})
	if err != nil {
		tp.t.Fatalf("open pinned datapath: %v", err)
	}
	tp.t.Cleanup(dp.Close)
	return maps.New(&dp.Maps)
}

// Namespace resolves a netns name.
func (tp *Topology) Namespace(name string) netnsutil.Namespace {
	tp.t.Helper()
	ns, err := netnsutil.Resolve(name)
	if err != nil {
		tp.t.Fatal(err)
	}
	return ns
}

// Run runs a command and fails the test on error, returning stdout.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s %s: timed out", name, strings.Join(args, " "))
	}
	return stdout.String()
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// TestHooksTag is the build tag that compiles datapath's test hooks in:
// environment variables that fail, kill or hold a command at a test point
// of its steps (datapath/testhooks.go). Production builds (make build, the
// bench) leave it out and read no test variable.
const TestHooksTag = "ebpfnet_testhooks"

// BuildEbpfnet builds the CLI, with the test hooks, into dir; for TestMain.
func BuildEbpfnet(dir string) (string, error) {
	bin := filepath.Join(dir, "ebpfnet")
	if err := Build(bin, "github.com/ebpfnet/ebpfnet/cmd/ebpfnet", true); err != nil {
		return "", err
	}
	return bin, nil
}

// Build builds the package pkg into the binary bin, with the test hooks
// (TestHooksTag) if testHooks.
func Build(bin, pkg string, testHooks bool) error {
	args := []string{"build", "-o", bin}
	if testHooks {
		args = append(args, "-tags", TestHooksTag)
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/local/go/bin")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %v\n%s", filepath.Base(bin), err, out)
	}
	return nil
}

// WithBinary is the same host run with another ebpfnet binary (an older
// release, for upgrade tests): same namespaces, state dir and pin root,
// cleaned up by tp.
func (tp *Topology) WithBinary(bin string) *Topology {
	other := *tp
	other.bin = bin
	return &other
}
