package integration

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
	"github.com/ebpfnet/ebpfnet/internal/testing/etcdtest"
	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

// cniOverlayHost drives the CNI plugin on an overlay host as kubelet's
// runtime would: libcni, from inside the host's namespace.
type cniOverlayHost struct {
	*ovHost
	cni *libcni.CNIConfig
}

func newCNIOverlayHost(t *testing.T, h *ovHost) *cniOverlayHost {
	pluginDir := t.TempDir()
	if err := os.Symlink(cniPlugin(t), filepath.Join(pluginDir, "ebpfnet")); err != nil {
		t.Fatal(err)
	}
	return &cniOverlayHost{ovHost: h, cni: libcni.NewCNIConfigWithCacheDir([]string{pluginDir, referencePlugins}, t.TempDir(), nil)}
}

// list is the overlay network podnet of this host's cluster, with settings
// over the defaults.
func (h *cniOverlayHost) list(settings map[string]any) *libcni.NetworkConfigList {
	h.t.Helper()
	plugin := map[string]any{"type": "ebpfnet", "driver": "overlay", "clusterStore": h.store, "subnet": "10.250.0.0/16",
		"stateDir": h.state, "pinRoot": h.pinRoot}
	for k, v := range settings {
		plugin[k] = v
	}
	raw, err := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "podnet", "plugins": []any{plugin}})
	if err != nil {
		h.t.Fatal(err)
	}
	l, err := libcni.NetworkConfFromBytes(raw)
	if err != nil {
		h.t.Fatal(err)
	}
	return l
}

func (h *cniOverlayHost) rt(id, netns, pod string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: id, NetNS: filepath.Join(netnsutil.RunDir, netns), IfName: "eth0",
		Args: [][2]string{{"K8S_POD_NAMESPACE", "default"}, {"K8S_POD_NAME", pod}}}
}

func (h *cniOverlayHost) add(l *libcni.NetworkConfigList, rt *libcni.RuntimeConf) (*current.Result, error) {
	var res *current.Result
	err := netnsutil.Do(namespace(h.t, h.ns), func() error {
		r, err := h.cni.AddNetworkList(context.Background(), l, rt)
		if err == nil {
			res, err = current.NewResultFromResult(r)
		}
		return err
	})
	return res, err
}

// addPod makes a pod namespace named name and ADDs it on h as pod, and
// returns the namespace and the pod's address.
func (h *cniOverlayHost) addPod(c *etcdtest.Cluster, settings map[string]any, name, pod string) (netnsutil.Namespace, string) {
	h.t.Helper()
	nsName, ns := container(h.t, c, name)
	res, err := h.add(h.list(settings), h.rt("ctr-"+name, nsName, pod))
	if err != nil {
		h.t.Fatalf("ADD %s on host %d: %v", name, h.i, err)
	}
	return ns, res.IPs[0].Address.IP.String()
}

func (h *cniOverlayHost) del(l *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	return netnsutil.Do(namespace(h.t, h.ns), func() error { return h.cni.DelNetworkList(context.Background(), l, rt) })
}

// TestCNIOverlayAcrossHosts: pods of two hosts on one overlay network,
// attached by the CNI plugin, reach each other over ebpfnet's VXLAN with
// addresses from the cluster; the first ADD makes the network in the
// cluster; DEL gives the address back; a config that disagrees with the
// cluster's network is refused.
func TestCNIOverlayAcrossHosts(t *testing.T) {
	t.Parallel()
	c, ovs := newOverlayHosts(t, 2)
	var hs []*cniOverlayHost
	for _, h := range ovs {
		h.startDaemon()
		hs = append(hs, newCNIOverlayHost(t, h))
	}
	nsA, a := container(t, c, "a")
	nsB, b := container(t, c, "b")
	rtA, rtB := hs[0].rt("ctr-a", nsA, "web"), hs[1].rt("ctr-b", nsB, "client")
	resA, err := hs[0].add(hs[0].list(nil), rtA)
	if err != nil {
		t.Fatalf("ADD on host 1: %v", err)
	}
	resB, err := hs[1].add(hs[1].list(nil), rtB)
	if err != nil {
		t.Fatalf("ADD on host 2: %v", err)
	}
	ipA, ipB := resA.IPs[0].Address.IP.String(), resB.IPs[0].Address.IP.String()
	t.Logf("a %s (host 1), b %s (host 2)", ipA, ipB)
	if !strings.HasPrefix(ipA, "10.250.") || !strings.HasPrefix(ipB, "10.250.") || ipA == ipB {
		t.Fatalf("addresses %s and %s: want two of 10.250.0.0/16", ipA, ipB)
	}
	if out := hs[0].must("network", "ls"); !strings.Contains(out, "podnet") || !strings.Contains(out, "overlay") {
		t.Errorf("host 1's network ls lacks the overlay network podnet:\n%s", out)
	}
	if out := hs[0].must("ls"); !strings.Contains(out, "default/web") {
		t.Errorf("host 1's ls does not show the pod as default/web:\n%s", out)
	}

	testutil.Serve(t, a, "a", ":7000")
	for _, network := range []string{"tcp4", "udp4"} {
		if r := askEventually(t, b, network, net.JoinHostPort(ipA, "7000")); r.Server != "a" || r.Source != ipB {
			t.Errorf("%s b -> a: reply %+v, want a seeing %s", network, r, ipB)
		}
	}

	// The cluster's network is the cluster's: another subnet is refused.
	nsC, _ := container(t, c, "c")
	if _, err := hs[1].add(hs[1].list(map[string]any{"subnet": "10.251.0.0/16"}), hs[1].rt("ctr-c", nsC, "c")); err == nil ||
		!strings.Contains(err.Error(), "exists with subnet 10.250.0.0/16") {
		t.Errorf("ADD with another subnet: %v", err)
	}

	// DEL gives the address back: host 2 forgets it.
	if err := hs[0].del(hs[0].list(nil), rtA); err != nil {
		t.Fatalf("DEL on host 1: %v", err)
	}
	waitUntil(t, 10*time.Second, "host 2 forgetting a's address", func() bool { return !strings.Contains(hs[1].remoteIPs(), ipA) })
	if err := hs[0].del(hs[0].list(nil), rtA); err != nil {
		t.Errorf("second DEL: %v", err)
	}
	if err := hs[1].del(hs[1].list(nil), rtB); err != nil {
		t.Errorf("DEL on host 2: %v", err)
	}
}
