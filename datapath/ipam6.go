package datapath

import (
	"crypto/rand"
	"fmt"
	"net/netip"
)

// IPv6 addressing of dual-stack networks: the subnet (given, or a free
// unique local /64), its gateway and the containers' addresses.

// parseSubnet6 accepts an IPv6 CIDR whose address is the network address.
// Anything from /16 to /120 is taken, as Docker does; a /64 is what
// everything else on a link expects.
func parseSubnet6(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is6() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("invalid IPv6 subnet %q: want an IPv6 CIDR such as fd00:30::/64", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("invalid IPv6 subnet %s: host bits set, did you mean %s?", s, p.Masked())
	}
	if p.Bits() < 16 || p.Bits() > 120 {
		return netip.Prefix{}, fmt.Errorf("invalid IPv6 subnet %s: prefix length must be between 16 and 120", s)
	}
	a := p.Addr()
	if a.IsLinkLocalUnicast() || a.IsMulticast() || a.IsLoopback() || a.IsUnspecified() || a.IsInterfaceLocalMulticast() {
		return netip.Prefix{}, fmt.Errorf("invalid IPv6 subnet %s: not a unicast prefix a network can use", s)
	}
	return p, nil
}

// ParseSubnet6 validates an IPv6 subnet as network create --ipv6 does
// (package cluster checks an overlay network's with it).
func ParseSubnet6(s string) (netip.Prefix, error) { return parseSubnet6(s) }

// ChooseSubnet6 is a random unique local /64 overlapping none of taken, what
// --ipv6 without an IPv6 subnet gets.
func ChooseSubnet6(taken []netip.Prefix) (netip.Prefix, error) { return chooseSubnet6(taken) }

// ulaSubnet is a random unique local /64 (RFC 4193: fd00::/8 and a random
// 40-bit global ID, subnet 0), what --ipv6 without an IPv6 subnet gets, as
// Docker 28's default pool gives.
func ulaSubnet() netip.Prefix {
	var b [16]byte
	b[0] = 0xfd
	rand.Read(b[1:6])
	return netip.PrefixFrom(netip.AddrFrom16(b), 64)
}

// chooseSubnet6 draws unique local /64s until one overlaps none of taken.
func chooseSubnet6(taken []netip.Prefix) (netip.Prefix, error) {
	for range 16 {
		p := ulaSubnet()
		if !overlapsAny(p, taken) {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("no free unique local IPv6 subnet found: create the network with an IPv6 --subnet")
}

func overlapsAny(p netip.Prefix, taken []netip.Prefix) bool {
	for _, t := range taken {
		if t.Overlaps(p) {
			return true
		}
	}
	return false
}

// isHost6 reports whether ip is an address of p a host may hold: not the
// subnet-router anycast address (the network address, RFC 4291 2.6.1).
func isHost6(p netip.Prefix, ip netip.Addr) bool {
	return ip.Is6() && !ip.Is4In6() && p.Contains(ip) && ip != p.Masked().Addr()
}

// checkGateway6 validates an IPv6 gateway for subnet; an empty one is the
// subnet's first address, as Docker's.
func checkGateway6(subnet netip.Prefix, gw string) (netip.Addr, error) {
	if gw == "" {
		return subnet.Addr().Next(), nil
	}
	a, err := netip.ParseAddr(gw)
	if err != nil || !a.Is6() || a.Is4In6() {
		return netip.Addr{}, fmt.Errorf("invalid IPv6 gateway %q: want an IPv6 address", gw)
	}
	if !isHost6(subnet, a) {
		return netip.Addr{}, fmt.Errorf("IPv6 gateway %s is not a host address of subnet %s", a, subnet)
	}
	return a, nil
}

// checkRequestedIP6 validates a container address asked for with --ip6.
func checkRequestedIP6(n Network, ip string, used map[netip.Addr]string) (netip.Addr, error) {
	if !n.Subnet6.IsValid() {
		return netip.Addr{}, fmt.Errorf("--ip6 %s: network %s has no IPv6 (create it with --ipv6)", ip, n.Name)
	}
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is6() || a.Is4In6() || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("invalid --ip6 %q: want an IPv6 address", ip)
	}
	if !isHost6(n.Subnet6, a) {
		return netip.Addr{}, fmt.Errorf("address %s is not a host address of network %s (%s)", a, n.Name, n.Subnet6)
	}
	if a == n.Gateway6 {
		return netip.Addr{}, fmt.Errorf("address %s is the IPv6 gateway of network %s", a, n.Name)
	}
	if owner, ok := used[a]; ok {
		return netip.Addr{}, fmt.Errorf("address %s is already in use by %s", a, owner)
	}
	return a, nil
}

// allocateIP6 returns the lowest free address of the network's IPv6
// subnet. used holds at most one address per endpoint, so the walk is
// short however large the subnet.
func allocateIP6(n Network, used map[netip.Addr]string) (netip.Addr, error) {
	for a := n.Subnet6.Addr().Next(); isHost6(n.Subnet6, a); a = a.Next() {
		if _, taken := used[a]; !taken && a != n.Gateway6 {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("network %s (%s) has no free IPv6 address", n.Name, n.Subnet6)
}
