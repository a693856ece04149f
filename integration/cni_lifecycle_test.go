package integration

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"

	"github.com/ebpfnet/ebpfnet/internal/testutil"
)

// namedList is an ebpfnet conflist for network name on subnet, with
// settings merged over this host's instance.
func (h *cniHost) namedList(name, subnet string, settings map[string]any) *libcni.NetworkConfigList {
	h.t.Helper()
	plugin := map[string]any{
		"type": "ebpfnet", "subnet": subnet, "stateDir": h.StateDir, "pinRoot": h.PinRoot,
		"capabilities": map[string]bool{"portMappings": true, "ips": true, "mac": true},
	}
	for k, v := range settings {
		plugin[k] = v
	}
	raw, err := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": name, "plugins": []any{plugin}})
	if err != nil {
		h.t.Fatal(err)
	}
	list, err := libcni.NetworkConfFromBytes(raw)
	if err != nil {
		h.t.Fatal(err)
	}
	return list
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
