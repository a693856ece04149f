package integration

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

func exitCode(err error) int {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// snapshot is everything a failed command must leave unchanged.
func snapshot(t *testing.T, tp *testutil.Topology, containers ...string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(tp.MustEbpfnet("ls", "-o", "json"))
	b.WriteString(tp.MustEbpfnet("network", "ls"))
	for _, ns := range append([]string{tp.Host}, containers...) {
		b.WriteString(links(tp.Exec(ns, "ip", "-br", "link")))
		b.WriteString(tp.Exec(ns, "ip", "-o", "-4", "addr"))
		b.WriteString(strings.ReplaceAll(tp.Exec(ns, "ip", "-4", "route"), " linkdown", ""))
	}
	b.WriteString(testutil.Run(t, "find", tp.PinRoot))
	return b.String()
}

// links keeps each interface's name and MAC from `ip -br link`: carrier
// flags of an empty bridge come and go by themselves (so does "linkdown" on
// its route).
func links(brief string) string {
	var b strings.Builder
	for _, line := range strings.Split(brief, "\n") {
		if f := strings.Fields(line); len(f) >= 3 {
			fmt.Fprintf(&b, "%s %s\n", f[0], f[2])
		}
	}
	return b.String()
}

func TestBadInputChangesNothing(t *testing.T) {
	tp := newTopology(t)
	c, busy, free := tp.AddContainer("c"), tp.AddContainer("busy"), tp.AddContainer("free")
	withEth0 := tp.AddContainer("eth0")
	tp.Exec(withEth0, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	tp.MustEbpfnet("attach", "--network", "n1", "--ip", "172.30.0.5", busy)

	for _, tc := range []struct {
		name string
		args []string
		want string // in the one-line error
	}{
		{"unknown network", []string{"attach", "--network", "nope", c}, "network nope not found"},
		{"overlapping subnet", []string{"network", "create", "n2", "--subnet", "172.30.0.0/16"}, "overlaps network n1"},
		{"bad CIDR", []string{"network", "create", "n2", "--subnet", "172.30.0.0/33"}, "invalid subnet"},
		{"host bits in CIDR", []string{"network", "create", "n2", "--subnet", "10.1.2.3/16"}, "host bits set"},
		{"IPv6 subnet without --ipv6", []string{"network", "create", "n2", "--subnet", "fd00::/64"}, "needs --ipv6"},
		{"two IPv4 subnets", []string{"network", "create", "n2", "--subnet", "172.30.0.0/24", "--subnet", "172.31.0.0/24"}, "at most one per address family"},
		{"IPv6 subnet too long", []string{"network", "create", "n2", "--ipv6", "--subnet", "fd00::/124"}, "between 16 and 120"},
		{"gateway outside subnet", []string{"network", "create", "n2", "--subnet", "10.9.0.0/24", "--gateway", "10.8.0.1"}, "not a host address"},
		{"duplicate network", []string{"network", "create", "n1", "--subnet", "10.9.0.0/24"}, "already exists"},
		{"odd network name", []string{"network", "create", "bad/name", "--subnet", "10.9.0.0/24"}, "invalid name"},
		{"odd bridge name", []string{"network", "create", "n2", "--subnet", "10.9.0.0/24", "--bridge", "this-name-is-too-long"}, "1-15 characters"},
		{"missing uplink", []string{"network", "create", "n2", "--subnet", "10.9.0.0/24", "--uplink", "nosuch0"}, "no such interface"},
		{"bad MTU", []string{"network", "create", "n2", "--subnet", "10.9.0.0/24", "--mtu", "20"}, "invalid MTU"},
		{"bad service CIDR", []string{"network", "create", "n2", "--subnet", "10.9.0.0/24", "--service-cidr", "10.96.0.0/40"}, "want an IPv4 CIDR"},
		{"service CIDR over the subnet", []string{"network", "create", "n2", "--subnet", "10.9.0.0/24", "--service-cidr", "10.0.0.0/8"}, "overlaps the network's subnet"},
		{"IP outside subnet", []string{"attach", "--network", "n1", "--ip", "10.0.0.5", c}, "not a host address"},
		{"IP taken", []string{"attach", "--network", "n1", "--ip", "172.30.0.5", c}, "already in use by"},
		{"IP is the gateway", []string{"attach", "--network", "n1", "--ip", "172.30.0.1", c}, "is the gateway"},
		{"missing target", []string{"attach", "--network", "n1", tp.Prefix + "-ghost"}, "no such network namespace"},
		{"missing PID", []string{"attach", "--network", "n1", "999999999"}, "no such process"},
		{"path that is no netns", []string{"attach", "--network", "n1", "/etc/hostname"}, "not a network namespace"},
		{"odd target name", []string{"attach", "--network", "n1", "bad name!"}, "invalid name"},
		{"already attached", []string{"attach", "--network", "n1", busy}, "already"},
		{"target has eth0", []string{"attach", "--network", "n1", withEth0}, "already has an eth0"},
		{"bad mode", []string{"attach", "--net=we/ird", c}, "invalid --network"},
		{"host mode on attach", []string{"attach", "--net=host", c}, "use `ebpfnet run`"},
		{"remove network in use", []string{"network", "rm", "n1"}, "has attached endpoints"},
		{"remove unknown network", []string{"network", "rm", "nope"}, "not found"},
		{"detach unknown", []string{"detach", free}, "not attached"},
		{"container mode of nothing", []string{"run", "--net=container:nope", "--", "true"}, "container:nope"},
		{"run without command", []string{"run", "--net=host"}, "requires at least 1 arg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, tp, c, busy, free, withEth0)
			out, errOut, err := tp.Ebpfnet(tc.args...)
			if exitCode(err) == 0 {
				t.Fatalf("succeeded, want an error\n%s", out)
			}
			msg := strings.TrimSpace(errOut)
			if strings.Count(msg, "\n") > 0 || !strings.Contains(msg, tc.want) {
				t.Fatalf("error %q: want one line containing %q", msg, tc.want)
			}
			if after := snapshot(t, tp, c, busy, free, withEth0); after != before {
				t.Fatalf("state changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

func TestAttachFailingHalfWayRollsBack(t *testing.T) {
	tp := newTopology(t)
	c := tp.AddContainer("c")
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	for _, fault := range []string{"after-veth", "before-save"} {
		t.Run(fault, func(t *testing.T) {
			before := snapshot(t, tp, c)
			cmd := tp.EbpfnetCmd("attach", "--network", "n1", c)
			cmd.Env = append(cmd.Environ(), "EBPFNET_TEST_FAULT="+fault)
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), "injected fault at "+fault) {
				t.Fatalf("attach with fault %s: %v\n%s", fault, err, out)
			}
			if after := snapshot(t, tp, c); after != before {
				t.Fatalf("state changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
	// Also on a fresh instance, where the default network is made on the fly:
	// the network and the pinned datapath go again.
	tp2 := testutil.NewTopology(t, ebpfnetBin)
	c2 := tp2.AddContainer("c")
	cmd := tp2.EbpfnetCmd("attach", c2)
	cmd.Env = append(cmd.Environ(), "EBPFNET_TEST_FAULT=before-save")
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("attach succeeded despite the fault:\n%s", out)
	}
	if out := tp2.MustEbpfnet("network", "ls"); strings.Contains(out, "bridge") {
		t.Fatalf("default network left behind:\n%s", out)
	}
	if out := tp2.Exec(tp2.Host, "ip", "-o", "link"); strings.Contains(out, "ebpfnet") || strings.Contains(out, "veth") {
		t.Fatalf("links left behind:\n%s", out)
	}
}
