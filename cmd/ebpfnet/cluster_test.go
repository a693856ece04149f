package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/cluster"
	"github.com/ebpfnet/ebpfnet/internal/testing/etcdtest"
	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

// clusterHost runs the CLI in a simulated cluster host with its own state.
type clusterHost struct {
	t                  *testing.T
	ns, state, pinRoot string
	store              string
}

func newClusterHosts(t *testing.T, n int) (*etcdtest.Cluster, []*clusterHost) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("cluster CLI tests build network namespaces: run as root")
	}
	c := etcdtest.NewCluster(t, n)
	var hs []*clusterHost
	for _, ns := range c.Hosts {
		h := &clusterHost{t: t, ns: ns, state: filepath.Join(t.TempDir(), "state"),
			pinRoot: testutil.NewPinRoot(t, ns), store: c.Etcd.Store()}
		hs = append(hs, h)
	}
	return c, hs
}

func (h *clusterHost) cmd(args ...string) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		h.t.Fatal(err)
	}
	full := append([]string{"netns", "exec", h.ns, exe, "--state-dir", h.state, "--pin-root", h.pinRoot}, args...)
	return exec.Command("ip", full...)
}

func (h *clusterHost) run(args ...string) result {
	h.t.Helper()
	cmd := h.cmd(args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		r.code = exit.ExitCode()
	} else if err != nil {
		h.t.Fatalf("ebpfnet %s: %v", strings.Join(args, " "), err)
	}
	return r
}

func (h *clusterHost) check(c cliCase) {
	h.t.Helper()
	r := h.run(c.args...)
	what := c.name + ": ebpfnet " + strings.Join(c.args, " ")
	if r.code != c.code {
		h.t.Errorf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", what, r.code, c.code, r.stdout, r.stderr)
		return
	}
	if c.stdout != "" && !regexp.MustCompile(c.stdout).MatchString(r.stdout) {
		h.t.Errorf("%s: stdout %q does not match %q", what, r.stdout, c.stdout)
	}
	if c.stderr != "" && !regexp.MustCompile(c.stderr).MatchString(r.stderr) {
		h.t.Errorf("%s: stderr %q does not match %q", what, r.stderr, c.stderr)
	}
	if c.code != 0 && strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		h.t.Errorf("%s: error is not one line:\n%s", what, r.stderr)
	}
}

// TestOverlayNetworkCommands: an overlay network created on one host is
// listed on the other with driver and scope; refusals are one line.
func TestOverlayNetworkCommands(t *testing.T) {
	c, hs := newClusterHosts(t, 2)
	store := "--cluster-store=" + c.Etcd.Store()
	for _, tc := range []struct {
		h int
		cliCase
	}{
		{0, cliCase{name: "create", args: []string{store, "network", "create", "--driver", "overlay", "ov1", "--subnet", "10.90.0.0/16"}, stdout: `^ov1\n$`}},
		{0, cliCase{name: "explicit vni", args: []string{store, "network", "create", "--driver", "overlay", "ov2", "--subnet", "10.91.0.0/16", "--vni", "5000", "--icc=false"}, stdout: `^ov2\n$`}},
		{1, cliCase{name: "twice from another host", args: []string{store, "network", "create", "--driver", "overlay", "ov1", "--subnet", "10.92.0.0/16"}, code: 1, stderr: `^ebpfnet: network ov1 already exists\n$`}},
		{1, cliCase{name: "vni taken", args: []string{store, "network", "create", "--driver", "overlay", "ov3", "--subnet", "10.93.0.0/16", "--vni", "5000"}, code: 1, stderr: `VNI 5000 is used by network ov2`}},
		{1, cliCase{name: "no store", args: []string{"network", "create", "--driver", "overlay", "ov3", "--subnet", "10.93.0.0/16"}, code: 1, stderr: `--driver overlay needs a cluster store`}},
		{1, cliCase{name: "bad store", args: []string{"--cluster-store=consul://x:1", "network", "create", "--driver", "overlay", "ov3", "--subnet", "10.93.0.0/16"}, code: 1, stderr: `invalid cluster store`}},
		{1, cliCase{name: "vni on bridge", args: []string{"network", "create", "b1", "--vni", "7"}, code: 1, stderr: `--vni needs --driver overlay`}},
		{1, cliCase{name: "bridge flag on overlay", args: []string{store, "network", "create", "--driver", "overlay", "ov3", "--subnet", "10.93.0.0/16", "--bridge", "x"}, code: 1, stderr: `--bridge does not apply to --driver overlay`}},
		{1, cliCase{name: "unknown driver", args: []string{"network", "create", "--driver", "macvlan", "m"}, code: 1, stderr: `unknown --driver "macvlan"`}},
		{1, cliCase{name: "local network", args: []string{"network", "create", "b1", "--subnet", "172.30.0.0/24"}, stdout: `^b1\n$`}},
		{1, cliCase{name: "ls both", args: []string{store, "network", "ls"}, stdout: `(?m)^NAME\s+DRIVER\s+SCOPE\s+SUBNET.*\nb1\s+bridge\s+local\s+172\.30\.0\.0/24.*\nhost\s+host\s+local\s+-\s+-\s+-\s+-\s+-\s+-\nnone\s+null\s+local\s+-\s+-\s+-\s+-\s+-\s+-\nov1\s+overlay\s+global\s+10\.90\.0\.0/16\s+10\.90\.0\.1\s+-\s+-\s+true\s+false\nov2\s+overlay\s+global\s+10\.91\.0\.0/16\s+10\.91\.0\.1\s+-\s+-\s+false\s+false\n$`}},
		{1, cliCase{name: "ls without store", args: []string{"network", "ls"}, stdout: `(?m)^NAME\s+DRIVER\s+SCOPE.*\nb1\s+bridge\s+local\s+.*\nhost\s+host\s+.*\nnone\s+null\s+.*\n$`}},
		{1, cliCase{name: "rm local", args: []string{"network", "rm", "b1"}, stdout: `^b1\n$`}},
		{1, cliCase{name: "rm overlay", args: []string{store, "network", "rm", "ov2"}, stdout: `^ov2\n$`}},
		{0, cliCase{name: "ls after rm", args: []string{store, "network", "ls", "-q"}, stdout: `^host\nnone\nov1\n$`}},
		{0, cliCase{name: "vni free again", args: []string{store, "network", "create", "--driver", "overlay", "ov5", "--subnet", "10.95.0.0/16", "--vni", "5000"}, stdout: `^ov5\n$`}},
	} {
		hs[tc.h].check(tc.cliCase)
	}

	// etcd down: creation fails with one line, in bounded time.
	if err := c.Etcd.Stop(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	hs[1].check(cliCase{name: "store down", args: []string{store, "network", "create", "--driver", "overlay", "ov4", "--subnet", "10.94.0.0/16"}, code: 1,
		stderr: `^ebpfnet: create network: cluster store unreachable: etcd://198\.18\.0\.1:2379 did not answer within 5s\n$`})
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("failing took %s", d)
	}
}

// TestDaemonJoinsCluster: `ebpfnet daemon --advertise-addr` and `ebpfnet
// docker-plugin --advertise-addr` register their host under a lease; killed
// by PID, the host leaves the cluster after the lease's TTL.
func TestDaemonJoinsCluster(t *testing.T) {
	c, hs := newClusterHosts(t, 2)
	store := "--cluster-store=" + c.Etcd.Store()
	hs[0].check(cliCase{name: "advertise without store", args: []string{"daemon", "--advertise-addr", "198.18.0.11"}, code: 1, stderr: `--advertise-addr needs --cluster-store`})
	hs[0].check(cliCase{name: "bad advertise", args: []string{store, "daemon", "--advertise-addr", "nope"}, code: 1, stderr: `invalid --advertise-addr "nope"`})
	hs[0].check(cliCase{name: "plugin advertise without store", args: []string{"docker-plugin", "--advertise-addr", "198.18.0.11"}, code: 1, stderr: `--advertise-addr needs --cluster-store`})
	hs[0].check(cliCase{name: "plugin node name without advertise", args: []string{store, "docker-plugin", "--node-name", "x"}, code: 1, stderr: `--node-name needs --advertise-addr`})

	s, err := cluster.Open(cluster.Config{Endpoints: []string{c.Etcd.Endpoint()}, Dialer: etcdtest.GRPCDialerIn(c.Underlay)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hosts := func() []string {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		hs, _ := s.Hosts(ctx)
		var out []string
		for _, h := range hs {
			out = append(out, fmt.Sprintf("%s@%s", h.Name, h.Addr))
		}
		slices.Sort(out)
		return out
	}
	var pids []int
	for i, h := range hs {
		// Host 1 is served by the daemon, host 2 by the Docker plugin:
		// both join with the same flags and agent.
		serve := []string{"daemon", "--metrics-addr", "127.0.0.1:0"}
		if i == 1 {
			serve = []string{"docker-plugin", "--socket", filepath.Join(t.TempDir(), "ebpfnet.sock"), "--docker-host", ""}
		}
		cmd := h.cmd(append(append([]string{store}, serve...), "--advertise-addr", etcdtest.HostIP(i+1), "--lease-ttl", "2s")...)
		var errOut bytes.Buffer
		cmd.Stderr = &errOut
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid := cmd.Process.Pid
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		t.Cleanup(func() {
			syscall.Kill(pid, syscall.SIGKILL)
			<-done
			if t.Failed() {
				t.Logf("daemon %d stderr:\n%s", i+1, errOut.String())
			}
		})
		pids = append(pids, pid)
	}
	want := []string{"198.18.0.11@198.18.0.11", "198.18.0.12@198.18.0.12"}
	deadline := time.Now().Add(30 * time.Second)
	for !slices.Equal(hosts(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("hosts %v, want %v", hosts(), want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// `ip netns exec` execs the CLI, so the PID is the plugin's.
	if err := syscall.Kill(pids[1], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(15 * time.Second)
	for !slices.Equal(hosts(), want[:1]) {
		if time.Now().After(deadline) {
			t.Fatalf("after kill: hosts %v, want %v", hosts(), want[:1])
		}
		time.Sleep(100 * time.Millisecond)
	}
}
