package datapath

import (
	"net/netip"
	"strings"
	"testing"
)

func TestAllocateIP(t *testing.T) {
	n := Network{Name: "n", Subnet: netip.MustParsePrefix("10.0.0.0/29"), Gateway: netip.MustParseAddr("10.0.0.1")}
	used := map[netip.Addr]string{}
	var got []string
	for {
		a, err := allocateIP(n, used)
		if err != nil {
			if !strings.Contains(err.Error(), "no free address") {
				t.Fatal(err)
			}
			break
		}
		used[a] = "x"
		got = append(got, a.String())
	}
	// .0 is the network, .1 the gateway, .7 the broadcast address.
	if want := "10.0.0.2 10.0.0.3 10.0.0.4 10.0.0.5 10.0.0.6"; strings.Join(got, " ") != want {
		t.Fatalf("allocated %v, want %s", got, want)
	}
}

func TestCheckRequestedIP(t *testing.T) {
	n := Network{Name: "n", Subnet: netip.MustParsePrefix("10.0.0.0/24"), Gateway: netip.MustParseAddr("10.0.0.1")}
	used := map[netip.Addr]string{netip.MustParseAddr("10.0.0.9"): "web"}
	for ip, want := range map[string]string{
		"10.0.0.0":   "not a host address",
		"10.0.0.255": "not a host address",
		"10.0.1.5":   "not a host address",
		"10.0.0.1":   "is the gateway",
		"10.0.0.9":   "in use by web",
		"fd00::1":    "IPv4",
		"banana":     "IPv4",
	} {
		if _, err := checkRequestedIP(n, ip, used); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", ip, err, want)
		}
	}
	if a, err := checkRequestedIP(n, "10.0.0.10", used); err != nil || a.String() != "10.0.0.10" {
		t.Errorf("10.0.0.10: %v %v", a, err)
	}
}

func TestChooseSubnetAvoidsTaken(t *testing.T) {
	taken := []netip.Prefix{
		netip.MustParsePrefix("172.17.0.0/16"),
		netip.MustParsePrefix("172.18.5.0/24"), // a route inside 172.18/16
	}
	got, err := chooseSubnet(taken)
	if err != nil || got.String() != "172.19.0.0/16" {
		t.Fatalf("chooseSubnet = %v, %v; want 172.19.0.0/16", got, err)
	}
}

func TestMACFromIP(t *testing.T) {
	if got := macFor(netip.MustParseAddr("172.17.0.2")); got != "02:42:ac:11:00:02" {
		t.Fatalf("macFor = %s", got)
	}
}

func TestParseNetworkMode(t *testing.T) {
	for in, want := range map[string]NetworkMode{
		"bridge":        {Mode: ModeBridge},
		"host":          {Mode: ModeHost},
		"none":          {Mode: ModeNone},
		"container:web": {Mode: ModeContainer, Container: "web"},
		"backend":       {Mode: ModeBridge, Network: "backend"},
	} {
		got, err := ParseNetworkMode(in)
		if err != nil || got != want {
			t.Errorf("%s: %+v %v, want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "container:", "container:a/b", "a/b", "-x"} {
		if _, err := ParseNetworkMode(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestEndpointName(t *testing.T) {
	for in, want := range map[string]string{"web": "web", "/run/netns/db": "db", "4242": "pid-4242", "/proc/77/ns/net": "pid-77"} {
		if got := endpointName(in); got != want {
			t.Errorf("endpointName(%s) = %s, want %s", in, got, want)
		}
	}
}
