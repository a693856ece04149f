package dockerdriver

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/ebpfnet/ebpfnet/datapath"
)

// dualStackNetwork is a CreateNetwork request as dockerd sends it for
// `docker network create --ipv6 --subnet <v4> --subnet <v6>` (v6 "": no
// IPv6Data), with extra options appended.
func dualStackNetwork(id, v4, v6, extra string) []byte {
	gw4 := strings.TrimSuffix(v4, "0/24") + "1/24"
	v6Data := ""
	if v6 != "" {
		v6Data = fmt.Sprintf(`{"AddressSpace":"LocalDefault","Gateway":"%s1/64","Pool":"%s"}`, strings.TrimSuffix(v6, "/64"), v6)
	}
	return fmt.Appendf(nil, `{"NetworkID":"%s","Options":{"com.docker.network.enable_ipv6":true,"com.docker.network.generic":{}%s},`+
		`"IPv4Data":[{"AddressSpace":"LocalDefault","Gateway":"%s","Pool":"%s"}],"IPv6Data":[%s]}`, id, extra, gw4, v4, v6Data)
}

func endpointBody(net, id, addr, addr6, mac string) []byte {
	return fmt.Appendf(nil, `{"NetworkID":"%s","EndpointID":"%s","Interface":{"Address":"%s","AddressIPv6":"%s","MacAddress":"%s"},"Options":{}}`,
		net, id, addr, addr6, mac)
}

// check runs CheckEndpoint in the host's namespace, where the veths are.
func (h *testHost) check(ep datapath.Endpoint) (problems []string, err error) {
	h.inHost(func() error {
		problems, err = h.inst.CheckEndpoint(ep)
		return nil
	})
	return problems, err
}

func (h *testHost) sysctl(path string) string {
	h.t.Helper()
	var v string
	h.inHost(func() error {
		b, err := os.ReadFile(path)
		v = strings.TrimSpace(string(b))
		return err
	})
	return v
}

// TestDualStack: `docker network create --ipv6` as dockerd asks it: the
// network gets Docker's IPv6 pool and gateway, endpoints the IPv6 address
// Docker's IPAM chose (or one the driver chooses and tells Docker), in the
// datapath with their EUI-64 link-local address, Join the IPv6 gateway; a
// [::] port binding is published on IPv4 once; all of it goes again.
func TestDualStack(t *testing.T) {
	h := newTestHost(t)
	const netID = "d6d6d6d6d6d6d6d6d6d6"
	if st, resp := h.do("NetworkDriver.CreateNetwork", dualStackNetwork(netID, "10.98.0.0/24", "fd00:98::/64", "")); st != 200 {
		t.Fatalf("create dual-stack network: %d %v", st, resp)
	}
	n, err := h.inst.InspectNetwork(NetworkName(netID))
	if err != nil {
		t.Fatal(err)
	}
	if n.Subnet.String() != "10.98.0.0/24" || n.Subnet6.String() != "fd00:98::/64" || n.Gateway6.String() != "fd00:98::1" {
		t.Fatalf("network %+v, want fd00:98::/64 with gateway fd00:98::1", n.Network)
	}
	h.inHost(func() error {
		br, err := netlink.LinkByName(n.Bridge)
		if err != nil {
			return err
		}
		addrs, err := netlink.AddrList(br, netlink.FAMILY_V6)
		for _, a := range addrs {
			if a.IPNet.String() == "fd00:98::1/64" {
				return err
			}
		}
		t.Errorf("bridge %s lacks fd00:98::1/64: %v", n.Bridge, addrs)
		return err
	})

	// Docker's IPAM chose the address: the reply has only the MAC.
	const e1, e2 = "e1e1e1e1e1e1e1e1", "e2e2e2e2e2e2e2e2"
	st, resp := h.do("NetworkDriver.CreateEndpoint", endpointBody(netID, e1, "10.98.0.2/24", "fd00:98::2/64", ""))
	if st != 200 {
		t.Fatalf("create endpoint: %d %v", st, resp)
	}
	ep1, _, _ := h.inst.EndpointFor(e1, "")
	if iface := resp["Interface"].(map[string]any); iface["MacAddress"] != ep1.MAC || iface["AddressIPv6"] != nil {
		t.Errorf("create endpoint reply %v, want the MAC %s alone", resp, ep1.MAC)
	}
	if ep1.IP6.String() != "fd00:98::2" {
		t.Errorf("endpoint's IPv6 address %s, want fd00:98::2", ep1.IP6)
	}
	// The datapath's IPv6 entries: its address for its veth, and both
	// its addresses (global, EUI-64 link-local) delivering to it.
	if problems, err := h.check(ep1); err != nil || len(problems) != 0 {
		t.Errorf("CheckEndpoint: %v %v", problems, err)
	}
	if fwd := h.sysctl("/proc/sys/net/ipv6/conf/" + ep1.HostVeth + "/forwarding"); fwd != "1" {
		t.Errorf("%s forwards IPv6: %q, want 1 (else bpf_fib_lookup fails)", ep1.HostVeth, fwd)
	}

	// Docker repeats itself: the same answer; another address is refused.
	if st, resp := h.do("NetworkDriver.CreateEndpoint", endpointBody(netID, e1, "10.98.0.2/24", "fd00:98::2/64", "")); st != 200 || resp["Interface"].(map[string]any)["MacAddress"] != ep1.MAC {
		t.Errorf("repeated create endpoint: %d %v", st, resp)
	}
	if st, resp := h.do("NetworkDriver.CreateEndpoint", endpointBody(netID, e1, "10.98.0.2/24", "fd00:98::9/64", "")); st == 200 || !strings.Contains(resp["Err"].(string), "exists with address 10.98.0.2 and fd00:98::2") {
		t.Errorf("create endpoint again with another IPv6 address: %d %v", st, resp)
	}
	if st, resp := h.do("NetworkDriver.CreateEndpoint", endpointBody(netID, "e3e3e3e3e3e3e3e3", "10.98.0.3/24", "fd00:98::2/64", "")); st == 200 || !strings.Contains(resp["Err"].(string), "address fd00:98::2 is already in use by e1e1e1e1e1e1") {
		t.Errorf("create endpoint with a taken IPv6 address: %d %v", st, resp)
	}
	for _, bad := range []string{"fd00:99::2/64", "fd00:98::1/64", "10.98.0.9/24", "nonsense"} {
		if st, resp := h.do("NetworkDriver.CreateEndpoint", endpointBody(netID, "e4e4e4e4e4e4e4e4", "10.98.0.4/24", bad, "")); st == 200 {
			t.Errorf("create endpoint with IPv6 address %s: accepted %v", bad, resp)
		}
	}

	// No IPv6 address from Docker: the driver's, in the reply.
	st, resp = h.do("NetworkDriver.CreateEndpoint", endpointBody(netID, e2, "10.98.0.3/24", "", "02:42:0a:62:00:03"))
	if st != 200 {
		t.Fatalf("create endpoint without an IPv6 address: %d %v", st, resp)
	}
	if !jsonEqual(resp, map[string]any{"Interface": map[string]any{"AddressIPv6": "fd00:98::3/64"}}) {
		t.Errorf("create endpoint without an IPv6 address: reply %v, want AddressIPv6 fd00:98::3/64 alone", resp)
	}
	ep2, _, _ := h.inst.EndpointFor(e2, "")
	if ep2.IP6.String() != "fd00:98::3" || ep2.MAC != "02:42:0a:62:00:03" {
		t.Errorf("endpoint 2: %+v", ep2)
	}

	// Join: both gateways.
	st, resp = h.do("NetworkDriver.Join", fmt.Appendf(nil, `{"NetworkID":"%s","EndpointID":"%s","SandboxKey":"/tmp/sb1"}`, netID, e1))
	if st != 200 || resp["Gateway"] != "10.98.0.1" || resp["GatewayIPv6"] != "fd00:98::1" {
		t.Errorf("join: %d %v, want Gateway 10.98.0.1 and GatewayIPv6 fd00:98::1", st, resp)
	}

	// Ports (Docker 28): a [::] binding beside its 0.0.0.0 twin is
	// published once on every address, one alone on IPv6 only; one IPv6
	// address is published there, if the host holds it.
	pec := func(portmap string) []byte {
		return fmt.Appendf(nil, `{"NetworkID":"%s","EndpointID":"%s","Options":{"com.docker.network.portmap":[%s]}}`, netID, e1, portmap)
	}
	if st, resp := h.do("NetworkDriver.ProgramExternalConnectivity", pec(
		`{"Proto":6,"Port":80,"HostIP":"0.0.0.0","HostPort":8080,"HostPortEnd":8080},{"Proto":6,"Port":80,"HostIP":"::","HostPort":8080,"HostPortEnd":8080},`+
			`{"Proto":17,"Port":53,"HostIP":"::","HostPort":5353,"HostPortEnd":5353},{"Proto":6,"Port":81,"HostIP":"::1","HostPort":8081,"HostPortEnd":8081}`)); st != 200 {
		t.Fatalf("publish with [::] bindings: %d %v", st, resp)
	}
	ep1, _, _ = h.inst.EndpointFor(e1, "")
	var got []string
	for _, p := range ep1.Ports {
		got = append(got, p.String())
	}
	if want := "80/tcp -> 0.0.0.0:8080,81/tcp -> [::1]:8081,53/udp -> [::]:5353"; strings.Join(got, ",") != want {
		t.Errorf("published %v, want %s", got, want)
	}
	if st, resp := h.do("NetworkDriver.ProgramExternalConnectivity", pec(`{"Proto":6,"Port":82,"HostIP":"2001:db8:ff::1","HostPort":8082,"HostPortEnd":8082}`)); st == 200 || !strings.Contains(fmt.Sprint(resp["Err"]), "not an address of this host") {
		t.Errorf("publish on 2001:db8:ff::1: %d %v, want a refusal", st, resp)
	}
	if st, resp := h.do("NetworkDriver.RevokeExternalConnectivity", pec("")); st != 200 {
		t.Errorf("revoke: %v", resp)
	}

	// An --internal dual-stack network: no default route of either family.
	const intID = "d7d7d7d7d7d7d7d7d7d7"
	if st, resp := h.do("NetworkDriver.CreateNetwork", dualStackNetwork(intID, "10.97.0.0/24", "fd00:97::/64", `,"com.docker.network.internal":true`)); st != 200 {
		t.Fatalf("create internal dual-stack network: %d %v", st, resp)
	}
	const e5 = "e5e5e5e5e5e5e5e5"
	if st, resp := h.do("NetworkDriver.CreateEndpoint", endpointBody(intID, e5, "10.97.0.2/24", "fd00:97::2/64", "")); st != 200 {
		t.Fatalf("create endpoint on the internal network: %d %v", st, resp)
	}
	if st, resp := h.do("NetworkDriver.Join", fmt.Appendf(nil, `{"NetworkID":"%s","EndpointID":"%s"}`, intID, e5)); st != 200 || resp["Gateway"] != nil || resp["GatewayIPv6"] != nil {
		t.Errorf("join on an internal network: %d %v, want no gateways", st, resp)
	}

	// --ipv6 with no IPv6 pool from Docker's IPAM: a unique local /64, and
	// the endpoints' addresses in the replies.
	const ulaID = "d8d8d8d8d8d8d8d8d8d8"
	if st, resp := h.do("NetworkDriver.CreateNetwork", dualStackNetwork(ulaID, "10.96.0.0/24", "", "")); st != 200 {
		t.Fatalf("create dual-stack network without an IPv6 pool: %d %v", st, resp)
	}
	ula, _ := h.inst.InspectNetwork(NetworkName(ulaID))
	if !netip.MustParsePrefix("fd00::/8").Contains(ula.Subnet6.Addr()) || ula.Subnet6.Bits() != 64 {
		t.Errorf("network without an IPv6 pool has subnet %s, want a unique local /64", ula.Subnet6)
	}
	const e6 = "e6e6e6e6e6e6e6e6"
	st, resp = h.do("NetworkDriver.CreateEndpoint", endpointBody(ulaID, e6, "10.96.0.2/24", "", ""))
	want := netip.PrefixFrom(ula.Subnet6.Addr().Next().Next(), 64).String()
	if st != 200 || resp["Interface"].(map[string]any)["AddressIPv6"] != want {
		t.Errorf("create endpoint on the ULA network: %d %v, want AddressIPv6 %s", st, resp, want)
	}

	// IPv6Data without enable_ipv6: an IPv4-only network, as Docker's bridge
	// driver makes; an IPv6 address for its endpoint is refused, Join
	// gives no IPv6 gateway.
	const v4ID = "d9d9d9d9d9d9d9d9d9d9"
	body := strings.Replace(string(dualStackNetwork(v4ID, "10.95.0.0/24", "fd00:95::/64", "")), `"com.docker.network.enable_ipv6":true`, `"com.docker.network.enable_ipv6":false`, 1)
	if st, resp := h.do("NetworkDriver.CreateNetwork", []byte(body)); st != 200 {
		t.Fatalf("create network with IPv6Data and IPv6 off: %d %v", st, resp)
	}
	if v4, _ := h.inst.InspectNetwork(NetworkName(v4ID)); v4.Subnet6.IsValid() {
		t.Errorf("IPv6 off, yet the network has IPv6 subnet %s", v4.Subnet6)
	}
	if st, resp := h.do("NetworkDriver.CreateEndpoint", endpointBody(v4ID, "e7e7e7e7e7e7e7e7", "10.95.0.2/24", "fd00:95::2/64", "")); st == 200 || !strings.Contains(resp["Err"].(string), "has no IPv6") {
		t.Errorf("IPv6 address on an IPv4-only network: %d %v", st, resp)
	}
	const e8 = "e8e8e8e8e8e8e8e8"
	st, resp = h.do("NetworkDriver.CreateEndpoint", endpointBody(v4ID, e8, "10.95.0.2/24", "", ""))
	if st != 200 || resp["Interface"].(map[string]any)["AddressIPv6"] != nil {
		t.Errorf("endpoint on an IPv4-only network: %d %v", st, resp)
	}
	if st, resp := h.do("NetworkDriver.Join", fmt.Appendf(nil, `{"NetworkID":"%s","EndpointID":"%s"}`, v4ID, e8)); st != 200 || resp["Gateway"] != "10.95.0.1" || resp["GatewayIPv6"] != nil {
		t.Errorf("join on an IPv4-only network: %d %v", st, resp)
	}

	// All of it goes, the IPv6 entries with it.
	for _, e := range []struct{ net, ep string }{{netID, e1}, {netID, e2}, {intID, e5}, {ulaID, e6}, {v4ID, e8}} {
		for _, m := range []string{"Leave", "DeleteEndpoint"} {
			if st, resp := h.do("NetworkDriver."+m, fmt.Appendf(nil, `{"NetworkID":"%s","EndpointID":"%s"}`, e.net, e.ep)); st != 200 {
				t.Errorf("%s %s: %v", m, e.ep, resp)
			}
		}
	}
	for _, ep := range []datapath.Endpoint{ep1, ep2} {
		problems, _ := h.check(ep)
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, "no IPv6 address "+ep.IP6.String()) }) ||
			!slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, "does not deliver "+ep.IP6.String()) }) {
			t.Errorf("%s's IPv6 entries after DeleteEndpoint: %v, want them gone", ep.Name, problems)
		}
	}
	for _, id := range []string{netID, intID, ulaID, v4ID} {
		if st, resp := h.do("NetworkDriver.DeleteNetwork", fmt.Appendf(nil, `{"NetworkID":"%s"}`, id)); st != 200 {
			t.Errorf("delete network %s: %v", id, resp)
		}
	}
	if eps, _ := h.inst.Endpoints(); len(eps) != 0 {
		t.Errorf("endpoints left: %v", eps)
	}
}

// TestIPv6Only: `docker network create --ipv4=false --ipv6` as Docker 28
// asks it (enable_ipv4 false, no IPv4Data): a network without IPv4, its
// endpoints with Docker's IPv6 address alone, Join with the IPv6 gateway
// only.
func TestIPv6Only(t *testing.T) {
	h := newTestHost(t)
	const netID = "d9d9d9d9d9d9d9d9d9d9"
	body := fmt.Appendf(nil, `{"NetworkID":"%s","Options":{"com.docker.network.enable_ipv4":false,"com.docker.network.enable_ipv6":true,"com.docker.network.generic":{}},`+
		`"IPv4Data":[],"IPv6Data":[{"AddressSpace":"LocalDefault","Gateway":"fd00:95::1/64","Pool":"fd00:95::/64"}]}`, netID)
	if st, resp := h.do("NetworkDriver.CreateNetwork", body); st != 200 {
		t.Fatalf("create IPv6-only network: %d %v", st, resp)
	}
	n, err := h.inst.InspectNetwork(NetworkName(netID))
	if err != nil || n.Subnet.IsValid() || n.Gateway.IsValid() || n.Subnet6.String() != "fd00:95::/64" {
		t.Fatalf("network %+v %v, want fd00:95::/64 and no IPv4", n.Network, err)
	}
	const e1 = "e9e9e9e9e9e9e9e9"
	st, resp := h.do("NetworkDriver.CreateEndpoint", endpointBody(netID, e1, "", "fd00:95::2/64", ""))
	if st != 200 {
		t.Fatalf("create endpoint: %d %v", st, resp)
	}
	ep, _, _ := h.inst.EndpointFor(e1, "")
	if ep.IP.IsValid() || ep.IP6.String() != "fd00:95::2" {
		t.Errorf("endpoint %s %s, want fd00:95::2 alone", ep.IP, ep.IP6)
	}
	if problems, err := h.check(ep); err != nil || len(problems) != 0 {
		t.Errorf("CheckEndpoint: %v %v", problems, err)
	}
	if st, resp := h.do("NetworkDriver.CreateEndpoint", endpointBody(netID, "eaeaeaeaeaeaeaea", "10.95.0.2/24", "fd00:95::3/64", "")); st == 200 {
		t.Errorf("an IPv4 address on an IPv6-only network: accepted %v", resp)
	}
	st, resp = h.do("NetworkDriver.Join", fmt.Appendf(nil, `{"NetworkID":"%s","EndpointID":"%s","SandboxKey":"/tmp/sb9"}`, netID, e1))
	if st != 200 || resp["Gateway"] != nil || resp["GatewayIPv6"] != "fd00:95::1" {
		t.Errorf("join: %d %v, want GatewayIPv6 fd00:95::1 alone", st, resp)
	}
	if _, err := NetworkOptions(netID, map[string]json.RawMessage{optIPv4: []byte("false")}, nil, nil); err == nil || !strings.Contains(err.Error(), "--ipv4=false needs --ipv6") {
		t.Errorf("--ipv4=false alone: %v", err)
	}
}

// TestNetworkOptionsIPv6 maps IPv6 requests without a host.
func TestNetworkOptionsIPv6(t *testing.T) {
	on := map[string][]byte{optIPv6: []byte("true")}
	opts := func(m map[string][]byte) map[string]json.RawMessage {
		out := map[string]json.RawMessage{}
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	v4 := []ipamData{{Pool: "10.1.0.0/24", Gateway: "10.1.0.1/24"}}
	o, err := NetworkOptions("abcdefabcdefabcdef", opts(on), v4, []ipamData{{Pool: "fd00:1::/64", Gateway: "fd00:1::fe/64"}})
	if err != nil || !o.IPv6 || o.Subnet6 != "fd00:1::/64" || o.Gateway6 != "fd00:1::fe" || o.Gateway != "10.1.0.1" {
		t.Errorf("dual stack: %+v %v", o, err)
	}
	// The null IPAM driver's ::/0: no pool, a unique local one is chosen.
	if o, err := NetworkOptions("abcdefabcdefabcdef", opts(on), v4, []ipamData{{Pool: "::/0"}}); err != nil || !o.IPv6 || o.Subnet6 != "" {
		t.Errorf("::/0: %+v %v", o, err)
	}
	if o, err := NetworkOptions("abcdefabcdefabcdef", nil, v4, []ipamData{{Pool: "fd00:1::/64"}}); err != nil || o.IPv6 || o.Subnet6 != "" {
		t.Errorf("IPv6Data without enable_ipv6 is ignored: %+v %v", o, err)
	}
	for _, tt := range []struct {
		v6   []ipamData
		want string
	}{
		{[]ipamData{{Pool: "fd00:1::/64"}, {Pool: "fd00:2::/64"}}, "one IPv6 subnet per network"},
		{[]ipamData{{Pool: "fd00:1::/64", Gateway: "10.1.0.1/24"}}, "not an IPv6 address"},
		{[]ipamData{{Pool: "fd00:1::/64", Gateway: "zz"}}, "invalid gateway"},
	} {
		if _, err := NetworkOptions("abcdefabcdefabcdef", opts(on), v4, tt.v6); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %q", tt.v6, err, tt.want)
		}
	}
	if _, err := NetworkOptions("abcdefabcdefabcdef", nil, []ipamData{{Pool: "10.1.0.0/24", Gateway: "fd00::1/64"}}, nil); err == nil || !strings.Contains(err.Error(), "not an IPv4 address") {
		t.Errorf("an IPv6 gateway for IPv4: %v", err)
	}
}
