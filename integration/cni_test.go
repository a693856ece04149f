package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
	"github.com/ebpfnet/ebpfnet/loader"
)

// Debian's reference plugins (containernetworking-plugins): host-local for
// delegated IPAM, tuning and bandwidth for chaining.
const referencePlugins = "/usr/lib/cni"

var (
	cniBuild    sync.Once
	cniBin      string
	cniBuildErr error
)

// cniPlugin builds cmd/ebpfnet-cni once per test binary.
func cniPlugin(t *testing.T) string {
	t.Helper()
	cniBuild.Do(func() {
		// With the test hooks: a test holds an ADD at a point (EBPFNET_TEST_PAUSE).
		cniBin = filepath.Join(filepath.Dir(ebpfnetBin), "ebpfnet-cni")
		cniBuildErr = testutil.Build(cniBin, "github.com/ebpfnet/ebpfnet/cmd/ebpfnet-cni", true)
	})
	if cniBuildErr != nil {
		t.Fatal(cniBuildErr)
	}
	return cniBin
}

// cniHost is a sandbox host driven the way containerd drives CNI: libcni
// with a plugin dir of its own (ebpfnet, then Debian's plugins), a cache dir
// of its own, and every call made from inside the host's network namespace,
// which the plugins inherit.
type cniHost struct {
	*testutil.Topology
	t        *testing.T
	cni      *libcni.CNIConfig
	path     []string
	hostNS   netnsutil.Namespace
	cacheDir string
}

func newCNIHost(t *testing.T) *cniHost {
	tp := newTopology(t)
	pluginDir := t.TempDir()
	if err := os.Symlink(cniPlugin(t), filepath.Join(pluginDir, "ebpfnet")); err != nil {
		t.Fatal(err)
	}
	h := &cniHost{Topology: tp, t: t, path: []string{pluginDir, referencePlugins}, hostNS: tp.Namespace(tp.Host), cacheDir: t.TempDir()}
	h.cni = libcni.NewCNIConfigWithCacheDir(h.path, h.cacheDir, nil)
	return h
}

// conflist is a network list: ebpfnet with settings merged over this host's
// instance and a subnet, then the chained plugins given.
func (h *cniHost) conflist(version string, settings map[string]any, chained ...map[string]any) *libcni.NetworkConfigList {
	h.t.Helper()
	return h.netList("cninet", version, settings, chained...)
}

// netList is conflist for the network called name.
func (h *cniHost) netList(name, version string, settings map[string]any, chained ...map[string]any) *libcni.NetworkConfigList {
	h.t.Helper()
	plugin := map[string]any{
		"type": "ebpfnet", "subnet": "10.77.0.0/24", "stateDir": h.StateDir, "pinRoot": h.PinRoot,
		"capabilities": map[string]bool{"portMappings": true, "ips": true, "mac": true},
	}
	for k, v := range settings {
		if v == nil {
			delete(plugin, k)
		} else {
			plugin[k] = v
		}
	}
	raw, err := json.Marshal(map[string]any{
		"cniVersion": version, "name": name,
		"plugins": append([]map[string]any{plugin}, chained...),
	})
	if err != nil {
		h.t.Fatal(err)
	}
	list, err := libcni.NetworkConfFromBytes(raw)
	if err != nil {
		h.t.Fatal(err)
	}
	return list
}

// inHost runs fn on a thread in the host namespace: libcni forks the
// plugins from it, so they run there.
func (h *cniHost) inHost(fn func() error) error {
	return netnsutil.Do(h.hostNS, fn)
}

func (h *cniHost) rt(id, netns, ifName string, caps map[string]any) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: id, NetNS: filepath.Join(netnsutil.RunDir, netns), IfName: ifName, CapabilityArgs: caps}
}

func (h *cniHost) add(list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) (*current.Result, error) {
	var res types.Result
	err := h.inHost(func() (err error) {
		res, err = h.cni.AddNetworkList(context.Background(), list, rt)
		return err
	})
	if err != nil {
		return nil, err
	}
	return current.NewResultFromResult(res)
}

func (h *cniHost) mustAdd(list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) *current.Result {
	h.t.Helper()
	r, err := h.add(list, rt)
	if err != nil {
		h.t.Fatalf("ADD %s %s: %v", rt.ContainerID, rt.IfName, err)
	}
	return r
}

func (h *cniHost) del(list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	return h.inHost(func() error { return h.cni.DelNetworkList(context.Background(), list, rt) })
}

func (h *cniHost) mustDel(list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) {
	h.t.Helper()
	if err := h.del(list, rt); err != nil {
		h.t.Fatalf("DEL %s %s: %v", rt.ContainerID, rt.IfName, err)
	}
}

func (h *cniHost) check(list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	return h.inHost(func() error { return h.cni.CheckNetworkList(context.Background(), list, rt) })
}

// ls lists the instance's endpoints through the ebpfnet CLI, as a user sees them.
func (h *cniHost) ls() []map[string]any {
	h.t.Helper()
	var eps []map[string]any
	if err := json.Unmarshal([]byte(h.MustEbpfnet("ls", "-o", "json")), &eps); err != nil {
		h.t.Fatal(err)
	}
	return eps
}

// cniError asserts err is a CNI error (code and msg as the plugin printed
// them) whose message contains want.
func cniError(t *testing.T, err error, want string) *types.Error {
	t.Helper()
	var te *types.Error
	if !errors.As(err, &te) {
		t.Fatalf("want a CNI error containing %q, got %T %v", want, err, err)
	}
	if te.Code == 0 || !strings.Contains(te.Msg+" "+te.Details, want) {
		t.Fatalf("CNI error {code %d, msg %q, details %q}: want a message containing %q", te.Code, te.Msg, te.Details, want)
	}
	return te
}

func resultIP(t *testing.T, r *current.Result) string {
	t.Helper()
	if len(r.IPs) != 1 {
		t.Fatalf("result has %d IPs, want 1: %+v", len(r.IPs), r)
	}
	return r.IPs[0].Address.IP.String()
}

// TestCNIBridgeChainedWithTuningAndBandwidth is the life of two pods: ADD
// through a chain ebpfnet -> tuning -> bandwidth, traffic between them on the
// eBPF path (the host's FORWARD policy is DROP), a published port from
// outside with the client's address kept, masquerade to the outside, CHECK,
// a CHECK that finds a removed veth, and DEL twice.
func TestCNIBridgeChainedWithTuningAndBandwidth(t *testing.T) {
	h := newCNIHost(t)
	h.Exec(h.Host, "iptables", "-P", "FORWARD", "DROP")
	list := h.conflist("1.0.0", nil,
		map[string]any{"type": "tuning", "sysctl": map[string]string{"net.ipv4.ip_unprivileged_port_start": "80"}},
		map[string]any{"type": "bandwidth", "ingressRate": 1_000_000_000, "ingressBurst": 100_000_000, "egressRate": 1_000_000_000, "egressBurst": 100_000_000},
	)
	c1, c2 := h.AddContainer("c1"), h.AddContainer("c2")
	rt1 := h.rt("0123456789abcdef0123-pod1", c1, "eth0", map[string]any{"portMappings": []map[string]any{
		{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
		{"hostPort": 5353, "containerPort": 53, "protocol": "udp"},
	}})
	rt2 := h.rt("0123456789abcdef0123-pod2", c2, "eth0", nil)
	r1, r2 := h.mustAdd(list, rt1), h.mustAdd(list, rt2)
	ip1, ip2 := resultIP(t, r1), resultIP(t, r2)

	// The result: host veth, container interface in its sandbox, address
	// with gateway, default route.
	if len(r1.Interfaces) < 2 || r1.Interfaces[1].Name != "eth0" || r1.Interfaces[1].Sandbox != rt1.NetNS || !strings.HasPrefix(r1.Interfaces[0].Name, "veth") {
		t.Fatalf("interfaces: %+v", r1.Interfaces)
	}
	if gw := r1.IPs[0].Gateway.String(); gw != "10.77.0.1" || *r1.IPs[0].Interface != 1 {
		t.Fatalf("ip config: %+v", r1.IPs[0])
	}
	if len(r1.Routes) == 0 || r1.Routes[0].Dst.String() != "0.0.0.0/0" {
		t.Fatalf("routes: %+v", r1.Routes)
	}
	// tuning ran in the container with ebpfnet's prevResult.
	if got := strings.TrimSpace(h.Exec(c1, "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start")); got != "80" {
		t.Fatalf("tuning did not run: ip_unprivileged_port_start %q", got)
	}

	// from_container on a pinned TCX link, not under a clsact qdisc: the
	// bandwidth plugin put its ingress qdisc on the host veth.
	if pin := filepath.Join(h.PinRoot, "links", r1.Interfaces[0].Name+":"+loader.ProgFromContainer); !exists(pin) {
		t.Errorf("no TCX link pin %s for a CNI endpoint", pin)
	}
	if q := h.Exec(h.Host, "tc", "qdisc", "show", "dev", r1.Interfaces[0].Name); !strings.Contains(q, "qdisc ingress ffff:") {
		t.Errorf("the bandwidth plugin's ingress qdisc is missing:\n%s", q)
	}

	// Ordinary ebpfnet endpoints, keyed by container ID + ifname.
	eps := h.ls()
	if len(eps) != 2 || eps[0]["name"] != "0123456789ab-eth0" || eps[0]["container_id"] != rt1.ContainerID {
		t.Fatalf("ebpfnet ls: %v", eps)
	}

	n1, n2, ext := h.Namespace(c1), h.Namespace(c2), h.Namespace(h.Ext)
	testutil.Serve(t, n1, "c1", ":80")
	testutil.Serve(t, n1, "c1", ":53")
	testutil.Serve(t, h.Namespace(h.Ext), "ext", ":9000")
	for _, proto := range []string{"tcp4", "udp4"} {
		port := map[string]string{"tcp4": ":80", "udp4": ":53"}[proto]
		expect(t, testutil.MustAsk(t, n2, proto, ip1+port), "c1", ip2)
	}
	expect(t, testutil.MustAsk(t, ext, "tcp4", hostAddr+":8080"), "c1", extAddr)
	expect(t, testutil.MustAsk(t, ext, "udp4", hostAddr+":5353"), "c1", extAddr)
	expect(t, testutil.MustAsk(t, n2, "tcp4", extAddr+":9000"), "ext", hostAddr)
	if nat := h.MustEbpfnet("nat", "ls"); !strings.Contains(nat, "8080") {
		t.Fatalf("nat ls lacks the published port:\n%s", nat)
	}

	if err := h.check(list, rt1); err != nil {
		t.Fatalf("CHECK of a healthy pod: %v", err)
	}
	if err := h.check(list, rt2); err != nil {
		t.Fatalf("CHECK of a healthy pod: %v", err)
	}
	h.Exec(h.Host, "ip", "link", "del", r2.Interfaces[0].Name)
	cniError(t, h.check(list, rt2), "host veth "+r2.Interfaces[0].Name+" is missing")

	for range 2 {
		h.mustDel(list, rt2)
		h.mustDel(list, rt1)
	}
	if eps := h.ls(); len(eps) != 0 {
		t.Fatalf("endpoints left after DEL: %v", eps)
	}
	if nat := h.MustEbpfnet("nat", "ls"); strings.Contains(nat, "8080") {
		t.Fatalf("published port left after DEL:\n%s", nat)
	}
}

// TestCNIDelWhenThingsAreGone: DEL succeeds when the namespace, the
// endpoint, or the whole instance is already gone.
func TestCNIDelWhenThingsAreGone(t *testing.T) {
	h := newCNIHost(t)
	list := h.conflist("1.1.0", nil)
	c := h.AddContainer("c")
	rt := h.rt("gone-ns", c, "eth0", nil)
	h.mustAdd(list, rt)
	h.Exec(h.Host, "ip", "netns", "delete", c)
	h.mustDel(list, rt)
	h.mustDel(list, rt)
	if eps := h.ls(); len(eps) != 0 {
		t.Fatalf("endpoints left: %v", eps)
	}
	// Never added, and an instance that never existed: nothing is created.
	empty := h.conflist("1.1.0", map[string]any{"stateDir": filepath.Join(t.TempDir(), "none")})
	h.mustDel(empty, h.rt("never", "nowhere", "eth0", nil))
	if _, err := os.Stat(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Fatal("DEL created a state dir")
	}
}

// TestCNIGCAndStatus: GC with a partial list of valid attachments removes
// the others whose namespace is gone; STATUS is ready, and not ready (code
// 50) when the datapath cannot be loaded.
func TestCNIGCAndStatus(t *testing.T) {
	h := newCNIHost(t)
	list := h.conflist("1.1.0", nil)
	if err := h.inHost(func() error { return h.cni.GetStatusNetworkList(context.Background(), list) }); err != nil {
		t.Fatalf("STATUS: %v", err)
	}
	var rts []*libcni.RuntimeConf
	for _, name := range []string{"a", "b", "c"} {
		rt := h.rt("gc-"+name, h.AddContainer(name), "eth0", nil)
		h.mustAdd(list, rt)
		rts = append(rts, rt)
	}
	// A runtime that lost its libcni cache and pods a and c: only the
	// plugin's own GC can find the stale endpoints.
	testutil.Run(t, "ip", "netns", "delete", filepath.Base(rts[0].NetNS))
	testutil.Run(t, "ip", "netns", "delete", filepath.Base(rts[2].NetNS))
	fresh := libcni.NewCNIConfigWithCacheDir(h.path, t.TempDir(), nil)
	err := h.inHost(func() error {
		return fresh.GCNetworkList(context.Background(), list, &libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: "gc-b", IfName: "eth0"}}})
	})
	if err != nil {
		t.Fatalf("GC: %v", err)
	}
	eps := h.ls()
	if len(eps) != 1 || eps[0]["container_id"] != "gc-b" {
		t.Fatalf("after GC keeping gc-b: %v", eps)
	}
	if err := h.check(list, rts[1]); err != nil {
		t.Fatalf("CHECK of the kept pod: %v", err)
	}
	h.mustDel(list, rts[1])

	broken := h.conflist("1.1.0", map[string]any{"pinRoot": filepath.Join(t.TempDir(), "not-bpffs")})
	err = h.inHost(func() error { return h.cni.GetStatusNetworkList(context.Background(), broken) })
	if te := cniError(t, err, "not on a bpffs"); te.Code != types.ErrPluginNotAvailable {
		t.Fatalf("STATUS code %d, want %d", te.Code, types.ErrPluginNotAvailable)
	}
}

// TestCNIConcurrentAdds: pods started at once get distinct addresses and
// all of them are deleted.
func TestCNIConcurrentAdds(t *testing.T) {
	h := newCNIHost(t)
	list := h.conflist("1.1.0", nil)
	const n = 8
	rts := make([]*libcni.RuntimeConf, n)
	for i := range rts {
		rts[i] = h.rt(fmt.Sprintf("conc-%d", i), h.AddContainer(fmt.Sprintf("p%d", i)), "eth0", nil)
	}
	ips := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range rts {
		wg.Go(func() {
			r, err := h.add(list, rts[i])
			if errs[i] = err; err == nil {
				ips[i] = r.IPs[0].Address.IP.String()
			}
		})
	}
	wg.Wait()
	seen := map[string]int{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("ADD %d: %v", i, err)
		}
		if j, dup := seen[ips[i]]; dup {
			t.Fatalf("pods %d and %d both got %s", j, i, ips[i])
		}
		seen[ips[i]] = i
	}
	if eps := h.ls(); len(eps) != n {
		t.Fatalf("%d endpoints, want %d", len(eps), n)
	}
	for i := range rts {
		wg.Go(func() { errs[i] = h.del(list, rts[i]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if eps := h.ls(); len(eps) != 0 {
		t.Fatalf("endpoints left: %v", eps)
	}
}

// TestCNIDelegatedIPAM: host-local hands out the addresses (and gets them
// back on DEL); the network takes its subnet from it; 0.4.0 callers get a
// 0.4.0 result.
func TestCNIDelegatedIPAM(t *testing.T) {
	h := newCNIHost(t)
	ipamDir := t.TempDir()
	list := h.conflist("0.4.0", map[string]any{"subnet": nil, "ipam": map[string]any{
		"type": "host-local", "dataDir": ipamDir, "ranges": [][]map[string]string{{{"subnet": "10.78.0.0/24", "rangeStart": "10.78.0.100"}}},
	}})
	c1, c2 := h.AddContainer("c1"), h.AddContainer("c2")
	rt1, rt2 := h.rt("ipam-1", c1, "eth0", nil), h.rt("ipam-2", c2, "net1", nil)
	r1, r2 := h.mustAdd(list, rt1), h.mustAdd(list, rt2)
	if ip1, ip2 := resultIP(t, r1), resultIP(t, r2); ip1 != "10.78.0.100" || ip2 != "10.78.0.101" {
		t.Fatalf("addresses %s %s, want host-local's 10.78.0.100 and .101", ip1, ip2)
	}
	if r2.Interfaces[1].Name != "net1" {
		t.Fatalf("CNI_IFNAME ignored: %+v", r2.Interfaces)
	}
	h.Exec(c2, "ip", "link", "show", "net1")
	if net := h.MustEbpfnet("network", "inspect", "cninet"); !strings.Contains(net, "10.78.0.0/24") {
		t.Fatalf("network did not take host-local's subnet:\n%s", net)
	}
	testutil.Serve(t, h.Namespace(c1), "c1", ":80")
	expect(t, testutil.MustAsk(t, h.Namespace(c2), "tcp4", "10.78.0.100:80"), "c1", "10.78.0.101")
	if err := h.check(list, rt2); err != nil {
		t.Fatalf("CHECK: %v", err)
	}
	h.mustDel(list, rt1)
	h.mustDel(list, rt2)
	if _, err := os.Stat(filepath.Join(ipamDir, "cninet", "10.78.0.100")); !os.IsNotExist(err) {
		t.Fatalf("host-local still holds 10.78.0.100 after DEL (%v)", err)
	}
}

// TestCNIBadInput: invalid configs and runtimeConfig get a CNI error (code
// and msg) and change nothing: endpoints, networks, published ports, the
// host's links and the container's links are the same before and after.
func TestCNIBadInput(t *testing.T) {
	h := newCNIHost(t)
	good := h.conflist("1.1.0", nil)
	c := h.AddContainer("c")
	h.mustAdd(good, h.rt("first", c, "eth0", nil))
	other := h.AddContainer("o")
	ports := func(ms ...map[string]any) map[string]any { return map[string]any{"portMappings": ms} }
	tests := []struct {
		name string
		list *libcni.NetworkConfigList
		rt   *libcni.RuntimeConf
		want string
	}{
		{"bad CIDR", h.conflist("1.1.0", map[string]any{"subnet": "10.77.0.0/33"}), h.rt("x", other, "eth0", nil), "subnet"},
		{"subnet differs from the network", h.conflist("1.1.0", map[string]any{"subnet": "10.79.0.0/24"}), h.rt("x", other, "eth0", nil), "exists with other settings"},
		{"masquerade differs", h.conflist("1.1.0", map[string]any{"ipMasq": false}), h.rt("x", other, "eth0", nil), "ip masquerade"},
		{"port 0", good, h.rt("x", other, "eth0", ports(map[string]any{"hostPort": 0, "containerPort": 80, "protocol": "tcp"})), "hostPort 0"},
		{"unknown protocol", good, h.rt("x", other, "eth0", ports(map[string]any{"hostPort": 8080, "containerPort": 80, "protocol": "sctp"})), "must be tcp or udp"},
		{"hostIP not on the host", good, h.rt("x", other, "eth0", ports(map[string]any{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "203.0.113.9"})), "not an address of this host"},
		{"address outside the subnet", good, h.rt("x", other, "eth0", map[string]any{"ips": []string{"10.99.0.5/24"}}), "not a host address"},
		{"multicast MAC", good, h.rt("x", other, "eth0", map[string]any{"mac": "01:00:5e:00:00:01"}), "multicast"},
		{"second ADD of the same ifname", good, h.rt("first", c, "eth0", nil), "already has interface eth0"},
		{"interface exists in the namespace", good, h.rt("y", c, "eth0", nil), "already attached as endpoint first-eth0"},
	}
	snapshot := func() string {
		return h.MustEbpfnet("ls", "-o", "json") + h.MustEbpfnet("network", "ls") + h.MustEbpfnet("nat", "ls") +
			h.Exec(h.Host, "ip", "-o", "link", "show") + h.Exec(c, "ip", "-o", "-4", "addr", "show") + h.Exec(other, "ip", "-o", "link", "show")
	}
	before := snapshot()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.add(tt.list, tt.rt)
			cniError(t, err, tt.want)
			if after := snapshot(); after != before {
				t.Fatalf("state changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
