package integration

// Housekeeping (ls's status, prune, the daemon's reconcile, CNI GC) against
// endpoints real runtimes made: none of it may take a live container's
// network away (issue 21 item 4).

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"

	"github.com/ebpfnet/ebpfnet/internal/testing/runtimetest"
	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

// statusOf is `ebpfnet ls`'s STATUS of an endpoint, "" if it is not listed.
func statusOf(tp *testutil.Topology, endpoint string) string {
	tp.T().Helper()
	for _, line := range strings.Split(tp.MustEbpfnet("ls", "--format", "{{.Name}}|{{.Status}}"), "\n") {
		if name, status, ok := strings.Cut(line, "|"); ok && name == endpoint {
			return status
		}
	}
	return ""
}

// pruneKeeps runs `ebpfnet prune` and fails if it removed endpoint.
func pruneKeeps(t *testing.T, tp *testutil.Topology, endpoint string) {
	t.Helper()
	if out := tp.MustEbpfnet("prune"); strings.Contains(out, endpoint) {
		t.Errorf("prune removed the live endpoint %s:\n%s", endpoint, out)
	}
}

// pageFromOutside GETs the test page from the outside namespace, retrying
// for a few seconds.
func pageFromOutside(tp *testutil.Topology, url string) (string, error) {
	var out []byte
	err := retry(func() (err error) {
		out, err = exec.Command("ip", "netns", "exec", tp.Ext, "timeout", "5", runtimetest.BusyboxBin, "wget", "-qO-", url).Output()
		return err
	})
	return strings.TrimSpace(string(out)), err
}

// TestDockerEndpointSurvivesPrune: a container the Docker driver attached
// (a prepared endpoint: no namespace inode of its own) is "up" in ls, and
// prune and the plugin's reconcile leave it alone: it keeps eth0 and its
// published port answers. Once docker rm -f has removed it, nothing is
// left.
func TestDockerEndpointSurvivesPrune(t *testing.T) {
	h := newDockerHost(t)
	h.docker("network", "create", "-d", h.name, "--subnet", "172.30.0.0/24", "net1")
	h.docker("run", "-d", "--name", "web", "--network", "net1", "-p", "8080:80",
		runtimetest.ImageName, "httpd", "-f", "-p", "80", "-h", "/var/www")
	url := "http://" + testutil.HostIP + ":8080/index.html"
	if out, err := h.wget(url); err != nil || out != "ebpfnet-test" {
		t.Fatalf("outside -> 8080 before prune: %q %v", out, err)
	}
	ep := h.endpointOf("web", "net1")
	if s := statusOf(h.Topology, ep); s != "up" {
		t.Errorf("ls: status of %s is %q, want up", ep, s)
	}
	pruneKeeps(t, h.Topology, ep)
	time.Sleep(2500 * time.Millisecond) // two of the plugin's reconcile rounds (--gc-interval 1s)

	if s := statusOf(h.Topology, ep); s != "up" {
		t.Errorf("ls after prune: status of %s is %q, want up", ep, s)
	}
	if out, _, err := h.dk.Cmd("exec", "web", "ip", "-o", "link", "show", "eth0"); err != nil {
		t.Errorf("the container lost eth0 after prune: %v %s", err, out)
	}
	if out, err := h.wget(url); err != nil || out != "ebpfnet-test" {
		t.Errorf("outside -> 8080 after prune: %q %v", out, err)
	}

	h.docker("rm", "-f", "web")
	if out := h.MustEbpfnet("prune"); strings.TrimSpace(out) != "" {
		t.Errorf("prune after docker rm -f found %q: Docker's DeleteEndpoint should have removed it", out)
	}
	h.docker("network", "rm", "net1")
	h.gone()
}

// TestContainerdEndpointSurvivesPrune: the same for a CNI endpoint made by
// nerdctl on containerd (its namespace is a runtime's netns path), with
// `ebpfnet daemon` reconciling meanwhile.
func TestContainerdEndpointSurvivesPrune(t *testing.T) {
	runtimetest.Require(t, runtimetest.NerdctlBin)
	tp, c, name := containerdHost(t, "10.83.0.0/24")
	c.MustNerdctl("run", "-d", "--name", "web", "--network", name, "-p", "8080:80", runtimetest.ImageRef, "httpd", "-f", "-p", "80", "-h", "/var/www")
	url := "http://" + testutil.HostIP + ":8080/index.html"
	if out, err := pageFromOutside(tp, url); err != nil || out != "ebpfnet-test" {
		t.Fatalf("outside -> 8080 before prune: %q %v", out, err)
	}
	ep := strings.TrimSpace(tp.MustEbpfnet("ls", "-q"))
	if strings.Contains(ep, "\n") || ep == "" {
		t.Fatalf("want one endpoint, ls -q: %q", ep)
	}
	if s := statusOf(tp, ep); s != "up" {
		t.Errorf("ls: status of %s is %q, want up", ep, s)
	}
	startDaemon(t, tp, "127.0.0.1:9469") // reconciles every 500ms
	pruneKeeps(t, tp, ep)
	time.Sleep(1500 * time.Millisecond)

	if s := statusOf(tp, ep); s != "up" {
		t.Errorf("ls after prune: status of %s is %q, want up", ep, s)
	}
	if out, _, err := c.Nerdctl("exec", "web", "ip", "-o", "link", "show", "eth0"); err != nil {
		t.Errorf("the container lost eth0 after prune: %v %s", err, out)
	}
	if out, err := pageFromOutside(tp, url); err != nil || out != "ebpfnet-test" {
		t.Errorf("outside -> 8080 after prune: %q %v", out, err)
	}
	c.MustNerdctl("rm", "-f", "web")
	if ls := tp.MustEbpfnet("ls", "-q"); strings.TrimSpace(ls) != "" {
		t.Errorf("endpoint left after nerdctl rm -f: %q", ls)
	}
}

// TestHousekeepingFreesDeadEndpointsOfEveryKind: the other half of the
// rule. A CLI endpoint whose namespace was deleted is "namespace gone" and
// pruned; a CNI endpoint whose namespace is gone is removed by GC; one
// whose namespace is there is kept by GC even when the runtime's list
// leaves it out.
func TestHousekeepingFreesDeadEndpointsOfEveryKind(t *testing.T) {
	h := newCNIHost(t)
	list := h.conflist("1.1.0", nil)
	live := h.rt("hk-live", h.AddContainer("live"), "eth0", nil)
	deadNS := h.AddContainer("dead")
	dead := h.rt("hk-dead", deadNS, "eth0", nil)
	h.mustAdd(list, live)
	h.mustAdd(list, dead)
	cli := h.AddContainer("cli")
	h.MustEbpfnet("network", "create", "clinet", "--subnet", "172.31.0.0/24")
	h.MustEbpfnet("attach", "--network", "clinet", "--name", "cli", cli)

	testutil.Run(t, "ip", "netns", "delete", cli)
	if s := statusOf(h.Topology, "cli"); s != "namespace gone" {
		t.Errorf("ls: status of cli with its namespace deleted is %q, want namespace gone", s)
	}
	if out := h.MustEbpfnet("prune"); strings.TrimSpace(out) != "cli" {
		t.Errorf("prune removed %q, want cli only", out)
	}

	testutil.Run(t, "ip", "netns", "delete", deadNS)
	if err := h.gc(list); err != nil {
		t.Fatalf("GC: %v", err)
	}
	var kept []string
	for _, ep := range h.ls() {
		kept = append(kept, fmt.Sprint(ep["container_id"]))
	}
	if strings.Join(kept, ",") != "hk-live" {
		t.Errorf("after GC with no valid attachments: %v, want hk-live only (its namespace exists)", kept)
	}
	h.mustDel(list, live)
}

// gc runs CNI GC with no valid attachments, from a libcni without a cache
// (a runtime that lost it: only the plugin's own GC finds the endpoints).
func (h *cniHost) gc(list *libcni.NetworkConfigList) error {
	fresh := libcni.NewCNIConfigWithCacheDir(h.path, h.t.TempDir(), nil)
	return h.inHost(func() error {
		return fresh.GCNetworkList(context.Background(), list, &libcni.GCArgs{})
	})
}
