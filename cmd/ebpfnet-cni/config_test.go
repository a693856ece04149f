package main

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/ebpfnet/ebpfnet/datapath"
	"github.com/ebpfnet/ebpfnet/datapath/ports"
)

func TestParseAdd(t *testing.T) {
	r, err := parseAdd([]byte(`{"cniVersion":"1.1.0","name":"cni0","type":"ebpfnet","subnet":"10.88.0.0/16",
		"ipMasq":false,"mtu":1400,"stateDir":"/tmp/s","pinRoot":"/sys/fs/bpf/x","serviceCIDRs":["10.96.0.0/12"],
		"runtimeConfig":{"portMappings":[
			{"hostPort":8080,"containerPort":80,"protocol":"tcp"},
			{"hostPort":5353,"containerPort":53,"protocol":"UDP","hostIP":"198.18.0.2"},
			{"hostPort":8080,"containerPort":80,"protocol":"tcp","hostIP":"::"},
			{"hostPort":9090,"containerPort":90,"protocol":"tcp","hostIP":"0.0.0.0"},
			{"hostPort":9191,"containerPort":91,"protocol":"tcp","hostIP":"::"},
			{"hostPort":9292,"containerPort":92,"protocol":"tcp","hostIP":"2001:db8::2"}],
		"ips":["10.88.0.9/16","fd00::9/64"],"mac":"0a:58:0a:58:00:09"}}`))
	if err != nil {
		t.Fatal(err)
	}
	// The [::] twin of 8080 is merged into its IPv4 one on every address;
	// 0.0.0.0 alone is IPv4's, :: alone IPv6's (Docker 28).
	want := []ports.Mapping{
		{Proto: ports.TCP, HostPort: 8080, ContainerPort: 80},
		{Proto: ports.UDP, HostIP: netip.MustParseAddr("198.18.0.2"), HostPort: 5353, ContainerPort: 53},
		{Proto: ports.TCP, HostIP: netip.IPv4Unspecified(), HostPort: 9090, ContainerPort: 90},
		{Proto: ports.TCP, HostIP: netip.MustParseAddr("2001:db8::2"), HostPort: 9292, ContainerPort: 92},
		{Proto: ports.TCP, HostIP: netip.IPv6Unspecified(), HostPort: 9191, ContainerPort: 91},
	}
	if !slices.Equal(r.ports, want) {
		t.Errorf("ports %v, want %v", r.ports, want)
	}
	if got := forFamilies(r.ports, false); !slices.Equal(got, want[:3]) {
		t.Errorf("for an IPv4-only network: %v, want %v", got, want[:3])
	}
	if r.ip != "10.88.0.9" || r.ip6 != "fd00::9" || r.mac != "0a:58:0a:58:00:09" {
		t.Errorf("ip %q ip6 %q mac %q", r.ip, r.ip6, r.mac)
	}
	n := r.network
	if n.Name != "cni0" || n.Subnet != "10.88.0.0/16" || n.Masquerade || !n.ICC || n.MTU != 1400 ||
		len(n.ServiceCIDRs) != 1 || n.ServiceCIDRs[0] != "10.96.0.0/12" {
		t.Errorf("network options %+v", n)
	}
	if c := r.conf.instanceConfig(); c.StateDir != "/tmp/s" || c.PinRoot != "/sys/fs/bpf/x" {
		t.Errorf("instance %+v", c)
	}
}

func TestParseAddDualStack(t *testing.T) {
	r, err := parseAdd([]byte(`{"cniVersion":"1.1.0","name":"d","type":"ebpfnet","subnet":"10.88.0.0/16",
		"ipv6":true,"subnet6":"fd00:88::/64","gateway6":"fd00:88::fe"}`))
	if err != nil {
		t.Fatal(err)
	}
	if n := r.network; !n.IPv6 || n.Subnet6 != "fd00:88::/64" || n.Gateway6 != "fd00:88::fe" {
		t.Errorf("network options %+v", n)
	}
}

func TestParseAddDefaults(t *testing.T) {
	r, err := parseAdd([]byte(`{"cniVersion":"1.0.0","name":"cni0","type":"ebpfnet","internal":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if !r.network.ICC || r.network.Masquerade || !r.network.Internal {
		t.Errorf("internal network: %+v", r.network)
	}
	def := datapath.DefaultConfig()
	if c := r.conf.instanceConfig(); c.StateDir != def.StateDir || c.PinRoot != def.PinRoot {
		t.Errorf("instance %+v, want the default %+v", c, def)
	}
}

func TestParseAddRefuses(t *testing.T) {
	tests := []struct {
		conf string
		code uint
		want string
	}{
		{`{`, types.ErrDecodingFailure, "failed to parse"},
		{`{"name":"bad name","type":"ebpfnet"}`, types.ErrInvalidNetworkConfig, "network name"},
		{`{"name":"n","subnet":"10.0.0.0/33"}`, types.ErrInvalidNetworkConfig, "subnet"},
		{`{"name":"n","subnet":"fd00::/64"}`, types.ErrInvalidNetworkConfig, "IPv4 CIDR"},
		{`{"name":"n","gateway":"x"}`, types.ErrInvalidNetworkConfig, "gateway"},
		{`{"name":"n","serviceCIDRs":["10.96.0.0"]}`, types.ErrInvalidNetworkConfig, "serviceCIDRs"},
		{`{"name":"n","driver":"overlay"}`, types.ErrInvalidNetworkConfig, "needs clusterStore"},
		{`{"name":"n","driver":"overlay","clusterStore":"http://x"}`, types.ErrInvalidNetworkConfig, "clusterStore"},
		{`{"name":"n","driver":"vxlan"}`, types.ErrInvalidNetworkConfig, "want bridge or overlay"},
		{`{"name":"n","vni":5000}`, types.ErrInvalidNetworkConfig, "vni needs"},
		{`{"name":"n","driver":"overlay","clusterStore":"etcd://198.18.0.1:2379","ipam":{"type":"host-local"}}`, types.ErrInvalidNetworkConfig, "remove ipam"},
		{`{"name":"n","stateDir":"rel"}`, types.ErrInvalidNetworkConfig, "absolute"},
		{`{"name":"n","runtimeConfig":{"portMappings":[{"hostPort":0,"containerPort":80}]}}`, types.ErrInvalidNetworkConfig, "hostPort 0"},
		{`{"name":"n","runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":70000}]}}`, types.ErrInvalidNetworkConfig, "containerPort 70000"},
		{`{"name":"n","runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":80,"protocol":"sctp"}]}}`, types.ErrInvalidNetworkConfig, "tcp or udp"},
		{`{"name":"n","runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":80,"hostIP":"nope"}]}}`, types.ErrInvalidNetworkConfig, "hostIP"},
		{`{"name":"n","internal":true,"runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":80}]}}`, types.ErrInvalidNetworkConfig, "internal"},
		{`{"name":"n","runtimeConfig":{"ips":["10.0.0.2","10.0.0.3"]}}`, types.ErrInvalidNetworkConfig, "one address per family"},
		{`{"name":"n","runtimeConfig":{"ips":["fd00::2","fd00::3/64"]}}`, types.ErrInvalidNetworkConfig, "one address per family"},
		{`{"name":"n","runtimeConfig":{"ips":["fe80::2%eth0"]}}`, types.ErrInvalidNetworkConfig, "not an IP"},
		{`{"name":"n","subnet6":"fd00::/64"}`, types.ErrInvalidNetworkConfig, "need \"ipv6\": true"},
		{`{"name":"n","ipv6":true,"subnet6":"10.0.0.0/24"}`, types.ErrInvalidNetworkConfig, "IPv6 CIDR"},
		{`{"name":"n","ipv6":true,"gateway6":"10.0.0.1"}`, types.ErrInvalidNetworkConfig, "gateway6"},
		{`{"name":"n","ipv4":false,"ipv6":true,"driver":"overlay","clusterStore":"etcd://198.18.0.1:2379"}`, types.ErrInvalidNetworkConfig, "driver overlay needs IPv4"},
		{`{"name":"n","ipv4":false}`, types.ErrInvalidNetworkConfig, "needs \"ipv6\": true"},
		{`{"name":"n","ipv4":false,"ipv6":true,"subnet":"10.1.0.0/24"}`, types.ErrInvalidNetworkConfig, "remove subnet"},
		{`{"name":"n","runtimeConfig":{"ips":["x"]}}`, types.ErrInvalidNetworkConfig, "not an IP"},
	}
	for _, tt := range tests {
		_, err := parseAdd([]byte(tt.conf))
		var te *types.Error
		if !errors.As(err, &te) || te.Code != tt.code || !strings.Contains(te.Msg, tt.want) {
			t.Errorf("%s: got %v, want code %d with %q", tt.conf, err, tt.code, tt.want)
		}
	}
}

// The examples in contrib/cni are valid conflists whose ebpfnet entry
// parses, and name networks of their own: one name with two subnets would
// make the second example's ADD fail ("exists with other settings").
func TestContribConflist(t *testing.T) {
	for _, tc := range []struct {
		file, name, subnet, bridge string
		runtimeHeld                bool
		serviceCIDRs               []string
	}{
		{"10-ebpfnet.conflist", "ebpfnet", "10.88.0.0/16", "ebpfnet-cni0", false, nil},
		{"20-ebpfnet-podman.conflist", "ebpfnet-podman", "10.89.0.0/16", "ebpfnet-pod0", true, nil},
		{"30-ebpfnet-kubernetes.conflist", "ebpfnet-k8s", "10.244.0.0/24", "ebpfnet-k8s0", false, []string{"10.96.0.0/12"}},
	} {
		list, err := libcni.ConfListFromFile("../../contrib/cni/" + tc.file)
		if err != nil {
			t.Fatal(err)
		}
		if list.Name != tc.name {
			t.Errorf("%s names network %q, want %q", tc.file, list.Name, tc.name)
		}
		if list.Plugins[0].Network.Type != "ebpfnet" {
			t.Fatalf("%s: first plugin is %s", tc.file, list.Plugins[0].Network.Type)
		}
		// libcni injects the list's name, version and runtimeConfig at run time.
		pc, err := libcni.InjectConf(list.Plugins[0], map[string]any{"name": list.Name, "cniVersion": list.CNIVersion,
			"runtimeConfig": map[string]any{"portMappings": []map[string]any{{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}}}})
		if err != nil {
			t.Fatal(err)
		}
		r, err := parseAdd(pc.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if r.network.Subnet != tc.subnet || r.network.Bridge != tc.bridge || !r.network.Masquerade ||
			!slices.Equal(r.network.ServiceCIDRs, tc.serviceCIDRs) {
			t.Fatalf("%s: network options %+v", tc.file, r.network)
		}
		if len(r.ports) != 1 || r.ports[0].RuntimeHeld != tc.runtimeHeld {
			t.Fatalf("%s: ports %+v, want one with RuntimeHeld %v", tc.file, r.ports, tc.runtimeHeld)
		}
	}
}
