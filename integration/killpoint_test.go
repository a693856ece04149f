package integration

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
	"github.com/ebpfnet/ebpfnet/maps"
)

// Kill points: EBPFNET_TEST_KILL=<point> makes the command SIGKILL itself
// at that test point of its steps (datapath's at, in the test build of
// ebpfnet that TestMain makes: -tags ebpfnet_testhooks), as a crash or an
// OOM kill would: no rollback, no store write. scripts/killpoints.sh runs
// these tests.

// killedAt runs an ebpfnet command that must die by SIGKILL at point.
func killedAt(t *testing.T, tp *testutil.Topology, point string, args ...string) {
	t.Helper()
	cmd := tp.EbpfnetCmd(args...)
	cmd.Env = append(cmd.Environ(), "EBPFNET_TEST_KILL="+point)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	// ip netns exec reports the child's death by signal as 128+9 or as
	// the signal itself.
	if !errors.As(err, &exit) || (exit.ExitCode() != 137 && !killedBySignal(exit)) {
		t.Fatalf("%v at kill point %s: %v, want death by SIGKILL\n%s", args, point, err, out)
	}
}

func killedBySignal(exit *exec.ExitError) bool {
	ws, ok := exit.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// TestProductionBuildIgnoresTestHooks: ebpfnet built without the test
// hooks (make build, a release) reads no test variable. With
// EBPFNET_TEST_FAULT, _KILL and _PAUSE naming points of a network create,
// an attach and a detach, they all succeed, where the test build fails.
func TestProductionBuildIgnoresTestHooks(t *testing.T) {
	tp := newTopology(t)
	prod := filepath.Join(t.TempDir(), "ebpfnet-production")
	if err := testutil.Build(prod, "github.com/ebpfnet/ebpfnet/cmd/ebpfnet", false); err != nil {
		t.Fatal(err)
	}
	c := tp.AddContainer("c")
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	run := func(tp *testutil.Topology, env []string, args ...string) (string, error) {
		cmd := tp.EbpfnetCmd(args...)
		cmd.Env = append(cmd.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	fault := []string{"EBPFNET_TEST_FAULT=after-veth"}
	if out, err := run(tp, fault, "attach", "--network", "n1", c); err == nil || !strings.Contains(out, "injected fault at after-veth") {
		t.Fatalf("test build: attach with %s: %v\n%s\nwant the injected fault", fault, err, out)
	}

	prodTp := tp.WithBinary(prod)
	pause := filepath.Join(t.TempDir(), "paused") // never made: nothing pauses
	attachSteps := []string{"store write", "port checks", "netlink", "sysctl", "map writes", "program attach"}
	for _, tc := range []struct {
		env   []string
		args  []string
		steps []string // the step times the bench reads (EBPFNET_STEP_TIMES)
	}{
		{[]string{"EBPFNET_TEST_KILL=after-bridge", "EBPFNET_TEST_FAULT=before-network-save"}, []string{"network", "create", "n2", "--subnet", "172.31.0.0/24"}, nil},
		{[]string{"EBPFNET_TEST_FAULT=after-veth", "EBPFNET_TEST_KILL=after-link", "EBPFNET_TEST_PAUSE=after-maps", "EBPFNET_TEST_PAUSE_FILE=" + pause},
			[]string{"attach", "--network", "n1", "-p", "8080:80", c}, attachSteps},
		{[]string{"EBPFNET_TEST_FAULT=detach-after-maps", "EBPFNET_TEST_KILL=detach-after-unlink"}, []string{"detach", c},
			[]string{"store write", "program detach", "map writes", "netlink", "conntrack flush"}},
		{[]string{"EBPFNET_TEST_FAULT=after-veth"}, []string{"attach", "--network", "n1", c}, attachSteps},
	} {
		env := tc.env
		if tc.steps != nil {
			env = append(env, fmt.Sprintf("EBPFNET_STEP_TIMES=%d", time.Now().UnixNano()))
		}
		out, err := run(prodTp, env, tc.args...)
		if err != nil {
			t.Fatalf("production build: %v with %v: %v\n%s", tc.args, tc.env, err, out)
		}
		for _, name := range tc.steps {
			if !strings.Contains(out, `"`+name+`":`) {
				t.Errorf("%v: no %q in the step times:\n%s", tc.args, name, out)
			}
		}
	}
	if _, err := os.Stat(pause); err == nil {
		t.Errorf("the production build paused at a test point")
	}
	if out := tp.MustEbpfnet("ls"); !strings.Contains(out, "172.30.0.2") {
		t.Fatalf("ls after the production build's attach:\n%s", out)
	}
	if out := tp.MustEbpfnet("network", "ls"); !strings.Contains(out, "n2") {
		t.Fatalf("network ls after the production build's create:\n%s", out)
	}
}

// kernelView is what the kernel holds for an instance: the host's
// interfaces ebpfnet makes, its routes, its link pins and the fill of the
// maps that describe networks, endpoints and published ports.
type kernelView struct {
	Veths, Bridges, Routes, LinkPins []string
	Maps                             map[string]int
}

func viewKernel(t *testing.T, tp *testutil.Topology) kernelView {
	t.Helper()
	var v kernelView
	for _, line := range strings.Split(tp.Exec(tp.Host, "ip", "-o", "link", "show", "type", "veth"), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			if name != testutil.UplinkIf {
				v.Veths = append(v.Veths, name)
			}
		}
	}
	for _, line := range strings.Split(tp.Exec(tp.Host, "ip", "-o", "link", "show", "type", "bridge"), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			v.Bridges = append(v.Bridges, strings.TrimSuffix(f[1], ":"))
		}
	}
	for _, line := range strings.Split(tp.Exec(tp.Host, "ip", "-4", "route", "show", "table", "main"), "\n") {
		if line = strings.ReplaceAll(strings.TrimSpace(line), " linkdown", ""); line != "" &&
			!strings.HasPrefix(line, "default") && !strings.HasPrefix(line, "198.18.0.0/24") {
			v.Routes = append(v.Routes, line)
		}
	}
	if ents, err := os.ReadDir(filepath.Join(tp.PinRoot, "links")); err == nil {
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), "cgroup:") { // the host's socket hooks stay
				v.LinkPins = append(v.LinkPins, e.Name())
			}
		}
	}
	v.Maps = map[string]int{}
	if _, err := os.Stat(filepath.Join(tp.PinRoot, "maps")); err == nil {
		usage, err := tp.Views().MapUsage()
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range usage {
			switch u.Name {
			case "endpoints", "endpoint_ips", "endpoint_stats", "ports", "networks", "subnets", "uplinks":
				if u.Entries > 0 {
					v.Maps[u.Name] = u.Entries
				}
			}
		}
	}
	return v
}

// wantKernel waits until the kernel holds exactly what the store says
// (a daemon pass is asynchronous; a command's repair is done when it returns).
func wantKernel(t *testing.T, tp *testutil.Topology, timeout time.Duration, check func(kernelView) string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v := viewKernel(t, tp)
		msg := check(v)
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s\nkernel: %+v", msg, v)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// oneNetworkNoEndpoint: the kernel holds network n1 (one bridge, on
// 172.30.0.0/24, uplink attached) and nothing of an endpoint.
func oneNetworkNoEndpoint(v kernelView) string {
	switch {
	case len(v.Veths) > 0:
		return "orphan veths"
	case len(v.Bridges) != 1:
		return "bridges are not exactly n1's"
	case len(v.Routes) != 1 || !strings.HasPrefix(v.Routes[0], "172.30.0.0/24 dev "+v.Bridges[0]+" "):
		return "routes are not exactly n1's"
	case !slices.Equal(v.LinkPins, []string{testutil.UplinkIf + ":from_uplink"}):
		return "orphan link pins"
	case v.Maps["endpoints"]+v.Maps["endpoint_ips"]+v.Maps["endpoint_stats"]+v.Maps["ports"] > 0:
		return "orphan endpoint or port map entries"
	case v.Maps["networks"] != 1 || v.Maps["subnets"] != 1:
		return "network map entries are not exactly n1's"
	}
	return ""
}

// nothing: no network, no endpoint.
func nothing(v kernelView) string {
	switch {
	case len(v.Veths) > 0 || len(v.Bridges) > 0:
		return "orphan interfaces"
	case len(v.Routes) > 0:
		return "orphan routes"
	case len(v.LinkPins) > 0:
		return "orphan link pins"
	case len(v.Maps) > 0:
		return "orphan map entries"
	}
	return ""
}

// attachWorks attaches c1 (publishing 8080:80) and c2 to n1 and sends
// traffic: outside -> published port, c2 -> c1, host -> c1, c1 -> outside.
func attachWorks(t *testing.T, tp *testutil.Topology, c1, c2 string) {
	t.Helper()
	if out := tp.MustEbpfnet("attach", "--network", "n1", "-p", "8080:80", c1); !strings.Contains(out, "172.30.0.2") {
		t.Fatalf("attach after the crash: %s, want 172.30.0.2", out)
	}
	tp.MustEbpfnet("attach", "--network", "n1", c2)
	testutil.Serve(t, tp.Namespace(c1), "c1", ":80")
	testutil.Serve(t, tp.Namespace(tp.Ext), "ext", ":7000")
	expect(t, testutil.MustAsk(t, tp.Namespace(tp.Ext), "tcp4", hostAddr+":8080"), "c1", extAddr)
	expect(t, testutil.MustAsk(t, tp.Namespace(c2), "tcp4", "172.30.0.2:80"), "c1", "172.30.0.3")
	expect(t, testutil.MustAsk(t, tp.Namespace(tp.Host), "tcp4", "172.30.0.2:80"), "c1", "172.30.0.1")
	expect(t, testutil.MustAsk(t, tp.Namespace(c1), "tcp4", extAddr+":7000"), "ext", hostAddr)
	out := tp.MustEbpfnet("ls")
	if !strings.Contains(out, c1) || !strings.Contains(out, c2) {
		t.Fatalf("ls after attach:\n%s", out)
	}
}

// TestKillPointsInAttach: an attach SIGKILLed after any of its kernel
// changes leaves nothing behind once the next command (or a daemon pass)
// ran, and the network works as if the attach had never been tried.
func TestKillPointsInAttach(t *testing.T) {
	for _, point := range []string{"after-veth", "after-maps", "after-link", "before-save"} {
		for _, repair := range []string{"command", "daemon"} {
			if repair == "daemon" && point != "after-link" {
				continue // the daemon's pass runs the same repair
			}
			t.Run(point+"/"+repair, func(t *testing.T) {
				tp := newTopology(t)
				tp.Exec(tp.Host, "iptables", "-P", "FORWARD", "DROP")
				c1, c2 := tp.AddContainer("c1"), tp.AddContainer("c2")
				tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
				killedAt(t, tp, point, "attach", "--network", "n1", "-p", "8080:80", c1)
				if repair == "daemon" {
					startDaemon(t, tp, "127.0.0.1:9469")
					wantKernel(t, tp, 10*time.Second, oneNetworkNoEndpoint)
				}
				if out := tp.MustEbpfnet("ls", "-o", "json"); strings.TrimSpace(out) != "[]" {
					t.Fatalf("ls after the crash: %s, want no endpoint", out)
				}
				wantKernel(t, tp, 0, oneNetworkNoEndpoint)
				if out := tp.Exec(c1, "ip", "-o", "link"); strings.Contains(out, "eth0") {
					t.Fatalf("eth0 left in the container:\n%s", out)
				}
				// Written beside the kernel changes from right after the
				// intent: the intent and the record name them.
				for _, f := range []string{"resolv.conf", "hosts"} {
					if _, err := os.Stat(filepath.Join("/etc/netns", c1, f)); !errors.Is(err, os.ErrNotExist) {
						t.Fatalf("/etc/netns/%s/%s left behind (%v)", c1, f, err)
					}
				}
				if _, errOut, err := tp.Ebpfnet("detach", c1); err == nil || !strings.Contains(errOut, "not attached") {
					t.Fatalf("detach of the never-attached target: %v %s", err, errOut)
				}
				attachWorks(t, tp, c1, c2)
			})
		}
	}
}

// TestKillPointsInNetworkCreate: a network create SIGKILLed after any of its
// kernel changes leaves no bridge, route, map entry or pin once the next
// command ran, and creating the network again gives a working network (the
// orphan bridge's route used to win over the new one's).
func TestKillPointsInNetworkCreate(t *testing.T) {
	for _, point := range []string{"after-bridge", "after-network-maps", "before-network-save"} {
		t.Run(point, func(t *testing.T) {
			tp := newTopology(t)
			tp.Exec(tp.Host, "iptables", "-P", "FORWARD", "DROP")
			c1, c2 := tp.AddContainer("c1"), tp.AddContainer("c2")
			killedAt(t, tp, point, "network", "create", "n1", "--subnet", "172.30.0.0/24")
			wantNoNetworkThenOneWorks(t, tp, c1, c2)
		})
	}
}

// wantNoNetworkThenOneWorks checks that a crashed network create or rm
// left no network n1 and nothing in the kernel, and that n1 can be made
// again and attached to.
func wantNoNetworkThenOneWorks(t *testing.T, tp *testutil.Topology, c1, c2 string) {
	t.Helper()
	if out := tp.MustEbpfnet("network", "ls", "-q"); strings.Contains(out, "n1") {
		t.Fatalf("network ls after the crash:\n%s\nwant no n1", out)
	}
	wantKernel(t, tp, 0, nothing)
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	wantKernel(t, tp, 0, oneNetworkNoEndpoint)
	attachWorks(t, tp, c1, c2)
}

// A subnet that overlaps a route the host already has would lose to (or
// steal from) that route: refused, as Docker does.
func TestNetworkCreateRefusesRoutedSubnet(t *testing.T) {
	tp := newTopology(t)
	tp.Exec(tp.Host, "ip", "route", "add", "10.77.0.0/16", "via", extAddr)
	for _, tc := range []struct{ subnet, want string }{
		{"10.77.1.0/24", "overlaps route 10.77.0.0/16"},
		{"10.0.0.0/8", "overlaps route 10.77.0.0/16"},
		{"198.18.0.0/16", "overlaps route 198.18.0.0/24"}, // the uplink's own connected route
	} {
		_, errOut, err := tp.Ebpfnet("network", "create", "n1", "--subnet", tc.subnet)
		if err == nil || !strings.Contains(errOut, tc.want) {
			t.Errorf("network create --subnet %s: %v %q, want an error containing %q", tc.subnet, err, errOut, tc.want)
		}
	}
	if out := tp.Exec(tp.Host, "ip", "-o", "link", "show", "type", "bridge"); out != "" {
		t.Fatalf("a refused create left a bridge:\n%s", out)
	}
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "10.78.0.0/24")
}

// Orphans no intent names (a crash of a version without intents, or state
// changed behind ebpfnet's back): the daemon's reconcile compares the kernel
// with the store and removes what no stored endpoint accounts for.
func TestDaemonRemovesOrphansNoIntentNames(t *testing.T) {
	tp := newTopology(t)
	c1, c2 := tp.AddContainer("c1"), tp.AddContainer("c2")
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	// An orphan veth on n1's bridge whose endpoint and port entries claim
	// 172.30.0.2 and 8080/tcp, as the killed attach of issue 9 left them.
	br := strings.TrimSpace(tp.Exec(tp.Host, "ip", "-o", "link", "show", "type", "bridge"))
	br = strings.TrimSuffix(strings.Fields(br)[1], ":")
	tp.Exec(tp.Host, "ip", "link", "add", "vethdeadbee", "master", br, "type", "veth", "peer", "name", "orphanpeer")
	idx := strings.TrimSpace(tp.Exec(tp.Host, "cat", "/sys/class/net/vethdeadbee/ifindex"))
	views := tp.Views()
	var ifindex int
	fmt.Sscan(idx, &ifindex)
	ip := netip.MustParseAddr("172.30.0.2")
	mac, _ := net.ParseMAC("02:42:ac:1e:00:02")
	if err := views.PutEndpoint(maps.Endpoint{IP: ip, MAC: mac, NetID: 0, Ifindex: ifindex}); err != nil {
		t.Fatal(err)
	}
	if err := views.PutPortEntry(maps.PortEntry{Proto: maps.ProtoTCP, HostPort: 8080, ContainerIP: ip, ContainerPort: 80, Ifindex: ifindex}); err != nil {
		t.Fatal(err)
	}
	startDaemon(t, tp, "127.0.0.1:9469")
	wantKernel(t, tp, 10*time.Second, oneNetworkNoEndpoint)
	attachWorks(t, tp, c1, c2)
}

// TestKillPointsInDetach: a detach SIGKILLed after any of its kernel
// changes is finished by the next command (or a daemon pass): the endpoint
// is gone from ls, nothing of it is left in the kernel, and the container
// can be attached again.
func TestKillPointsInDetach(t *testing.T) {
	for _, point := range []string{"detach-after-unlink", "detach-after-maps", "detach-after-veth", "detach-before-delete"} {
		for _, repair := range []string{"command", "daemon"} {
			if repair == "daemon" && point != "detach-after-maps" {
				continue // the daemon's pass runs the same repair
			}
			t.Run(point+"/"+repair, func(t *testing.T) {
				tp := newTopology(t)
				tp.Exec(tp.Host, "iptables", "-P", "FORWARD", "DROP")
				c1, c2 := tp.AddContainer("c1"), tp.AddContainer("c2")
				tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
				tp.MustEbpfnet("attach", "--network", "n1", "-p", "8080:80", c1)
				killedAt(t, tp, point, "detach", c1)
				if repair == "daemon" {
					startDaemon(t, tp, "127.0.0.1:9469")
					wantKernel(t, tp, 10*time.Second, oneNetworkNoEndpoint)
				}
				if out := tp.MustEbpfnet("ls", "-o", "json"); strings.TrimSpace(out) != "[]" {
					t.Fatalf("ls after the crash: %s, want no endpoint", out)
				}
				wantKernel(t, tp, 0, oneNetworkNoEndpoint)
				if out := tp.Exec(c1, "ip", "-o", "link"); strings.Contains(out, "eth0") {
					t.Fatalf("eth0 left in the container:\n%s", out)
				}
				attachWorks(t, tp, c1, c2)
			})
		}
	}
}

// TestKillPointsInNetworkRm: a network rm SIGKILLed after any of its
// kernel changes is finished by the next command (or a daemon pass): the
// network is gone from network ls, no bridge, route, map entry or pin is
// left, and a network of that name can be made and used again (it used to
// stay listed without its bridge: "bridge ebpfnetN of network n1 is
// missing").
func TestKillPointsInNetworkRm(t *testing.T) {
	for _, point := range []string{"network-rm-after-maps", "network-rm-after-uplink", "network-rm-after-bridge"} {
		for _, repair := range []string{"command", "daemon"} {
			if repair == "daemon" && point != "network-rm-after-maps" {
				continue
			}
			t.Run(point+"/"+repair, func(t *testing.T) {
				tp := newTopology(t)
				tp.Exec(tp.Host, "iptables", "-P", "FORWARD", "DROP")
				c1, c2 := tp.AddContainer("c1"), tp.AddContainer("c2")
				tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
				killedAt(t, tp, point, "network", "rm", "n1")
				if repair == "daemon" {
					startDaemon(t, tp, "127.0.0.1:9469")
					waitFor(t, 10*time.Second, func() bool {
						out := tp.Exec(tp.Host, "ip", "-o", "link", "show", "type", "bridge")
						return strings.TrimSpace(out) == ""
					})
					// Having finished the rm, the daemon releases the
					// empty instance's pins and loads a datapath again (as
					// its start does): reading the maps meanwhile would
					// race it.
					time.Sleep(time.Second)
				}
				wantNoNetworkThenOneWorks(t, tp, c1, c2)
			})
		}
	}
}

// TestDaemonRepairsNetworkWithoutBridge: a network whose bridge vanished
// without an intent saying why (a network rm that failed half way, an
// older version's crash, `ip link del` behind ebpfnet's back) gets it back
// from the daemon, with its gateway MAC, its map entry and its endpoints'
// veths as ports: the published port answers, and attach works again.
func TestDaemonRepairsNetworkWithoutBridge(t *testing.T) {
	tp := newTopology(t)
	tp.Exec(tp.Host, "iptables", "-P", "FORWARD", "DROP")
	c1, c2 := tp.AddContainer("c1"), tp.AddContainer("c2")
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	tp.MustEbpfnet("attach", "--network", "n1", "-p", "8080:80", c1)
	testutil.Serve(t, tp.Namespace(c1), "c1", ":80")
	testutil.Serve(t, tp.Namespace(tp.Ext), "ext", ":7000")
	bridge := viewKernel(t, tp).Bridges[0]
	mac := strings.TrimSpace(tp.Exec(tp.Host, "cat", "/sys/class/net/"+bridge+"/address"))
	tp.Exec(tp.Host, "ip", "link", "del", bridge)
	startDaemon(t, tp, "127.0.0.1:9469")
	wantKernel(t, tp, 10*time.Second, func(v kernelView) string {
		if !slices.Equal(v.Bridges, []string{bridge}) {
			return "bridge not made again"
		}
		if len(v.Routes) != 1 || !strings.HasPrefix(v.Routes[0], "172.30.0.0/24 dev "+bridge+" ") {
			return "subnet route not back"
		}
		return ""
	})
	if got := strings.TrimSpace(tp.Exec(tp.Host, "cat", "/sys/class/net/"+bridge+"/address")); got != mac {
		t.Errorf("bridge MAC %s, was %s: containers would send to a gateway MAC nobody has", got, mac)
	}
	expect(t, testutil.MustAsk(t, tp.Namespace(tp.Ext), "tcp4", hostAddr+":8080"), "c1", extAddr)
	expect(t, testutil.MustAsk(t, tp.Namespace(c1), "tcp4", extAddr+":7000"), "ext", hostAddr)
	tp.MustEbpfnet("attach", "--network", "n1", c2)
	expect(t, testutil.MustAsk(t, tp.Namespace(c2), "tcp4", "172.30.0.2:80"), "c1", "172.30.0.3")
	expect(t, testutil.MustAsk(t, tp.Namespace(tp.Host), "tcp4", "172.30.0.2:80"), "c1", "172.30.0.1")
}
