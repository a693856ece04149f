package integration

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"

	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

// namedList is an ebpfnet conflist for network name on subnet, with
// settings merged over this host's instance.
func (h *cniHost) namedList(name, subnet string, settings map[string]any) *libcni.NetworkConfigList {
	h.t.Helper()
	merged := map[string]any{"subnet": subnet}
	for k, v := range settings {
		merged[k] = v
	}
	return h.netList(name, "1.1.0", merged)
}

func portMapping(host, ctr int) map[string]any {
	return map[string]any{"portMappings": []map[string]any{{"hostPort": host, "containerPort": ctr, "protocol": "tcp"}}}
}

// TestCNIRuntimeHeldPortAcrossDelAdd drives by libcni what Podman does
// with a published port (runtimeHoldsPorts): ADD, then the runtime binds
// the host port itself (here: the test, in the host namespace); a reload
// is DEL and ADD while that socket stays open; a second network's ADD
// asks for the same port. The port answers all along, CHECK passes on both
// interfaces, it follows the container to the network it keeps, and a
// host service that holds a port is still refused.
func TestCNIRuntimeHeldPortAcrossDelAdd(t *testing.T) {
	h := newCNIHost(t)
	held := map[string]any{"runtimeHoldsPorts": true}
	netA, netB := h.namedList("rta", "10.77.0.0/24", held), h.namedList("rtb", "10.78.0.0/24", held)
	c := h.AddContainer("c")
	rtA, rtB := h.rt("reload-1", c, "eth0", portMapping(8080, 80)), h.rt("reload-1", c, "eth1", portMapping(8080, 80))
	h.mustAdd(netA, rtA)
	testutil.Serve(t, h.Namespace(h.Host), "runtime", ":8080") // conmon's socket
	testutil.Serve(t, h.Namespace(c), "c", ":80")
	ext := h.Namespace(h.Ext)
	expect(t, testutil.MustAsk(t, ext, "tcp4", hostAddr+":8080"), "c", extAddr)

	// podman network reload
	h.mustDel(netA, rtA)
	h.mustAdd(netA, rtA)
	expect(t, testutil.MustAsk(t, ext, "tcp4", hostAddr+":8080"), "c", extAddr)

	// podman network connect: the same portMappings on a second network.
	h.mustAdd(netB, rtB)
	expect(t, testutil.MustAsk(t, ext, "tcp4", hostAddr+":8080"), "c", extAddr)
	for _, step := range []struct {
		list *libcni.NetworkConfigList
		rt   *libcni.RuntimeConf
	}{{netA, rtA}, {netB, rtB}} {
		if err := h.check(step.list, step.rt); err != nil {
			t.Fatalf("CHECK %s: %v", step.rt.IfName, err)
		}
	}
	// podman network disconnect of the first network.
	h.mustDel(netA, rtA)
	expect(t, testutil.MustAsk(t, ext, "tcp4", hostAddr+":8080"), "c", extAddr)
	if nat := h.MustEbpfnet("nat", "ls"); !strings.Contains(nat, "10.78.0.2:80") {
		t.Fatalf("8080 is not bound to eth1's 10.78.0.2:\n%s", nat)
	}

	// Another container may not take a port a host process holds, nor
	// one the container above publishes.
	other := h.AddContainer("o")
	testutil.Serve(t, h.Namespace(h.Host), "service", ":9090")
	cniError(t, h.mustFail(netA, h.rt("other", other, "eth0", portMapping(9090, 80))), "9090/tcp on 0.0.0.0 is in use by a process of the host")
	cniError(t, h.mustFail(netA, h.rt("other", other, "eth0", portMapping(8080, 80))), "already published by endpoint reload-1-eth1")

	h.mustDel(netB, rtB)
	if nat := h.MustEbpfnet("nat", "ls"); strings.Contains(nat, "8080") {
		t.Fatalf("binding left after the last DEL:\n%s", nat)
	}
}

// mustFail runs an ADD that must fail and returns its error.
func (h *cniHost) mustFail(list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	h.t.Helper()
	_, err := h.add(list, rt)
	if err == nil {
		h.t.Fatalf("ADD %s %s succeeded, want a failure", rt.ContainerID, rt.IfName)
	}
	return err
}

// TestCNIFailedAddChangesNothing: an ADD refused for a published port a
// host process holds leaves the container and the host as they were: no
// interface in the container (its other network's eth0 untouched), no
// endpoint, no network the ADD made, no published port, no veth.
func TestCNIFailedAddChangesNothing(t *testing.T) {
	h := newCNIHost(t)
	netA, netB := h.namedList("faila", "10.77.0.0/24", nil), h.namedList("failb", "10.78.0.0/24", nil)
	c := h.AddContainer("c")
	h.mustAdd(netA, h.rt("failed-add", c, "eth0", nil))
	testutil.Serve(t, h.Namespace(h.Host), "service", ":8080")
	snapshot := func() string {
		return h.MustEbpfnet("ls", "-o", "json") + h.MustEbpfnet("network", "ls", "-q") + h.MustEbpfnet("nat", "ls") +
			h.Exec(h.Host, "ip", "-o", "link", "show") + h.Exec(h.Host, "ip", "-4", "-o", "addr", "show") +
			h.Exec(c, "ip", "-o", "link", "show") + h.Exec(c, "ip", "-4", "-o", "addr", "show") + h.Exec(c, "ip", "route")
	}
	before := snapshot()
	for _, tc := range []struct {
		name string
		list *libcni.NetworkConfigList
	}{{"network the ADD makes", netB}, {"existing network", netA}} {
		t.Run(tc.name, func(t *testing.T) {
			err := h.mustFail(tc.list, h.rt("failed-add", c, "eth1", portMapping(8080, 80)))
			cniError(t, err, "8080/tcp on 0.0.0.0 is in use by a process of the host")
			if after := snapshot(); after != before {
				t.Fatalf("a failed ADD changed state:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// TestCNIAddFailsWhenItsSandboxIsReplaced reproduces issue 21 item 8, an
// ADD that reported an address its sandbox did not have (`ip -n NS addr
// show dev net1` lacked 10.91.0.2 right after), deterministically: the
// sandbox's name is bound to a new namespace while the ADD runs (a runner
// reusing a netns name: `ip netns delete NS; ip netns add NS`), and the old
// one lives on (a process of the container holds it). The plugin pauses
// after making the veth (EBPFNET_TEST_PAUSE) for the swap. The ADD used to
// finish in the old namespace and report success; it must fail, leave
// neither namespace an interface, keep no record, and an ADD into the new
// namespace must then give net1 the address it reports.
func TestCNIAddFailsWhenItsSandboxIsReplaced(t *testing.T) {
	h := newCNIHost(t)
	ns := h.AddContainer("c")
	holder := exec.Command("ip", "netns", "exec", ns, "sleep", "300")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })

	pause := filepath.Join(t.TempDir(), "paused")
	conf := map[string]any{"cniVersion": "1.1.0", "name": "swapnet", "type": "ebpfnet", "subnet": "10.91.0.0/24",
		"stateDir": h.StateDir, "pinRoot": h.PinRoot}
	stdin, _ := json.Marshal(conf)
	add := exec.Command(cniPlugin(t))
	add.Env = []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=swap-1", "CNI_NETNS=/run/netns/" + ns, "CNI_IFNAME=net1",
		"CNI_PATH=" + filepath.Dir(cniPlugin(t)), "EBPFNET_TEST_PAUSE=after-veth", "EBPFNET_TEST_PAUSE_FILE=" + pause}
	var stdout, stderr bytes.Buffer
	add.Stdin, add.Stdout, add.Stderr = bytes.NewReader(stdin), &stdout, &stderr
	if err := h.inHost(add.Start); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if add.ProcessState == nil {
			add.Process.Kill()
			add.Wait()
		}
	})
	waitFor(t, 20*time.Second, func() bool { _, err := os.Stat(pause); return err == nil })
	testutil.Run(t, "ip", "netns", "delete", ns)
	h.AddNetns(ns)
	if err := os.Remove(pause); err != nil {
		t.Fatal(err)
	}
	err := add.Wait()
	if err == nil {
		t.Fatalf("ADD into a sandbox replaced meanwhile succeeded: %s\n%s has:\n%s", stdout.String(), ns, h.Exec(ns, "ip", "-o", "addr"))
	}
	if !strings.Contains(stdout.String(), "names another network namespace") {
		t.Errorf("ADD failed with %v, want a CNI error naming the replaced namespace:\n%s%s", err, stdout.String(), stderr.String())
	}
	if out := h.Exec(ns, "ip", "-o", "link"); strings.Contains(out, "net1") {
		t.Errorf("net1 in the new namespace after the failed ADD:\n%s", out)
	}
	old := strings.TrimSpace(testutil.Run(t, "nsenter", "-t", itoa(holder.Process.Pid), "-n", "ip", "-o", "link"))
	if strings.Contains(old, "net1") {
		t.Errorf("net1 left in the replaced namespace:\n%s", old)
	}
	if eps := h.ls(); len(eps) != 0 {
		t.Errorf("endpoints after the failed ADD: %v", eps)
	}
	if veths := viewKernel(t, h.Topology).Veths; len(veths) != 0 {
		t.Errorf("host veths left: %v", veths)
	}

	list := h.namedList("swapnet", "10.91.0.0/24", nil)
	r := h.mustAdd(list, h.rt("swap-1", ns, "net1", nil))
	if ip := resultIP(t, r); ip != "10.91.0.2" {
		t.Fatalf("ADD reported %s, want 10.91.0.2", ip)
	}
	if out := h.Exec(ns, "ip", "-o", "-4", "addr", "show", "dev", "net1"); !strings.Contains(out, "10.91.0.2/24") {
		t.Fatalf("ADD reported 10.91.0.2, net1 has:\n%s", out)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// contribList loads an example conflist from contrib/cni, pointed at this
// host's instance.
func (h *cniHost) contribList(file string) *libcni.NetworkConfigList {
	h.t.Helper()
	list, err := libcni.ConfListFromFile(filepath.Join("..", "contrib", "cni", file))
	if err != nil {
		h.t.Fatal(err)
	}
	if list.Plugins[0], err = libcni.InjectConf(list.Plugins[0], map[string]any{"stateDir": h.StateDir, "pinRoot": h.PinRoot}); err != nil {
		h.t.Fatal(err)
	}
	return list
}

// TestCNIContribExamplesSideBySide: the two example conflists can be used
// on one host, one after the other and at the same time (they both named
// their network "ebpfnet" with different subnets, so the second failed:
// "network ebpfnet exists with other settings"). Their networks outlive
// their last container, as docs/cni.md says, and network rm removes them.
func TestCNIContribExamplesSideBySide(t *testing.T) {
	h := newCNIHost(t)
	generic, podman := h.contribList("10-ebpfnet.conflist"), h.contribList("20-ebpfnet-podman.conflist")
	c1, c2 := h.AddContainer("c1"), h.AddContainer("c2")
	rt1, rt2 := h.rt("example-1", c1, "eth0", portMapping(8080, 80)), h.rt("example-2", c2, "eth0", portMapping(8081, 80))
	if ip := resultIP(t, h.mustAdd(generic, rt1)); ip != "10.88.0.2" {
		t.Fatalf("%s gave %s, want 10.88.0.2", generic.Name, ip)
	}
	h.mustDel(generic, rt1)
	if ip := resultIP(t, h.mustAdd(podman, rt2)); ip != "10.89.0.2" {
		t.Fatalf("%s after %s gave %s, want 10.89.0.2", podman.Name, generic.Name, ip)
	}
	h.mustAdd(generic, rt1)
	testutil.Serve(t, h.Namespace(c1), "c1", ":80")
	testutil.Serve(t, h.Namespace(c2), "c2", ":80")
	expect(t, testutil.MustAsk(t, h.Namespace(h.Ext), "tcp4", hostAddr+":8080"), "c1", extAddr)
	expect(t, testutil.MustAsk(t, h.Namespace(h.Ext), "tcp4", hostAddr+":8081"), "c2", extAddr)

	h.mustDel(generic, rt1)
	h.mustDel(podman, rt2)
	if out := h.MustEbpfnet("network", "ls", "-q"); !strings.Contains(out, generic.Name) || !strings.Contains(out, podman.Name) {
		t.Fatalf("network ls after the last DEL:\n%s\nwant both example networks (they outlive their containers)", out)
	}
	h.MustEbpfnet("network", "rm", generic.Name, podman.Name)
	if v := viewKernel(t, h.Topology); len(v.Bridges) != 0 || len(v.Veths) != 0 {
		t.Fatalf("left after network rm: %+v", v)
	}
}
