package dockerdriver

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/ebpfnet/ebpfnet/datapath"
	"github.com/ebpfnet/ebpfnet/datapath/ports"
	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

const captureDir = "../internal/testing/runtimetest/testdata/docker-driver-capture"

type call struct {
	Method   string          `json:"method"`
	Request  json.RawMessage `json:"request"`
	Response json.RawMessage `json:"response"`
	Status   int             `json:"status"`
	file     string
}

func loadCapture(t *testing.T) []call {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(captureDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no capture in %s: %v", captureDir, err)
	}
	slices.Sort(files)
	var out []call
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var c call
		if err := json.Unmarshal(raw, &c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		c.file = filepath.Base(f)
		out = append(out, c)
	}
	return out
}

// testHost is a driver on an instance in a fresh simulated host (netns with
// an uplink); do runs a request on a thread in that namespace.
type testHost struct {
	t    *testing.T
	tp   *testutil.Topology
	ns   netnsutil.Namespace
	inst *datapath.Instance
	h    http.Handler
}

func newTestHost(t *testing.T) *testHost {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	t.Parallel()
	tp := testutil.NewTopology(t, "")
	inst, err := datapath.Open(datapath.Config{StateDir: tp.StateDir, PinRoot: tp.PinRoot})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(inst.Close)
	return &testHost{t: t, tp: tp, ns: tp.Namespace(tp.Host), inst: inst, h: New(inst, nil).Handler()}
}

func (h *testHost) do(method string, body []byte) (int, map[string]any) {
	h.t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/"+method, bytes.NewReader(body))
	if err := netnsutil.Do(h.ns, func() error { h.h.ServeHTTP(rec, req); return nil }); err != nil {
		h.t.Fatal(err)
	}
	var resp map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		h.t.Fatalf("%s: response %q is not JSON: %v", method, rec.Body.String(), err)
	}
	if ct := rec.Header().Get("Content-Type"); ct != ContentType {
		h.t.Errorf("%s: Content-Type %q", method, ct)
	}
	return rec.Code, resp
}

func (h *testHost) inHost(fn func() error) {
	h.t.Helper()
	if err := netnsutil.Do(h.ns, fn); err != nil {
		h.t.Fatal(err)
	}
}

func (h *testHost) links() []string {
	var names []string
	h.inHost(func() error {
		ls, err := netlink.LinkList()
		for _, l := range ls {
			names = append(names, l.Attrs().Name)
		}
		return err
	})
	slices.Sort(names)
	return names
}

// TestReplayCapture replays, in order, every request a real dockerd 20.10
// made in internal/testing/runtimetest's capture (create with options, run with
// published ports, an --internal network, connect, disconnect, rm, network
// rm) and checks each answer and the instance's state between them.
func TestReplayCapture(t *testing.T) {
	h := newTestHost(t)
	before := h.links()
	macs := map[string]string{}
	for _, c := range loadCapture(t) {
		body := []byte(c.Request)
		var s string
		if json.Unmarshal(c.Request, &s) == nil {
			body = []byte(s) // a non-JSON body (empty) is stored as a string
		}
		status, resp := h.do(c.Method, body)
		if status != http.StatusOK {
			t.Fatalf("%s: status %d: %v", c.file, status, resp)
		}
		var req struct {
			NetworkID, EndpointID string
			Interface             struct{ Address, MacAddress string }
		}
		json.Unmarshal(body, &req)
		switch c.Method {
		case "Plugin.Activate", "NetworkDriver.GetCapabilities", "NetworkDriver.EndpointOperInfo":
			var want map[string]any
			json.Unmarshal(c.Response, &want)
			if c.Method == "Plugin.Activate" {
				// Captured before the plugin served IPAM too (ipam.go).
				want = map[string]any{"Implements": []any{"NetworkDriver", "IpamDriver"}}
			}
			if !jsonEqual(resp, want) {
				t.Errorf("%s: got %v, want %v", c.file, resp, want)
			}
		case "NetworkDriver.CreateNetwork":
			d, err := h.inst.InspectNetwork(NetworkName(req.NetworkID))
			if err != nil {
				t.Fatalf("%s: %v", c.file, err)
			}
			if c.file == "03-CreateNetwork.json" {
				// -o ebpfnet.icc=false -o com.docker.network.driver.mtu=1400
				if d.ICC || d.MTU != 1400 || !d.Masquerade || d.Internal || d.Subnet.String() != "172.30.0.0/16" || d.Gateway.String() != "172.30.0.1" || d.Bridge != "br-"+req.NetworkID[:12] {
					t.Errorf("%s: network %+v", c.file, d.Network)
				}
			} else if !d.Internal || d.Subnet.String() != "172.31.0.0/24" {
				t.Errorf("%s: network %+v, want internal 172.31.0.0/24", c.file, d.Network)
			}
		case "NetworkDriver.CreateEndpoint":
			ep, found, err := h.inst.EndpointFor(req.EndpointID, "")
			if err != nil || !found {
				t.Fatalf("%s: endpoint not found: %v", c.file, err)
			}
			p := netip.MustParsePrefix(req.Interface.Address)
			mac, _ := resp["Interface"].(map[string]any)["MacAddress"].(string)
			if ep.IP != p.Addr() || mac == "" || mac != ep.MAC || ep.Name != req.EndpointID[:12] {
				t.Errorf("%s: reply %v, endpoint %+v", c.file, resp, ep)
			}
			macs[req.EndpointID] = mac
		case "NetworkDriver.Join":
			ep, _, _ := h.inst.EndpointFor(req.EndpointID, "")
			in, _ := resp["InterfaceName"].(map[string]any)
			if in["DstPrefix"] != "eth" || in["SrcName"] != ep.PeerName {
				t.Errorf("%s: InterfaceName %v, want SrcName %s", c.file, in, ep.PeerName)
			}
			// The container end waits in the host namespace with its MAC.
			h.inHost(func() error {
				l, err := netlink.LinkByName(ep.PeerName)
				if err != nil {
					return err
				}
				if l.Attrs().HardwareAddr.String() != macs[req.EndpointID] {
					t.Errorf("%s: %s has MAC %s, want %s", c.file, ep.PeerName, l.Attrs().HardwareAddr, macs[req.EndpointID])
				}
				return nil
			})
			wantGW := "172.30.0.1"
			if c.file == "17-Join.json" {
				wantGW = "" // --internal: no default route
			}
			if gw, _ := resp["Gateway"].(string); gw != wantGW {
				t.Errorf("%s: Gateway %q, want %q", c.file, gw, wantGW)
			}
			if !strings.HasPrefix(ep.Netns, "/tmp/") {
				t.Errorf("%s: sandbox not recorded: %q", c.file, ep.Netns)
			}
		case "NetworkDriver.ProgramExternalConnectivity":
			ep, _, _ := h.inst.EndpointFor(req.EndpointID, "")
			var got []string
			for _, p := range ep.Ports {
				got = append(got, p.String())
			}
			slices.Sort(got)
			var want []string
			if c.file == "06-ProgramExternalConnectivity.json" {
				want = []string{"80/tcp -> 0.0.0.0:8080", "9000/udp -> 0.0.0.0:9000", "9001/udp -> 0.0.0.0:9001"}
			} else {
				// 9100-9102:90 takes the first free port of the range;
				// 127.0.0.1::81 an ephemeral one on loopback.
				if len(got) != 2 || !strings.HasPrefix(got[0], "81/tcp -> 127.0.0.1:") || got[1] != "90/tcp -> 0.0.0.0:9100" {
					t.Errorf("%s: ports %v", c.file, got)
				}
				break
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: ports %v, want %v", c.file, got, want)
			}
			bs, err := h.inst.PortEntries()
			if err != nil || len(bs) != 3 {
				t.Errorf("%s: datapath has %v (%v)", c.file, bs, err)
			}
		case "NetworkDriver.RevokeExternalConnectivity":
			ep, _, _ := h.inst.EndpointFor(req.EndpointID, "")
			if len(ep.Ports) != 0 {
				t.Errorf("%s: ports left: %v", c.file, ep.Ports)
			}
		case "NetworkDriver.DeleteEndpoint":
			if _, found, _ := h.inst.EndpointFor(req.EndpointID, ""); found {
				t.Errorf("%s: endpoint still there", c.file)
			}
		}
	}
	// Everything is gone: records, interfaces, pins.
	if eps, _ := h.inst.Endpoints(); len(eps) != 0 {
		t.Errorf("endpoints left: %v", eps)
	}
	if ns, _ := h.inst.Networks(); len(ns) != 0 {
		t.Errorf("networks left: %v", ns)
	}
	if after := h.links(); !slices.Equal(before, after) {
		t.Errorf("links before %v, after %v", before, after)
	}
	if _, err := os.Stat(h.tp.PinRoot); !os.IsNotExist(err) {
		t.Errorf("pins left in %s: %v", h.tp.PinRoot, err)
	}
	// Docker repeats deletes after restarts: unknown IDs are no error.
	for _, m := range []string{"DeleteEndpoint", "Leave", "RevokeExternalConnectivity"} {
		if st, resp := h.do("NetworkDriver."+m, []byte(`{"NetworkID":"0123456789abcdef","EndpointID":"fedcba9876543210"}`)); st != 200 {
			t.Errorf("%s of an unknown endpoint: %d %v", m, st, resp)
		}
	}
	if st, resp := h.do("NetworkDriver.DeleteNetwork", []byte(`{"NetworkID":"0123456789abcdef"}`)); st != 200 {
		t.Errorf("DeleteNetwork of an unknown network: %d %v", st, resp)
	}
}

func jsonEqual(a, b any) bool {
	ra, _ := json.Marshal(a)
	rb, _ := json.Marshal(b)
	return bytes.Equal(ra, rb)
}

// TestRefusals: what ebpfnet cannot do is refused with a message Docker
// shows, and changes nothing.
func TestRefusals(t *testing.T) {
	h := newTestHost(t)
	net := func(generic string, extra string) []byte {
		return []byte(`{"NetworkID":"aaaabbbbccccdddd0000","Options":{"com.docker.network.generic":{` + generic + `}` + extra + `},` +
			`"IPv4Data":[{"AddressSpace":"LocalDefault","Gateway":"10.99.0.1/24","Pool":"10.99.0.0/24"}],"IPv6Data":[]}`)
	}
	tests := []struct {
		method string
		body   []byte
		status int
		want   string
	}{
		{"NetworkDriver.CreateNetwork", net(`"ebpfnet.icc":"maybe"`, ""), 400, `invalid option ebpfnet.icc="maybe": want true or false`},
		{"NetworkDriver.CreateNetwork", net(`"com.docker.network.driver.mtu":"big"`, ""), 400, "want a number"},
		{"NetworkDriver.CreateNetwork", net(`"com.docker.network.driver.mtu":"40"`, ""), 500, "invalid MTU 40"},
		{"NetworkDriver.CreateNetwork", net(`"ebpfnet.colour":"blue"`, ""), 400, "option ebpfnet.colour is not supported by ebpfnet"},
		{"NetworkDriver.CreateNetwork", net(`"com.docker.network.bridge.host_binding_ipv4":"1.2.3.4"`, ""), 400, "not supported"},
		{"NetworkDriver.CreateNetwork", net(`"ebpfnet.uplink":"nope0"`, ""), 500, "uplink nope0: no such interface"},
		{"NetworkDriver.CreateNetwork", net(``, `,"com.docker.network.enable_ipv6":"maybe"`), 400, "option com.docker.network.enable_ipv6: want true or false"},
		{"NetworkDriver.CreateNetwork", []byte(`{"NetworkID":"aaaabbbbccccdddd0000","Options":{"com.docker.network.enable_ipv6":true},` +
			`"IPv4Data":[{"Pool":"10.99.0.0/24"}],"IPv6Data":[{"Pool":"fd00:1::/64"},{"Pool":"fd00:2::/64"}]}`), 400, "one IPv6 subnet per network"},
		{"NetworkDriver.CreateNetwork", []byte(`{"NetworkID":"aaaabbbbccccdddd0000","Options":{"com.docker.network.enable_ipv6":true},` +
			`"IPv4Data":[{"Pool":"10.99.0.0/24"}],"IPv6Data":[{"Pool":"fe80::/64"}]}`), 500, "not a unicast prefix"},
		{"NetworkDriver.CreateNetwork", net(`"com.docker.network.bridge.name":"this-name-is-too-long"`, ""), 500, "bridge name"},
		{"NetworkDriver.CreateNetwork", []byte(`{"NetworkID":`), 400, "bad request"},
		{"NetworkDriver.CreateEndpoint", []byte(`{"NetworkID":"aaaabbbbccccdddd0000","EndpointID":"eeee0000","Interface":{"Address":"10.99.0.2/24"}}`), 500, "network aaaabbbbcccc not found"},
		{"NetworkDriver.Join", []byte(`{"NetworkID":"aaaabbbbccccdddd0000","EndpointID":"eeee0000"}`), 500, "endpoint eeee0000 not found"},
		{"NetworkDriver.AllocateNetwork", []byte(`{}`), 404, "ebpfnet does not implement NetworkDriver.AllocateNetwork"},
		{"IpamDriver.RequestPool", []byte(`{}`), 400, "give one with --ipam-opt ebpfnet.overlay=NAME"},
		{"IpamDriver.RequestPool", []byte(`{"Options":{"ebpfnet.overlay":"ov1"}}`), 400, "run docker-plugin with --cluster-store"},
		{"IpamDriver.RequestPool", []byte(`{"V6":true,"Options":{"ebpfnet.overlay":"ov1"}}`), 400, "overlay networks, which are IPv4-only"},
		{"IpamDriver.RequestAddress", []byte(`{"PoolID":"elsewhere"}`), 400, "unknown pool"},
		{"IpamDriver.RequestAddress", []byte(`{"PoolID":"ebpfnet-overlay/ov1"}`), 400, "run docker-plugin with --cluster-store"},
		{"NetworkDriver.CreateNetwork", []byte(`{"NetworkID":"aaaabbbbccccdddd0000","Options":{},"IPv4Data":[{"AddressSpace":"ebpfnet-local","Pool":"10.210.0.0/24"}]}`), 400, "run docker-plugin with --cluster-store"},
	}
	before := h.links()
	for _, tt := range tests {
		status, resp := h.do(tt.method, tt.body)
		msg, _ := resp["Err"].(string)
		if status != tt.status || !strings.Contains(msg, tt.want) || !strings.HasPrefix(msg, "ebpfnet") {
			t.Errorf("%s %s: %d %q, want %d with %q", tt.method, tt.body, status, msg, tt.status, tt.want)
		}
	}
	if ns, _ := h.inst.Networks(); len(ns) != 0 {
		t.Errorf("a refused request made networks: %v", ns)
	}
	if after := h.links(); !slices.Equal(before, after) {
		t.Errorf("a refused request changed links: %v -> %v", before, after)
	}

	// On a network: a taken address, a port clash, a bad protocol, ports on
	// an --internal network; each leaves the endpoints as they were.
	if st, resp := h.do("NetworkDriver.CreateNetwork", net(`"ebpfnet.icc":"false"`, "")); st != 200 {
		t.Fatalf("create: %v", resp)
	}
	ep := func(id, addr string) []byte {
		return []byte(`{"NetworkID":"aaaabbbbccccdddd0000","EndpointID":"` + id + `","Interface":{"Address":"` + addr + `","MacAddress":"02:00:00:00:00:07"}}`)
	}
	if st, resp := h.do("NetworkDriver.CreateEndpoint", ep("e1e1e1e1e1e1e1", "10.99.0.7/24")); st != 200 || !jsonEqual(resp, map[string]any{"Interface": map[string]any{}}) {
		t.Fatalf("create endpoint with a MAC: %d %v (want no MAC back)", st, resp)
	}
	pec := func(id, portmap string) []byte {
		return []byte(`{"NetworkID":"aaaabbbbccccdddd0000","EndpointID":"` + id + `","Options":{"com.docker.network.portmap":[` + portmap + `]}}`)
	}
	if st, resp := h.do("NetworkDriver.ProgramExternalConnectivity", pec("e1e1e1e1e1e1e1", `{"Proto":6,"Port":80,"HostIP":"","HostPort":8080,"HostPortEnd":8080}`)); st != 200 {
		t.Fatalf("publish: %v", resp)
	}
	more := []struct {
		method string
		body   []byte
		want   string
	}{
		{"NetworkDriver.CreateEndpoint", ep("e2e2e2e2e2e2e2", "10.99.0.7/24"), "address 10.99.0.7 is already in use by e1e1e1e1e1e1"},
		{"NetworkDriver.CreateEndpoint", ep("e3e3e3e3e3e3e3", "10.99.0.1/24"), "is the gateway"},
		{"NetworkDriver.ProgramExternalConnectivity", pec("e1e1e1e1e1e1e1", `{"Proto":6,"Port":81,"HostIP":"","HostPort":8080,"HostPortEnd":8080}`), "port 8080/tcp on 0.0.0.0 is already published by endpoint e1e1e1e1e1e1"},
		{"NetworkDriver.ProgramExternalConnectivity", pec("e1e1e1e1e1e1e1", `{"Proto":132,"Port":81,"HostIP":"","HostPort":81,"HostPortEnd":81}`), "sctp"},
		{"NetworkDriver.ProgramExternalConnectivity", pec("e1e1e1e1e1e1e1", `{"Proto":6,"Port":81,"HostIP":"192.0.2.9","HostPort":81,"HostPortEnd":81}`), "host address 192.0.2.9 is not an address of this host"},
		{"NetworkDriver.ProgramExternalConnectivity", pec("e1e1e1e1e1e1e1", `{"Proto":6,"Port":81,"HostIP":"","HostPort":8080,"HostPortEnd":8080},{"Proto":6,"Port":82,"HostIP":"","HostPort":0,"HostPortEnd":0}`), "already published"},
	}
	for _, tt := range more {
		status, resp := h.do(tt.method, tt.body)
		msg, _ := resp["Err"].(string)
		if status == 200 || !strings.Contains(msg, tt.want) {
			t.Errorf("%s %s: %d %q, want an error with %q", tt.method, tt.body, status, msg, tt.want)
		}
	}
	eps, _ := h.inst.Endpoints()
	if len(eps) != 1 || len(eps[0].Ports) != 1 || eps[0].MAC != "02:00:00:00:00:07" {
		t.Errorf("endpoints after refusals: %+v", eps)
	}
	if bs, _ := h.inst.PortEntries(); len(bs) != 1 {
		t.Errorf("datapath ports after refusals: %v", bs)
	}
	// A repeated ProgramExternalConnectivity is no conflict with itself.
	if st, resp := h.do("NetworkDriver.ProgramExternalConnectivity", pec("e1e1e1e1e1e1e1", `{"Proto":6,"Port":80,"HostIP":"","HostPort":8080,"HostPortEnd":8080}`)); st != 200 {
		t.Errorf("repeated publish: %v", resp)
	}
	// The network cannot go while the endpoint is there.
	if st, resp := h.do("NetworkDriver.DeleteNetwork", []byte(`{"NetworkID":"aaaabbbbccccdddd0000"}`)); st == 200 || !strings.Contains(resp["Err"].(string), "has attached endpoints") {
		t.Errorf("delete busy network: %d %v", st, resp)
	}
	for _, m := range []string{"RevokeExternalConnectivity", "Leave", "DeleteEndpoint"} {
		if st, resp := h.do("NetworkDriver."+m, []byte(`{"NetworkID":"aaaabbbbccccdddd0000","EndpointID":"e1e1e1e1e1e1e1"}`)); st != 200 {
			t.Errorf("%s: %v", m, resp)
		}
	}
	if st, resp := h.do("NetworkDriver.DeleteNetwork", []byte(`{"NetworkID":"aaaabbbbccccdddd0000"}`)); st != 200 {
		t.Errorf("delete network: %v", resp)
	}
}

func TestPortRequests(t *testing.T) {
	got, v6, err := PortRequests([]dockerPortBinding{
		{Proto: 6, Port: 80, HostIP: "::", HostPort: 8080, HostPortEnd: 8080}, // before its IPv4 twin
		{Proto: 6, Port: 80, HostPort: 8080, HostPortEnd: 8080},
		{Proto: 17, Port: 53, HostIP: "0.0.0.0", HostPort: 0},
		{Proto: 17, Port: 53, HostIP: "::", HostPort: 0},
		{Proto: 6, Port: 90, HostIP: "127.0.0.1", HostPort: 9100, HostPortEnd: 9102},
		{Proto: 6, Port: 91, HostIP: "::", HostPort: 9191, HostPortEnd: 9191}, // alone
		{Proto: 6, Port: 92, HostIP: "::ffff:127.0.0.1", HostPort: 9292},
		{Proto: 6, Port: 93, HostIP: "0.0.0.0", HostPort: 9393},     // IPv4 only (Docker 28)
		{Proto: 6, Port: 94, HostIP: "2001:db8::1", HostPort: 9494}, // one IPv6 address
	})
	if err != nil {
		t.Fatal(err)
	}
	v4any, v6any := netip.IPv4Unspecified(), netip.IPv6Unspecified()
	want := []ports.Request{
		{Mapping: ports.Mapping{Proto: ports.TCP, HostPort: 8080, ContainerPort: 80}, HostPortEnd: 8080},
		{Mapping: ports.Mapping{Proto: ports.UDP, ContainerPort: 53}},
		{Mapping: ports.Mapping{Proto: ports.TCP, HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 9100, ContainerPort: 90}, HostPortEnd: 9102},
		{Mapping: ports.Mapping{Proto: ports.TCP, HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 9292, ContainerPort: 92}},
		{Mapping: ports.Mapping{Proto: ports.TCP, HostIP: v4any, HostPort: 9393, ContainerPort: 93}},
		{Mapping: ports.Mapping{Proto: ports.TCP, HostIP: netip.MustParseAddr("2001:db8::1"), HostPort: 9494, ContainerPort: 94}},
		{Mapping: ports.Mapping{Proto: ports.TCP, HostIP: v6any, HostPort: 9191, ContainerPort: 91}, HostPortEnd: 9191},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if len(v6) != 2 || v6[0].Port != 80 || v6[1].Port != 53 {
		t.Errorf("IPv6 wildcard bindings merged %+v, want those of 80 and 53", v6)
	}
	for _, bad := range []dockerPortBinding{{Proto: 1, Port: 80}, {Proto: 6, Port: 0}, {Proto: 6, Port: 80, HostIP: "fe80::1"}, {Proto: 6, Port: 80, HostIP: "ff02::1"},
		{Proto: 6, Port: 80, HostIP: "x"}, {Proto: 6, Port: 80, HostPort: 70000}, {Proto: 132, Port: 80, HostIP: "::"}} {
		if _, _, err := PortRequests([]dockerPortBinding{bad}); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
