package datapath

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseSubnet6(t *testing.T) {
	for in, want := range map[string]string{
		"fd00:30::/64":   "",
		"2001:db8::/48":  "",
		"fd00:30::1/64":  "host bits set",
		"172.30.0.0/16":  "want an IPv6 CIDR",
		"fe80::/64":      "not a unicast prefix",
		"ff02::/64":      "not a unicast prefix",
		"fd00::/8":       "between 16 and 120",
		"fd00::/124":     "between 16 and 120",
		"::ffff:0:0/96":  "want an IPv6 CIDR",
		"fd00:30::/64x":  "want an IPv6 CIDR",
		"fd00:30::%a/64": "want an IPv6 CIDR",
	} {
		_, err := parseSubnet6(in)
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("parseSubnet6(%q) = %v, want error containing %q", in, err, want)
		}
	}
}

func TestChooseSubnet6IsUniqueLocal(t *testing.T) {
	taken := []netip.Prefix{}
	for range 8 {
		p, err := chooseSubnet6(taken)
		if err != nil {
			t.Fatal(err)
		}
		if p.Bits() != 64 || p.Addr().As16()[0] != 0xfd || p.Masked() != p || overlapsAny(p, taken) {
			t.Fatalf("chose %s: want a free fd00::/8 /64", p)
		}
		taken = append(taken, p)
	}
	if _, err := chooseSubnet6([]netip.Prefix{netip.MustParsePrefix("fd00::/8")}); err == nil {
		t.Error("chose a subnet with the whole pool taken")
	}
}

func TestIPv6Addresses(t *testing.T) {
	n := Network{Name: "n6", Subnet6: netip.MustParsePrefix("fd00:30::/64")}
	var err error
	if n.Gateway6, err = checkGateway6(n.Subnet6, ""); err != nil || n.Gateway6 != netip.MustParseAddr("fd00:30::1") {
		t.Fatalf("default gateway %s, %v", n.Gateway6, err)
	}
	for _, bad := range []string{"fd00:30::", "fd00:31::1", "10.0.0.1", "x"} {
		if _, err := checkGateway6(n.Subnet6, bad); err == nil {
			t.Errorf("gateway %q accepted", bad)
		}
	}
	used := map[netip.Addr]string{netip.MustParseAddr("fd00:30::2"): "a"}
	if a, err := allocateIP6(n, used); err != nil || a != netip.MustParseAddr("fd00:30::3") {
		t.Errorf("allocated %s, %v: want fd00:30::3", a, err)
	}
	for in, want := range map[string]string{
		"fd00:30::9":  "",
		"fd00:30::2":  "already in use by a",
		"fd00:30::1":  "IPv6 gateway",
		"fd00:30::":   "not a host address",
		"fd00:99::1":  "not a host address",
		"172.30.0.9":  "want an IPv6 address",
		"fe80::1%eth": "want an IPv6 address",
	} {
		_, err := checkRequestedIP6(n, in, used)
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("--ip6 %q: %v, want error containing %q", in, err, want)
		}
	}
	small := Network{Name: "tiny", Subnet6: netip.MustParsePrefix("fd00:30::/126"), Gateway6: netip.MustParseAddr("fd00:30::1")}
	full := map[netip.Addr]string{netip.MustParseAddr("fd00:30::2"): "a", netip.MustParseAddr("fd00:30::3"): "b"}
	if _, err := allocateIP6(small, full); err == nil {
		t.Error("allocated from a full subnet")
	}
	if _, err := checkRequestedIP6(Network{Name: "v4"}, "fd00::5", nil); err == nil || !strings.Contains(err.Error(), "--ipv6") {
		t.Errorf("--ip6 on an IPv4-only network: %v", err)
	}
}
