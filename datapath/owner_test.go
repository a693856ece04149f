package datapath

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
)

func TestOwnedEndpointName(t *testing.T) {
	long := "3f2a9c01b7de5566778899aabbccddeeff00112233445566778899aabbccddeeff"
	tests := []struct {
		id, ifName string
		taken      []string
		want       string
	}{
		{"abc", "", nil, "abc-eth0"},
		{long, "eth0", nil, "3f2a9c01b7de-eth0"},
		{long, "net1", nil, "3f2a9c01b7de-net1"},
		{long, "eth@0", nil, "3f2a9c01b7de-eth_0"},
		// Another container with the same 12-character prefix got there first.
		{long, "eth0", []string{"3f2a9c01b7de-eth0"}, "3f2a9c01b7de-eth0-"},
	}
	for _, tt := range tests {
		var eps []Endpoint
		for _, n := range tt.taken {
			eps = append(eps, Endpoint{Name: n})
		}
		got := ownedEndpointName(tt.id, tt.ifName, eps)
		if !strings.HasPrefix(got, tt.want) || (len(tt.taken) == 0 && got != tt.want) {
			t.Errorf("ownedEndpointName(%q, %q, %v) = %q, want %q", tt.id, tt.ifName, tt.taken, got, tt.want)
		}
		if err := netnsutil.ValidName(got); err != nil {
			t.Errorf("%q: %v", got, err)
		}
		if again := ownedEndpointName(tt.id, tt.ifName, eps); again != got {
			t.Errorf("not deterministic: %q then %q", got, again)
		}
	}
	// The longest inputs still give a valid name.
	if err := netnsutil.ValidName(ownedEndpointName(long, "abcdefghijklmno", []Endpoint{{Name: "3f2a9c01b7de-abcdefghijklmno"}})); err != nil {
		t.Error(err)
	}
}

func TestNetworkAgrees(t *testing.T) {
	n := Network{Name: "cni", Subnet: netip.MustParsePrefix("10.88.0.0/16"), Gateway: netip.MustParseAddr("10.88.0.1"),
		Bridge: "ebpfnet1", Uplink: "uplink0", MTU: 1500, ICC: true, Masquerade: true}
	same := NetworkOptions{Name: "cni", Subnet: "10.88.0.0/16", ICC: true, Masquerade: true}
	if err := networkAgrees(n, same); err != nil {
		t.Fatalf("same settings: %v", err)
	}
	tests := []struct {
		change func(*NetworkOptions)
		want   string
	}{
		{func(o *NetworkOptions) { o.Subnet = "10.89.0.0/16" }, "subnet is 10.88.0.0/16, config says 10.89.0.0/16"},
		{func(o *NetworkOptions) { o.Subnet = "10.88.0.0/33" }, "invalid subnet"},
		{func(o *NetworkOptions) { o.Gateway = "10.88.0.254" }, "gateway is 10.88.0.1"},
		{func(o *NetworkOptions) { o.Bridge = "br9" }, "bridge is ebpfnet1"},
		{func(o *NetworkOptions) { o.MTU = 9000 }, "mtu is 1500"},
		{func(o *NetworkOptions) { o.Masquerade = false }, "ip masquerade is true"},
		{func(o *NetworkOptions) { o.ICC = false }, "icc is true"},
		{func(o *NetworkOptions) { o.Internal = true }, "internal is false"},
		{func(o *NetworkOptions) { o.Uplink = "eth1" }, "uplink is uplink0"},
		{func(o *NetworkOptions) { o.ServiceCIDRs = []string{"10.96.0.0/12"} }, "service CIDRs is [], config says [10.96.0.0/12]"},
	}
	for _, tt := range tests {
		o := same
		tt.change(&o)
		err := networkAgrees(n, o)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: got %v, want %q", o, err, tt.want)
		}
	}
}

func TestParseServiceCIDRs(t *testing.T) {
	subnet := netip.MustParsePrefix("10.244.0.0/16")
	got, err := ParseServiceCIDRs([]string{"10.96.0.0/12", " 192.0.2.9/24"}, subnet)
	if err != nil || len(got) != 2 || got[1] != netip.MustParsePrefix("192.0.2.0/24") {
		t.Fatalf("got %v, %v; want [10.96.0.0/12 192.0.2.0/24]", got, err)
	}
	n := Network{Subnet: subnet, ServiceCIDRs: got}
	if err := networkAgrees(n, NetworkOptions{ServiceCIDRs: []string{"192.0.2.0/24", "10.96.0.0/12"}, ICC: n.ICC}); err != nil {
		t.Errorf("same prefixes in another order: %v", err)
	}
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{[]string{"10.96.0.0"}, "want an IPv4 CIDR"},
		{[]string{"fd00::/108"}, "want an IPv4 CIDR"},
		{[]string{"10.244.1.0/24"}, "overlaps the network's subnet"},
		{[]string{"10.96.0.0/12", "10.100.0.0/16"}, "overlap"},
		{make([]string, maxServiceCIDRs+1), "at most"},
	} {
		if _, err := ParseServiceCIDRs(tc.in, subnet); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestEndpointMAC(t *testing.T) {
	ip := netip.MustParseAddr("172.30.0.2")
	if m, err := endpointMAC("", ip); err != nil || m.String() != "02:42:ac:1e:00:02" {
		t.Errorf("derived: %v %v", m, err)
	}
	if m, err := endpointMAC("0A:58:0A:00:00:05", ip); err != nil || m.String() != "0a:58:0a:00:00:05" {
		t.Errorf("requested: %v %v", m, err)
	}
	for _, bad := range []string{"zz", "01:00:5e:00:00:01", "00:00:00:00:00:00", "02:42:ac:1e:00:02:00:00"} {
		if _, err := endpointMAC(bad, ip); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestCheckGatewayOfAndOwner(t *testing.T) {
	n := Network{Name: "n", Gateway: netip.MustParseAddr("10.0.0.1")}
	if err := checkGatewayOf(n, ""); err != nil {
		t.Error(err)
	}
	if err := checkGatewayOf(n, "10.0.0.1"); err != nil {
		t.Error(err)
	}
	if err := checkGatewayOf(n, "10.0.0.254"); err == nil || !strings.Contains(err.Error(), "not the gateway") {
		t.Errorf("other gateway: %v", err)
	}
	for _, o := range []AttachOptions{
		{Mode: ModeBridge, IfName: "this-name-is-too-long"},
		{Mode: ModeBridge, IfName: "a/b"},
		{Mode: ModeBridge, ContainerID: "-x"},
		{Mode: ModeBridge, ContainerID: "a b"},
		{Mode: ModeNone, MAC: "02:00:00:00:00:01"},
	} {
		if err := checkOwner(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	if err := checkOwner(AttachOptions{Mode: ModeBridge, IfName: "net1", ContainerID: "abc_1.2-3"}); err != nil {
		t.Error(err)
	}
}

func TestSharesInterface(t *testing.T) {
	eth0 := Endpoint{Mode: ModeBridge}
	net1 := Endpoint{Mode: ModeBridge, IfName: "net1"}
	if !sharesInterface(eth0, AttachOptions{Mode: ModeBridge}) || !sharesInterface(net1, AttachOptions{Mode: ModeBridge, IfName: "net1"}) {
		t.Error("same interface not detected")
	}
	if sharesInterface(eth0, AttachOptions{Mode: ModeBridge, IfName: "net1"}) {
		t.Error("eth0 and net1 clash")
	}
	if !sharesInterface(Endpoint{Mode: ModeNone}, AttachOptions{Mode: ModeBridge, IfName: "net1"}) {
		t.Error("a none endpoint owns its namespace")
	}
}
