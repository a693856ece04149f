package datapath

import (
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
)

// parseSubnet accepts an IPv4 CIDR whose address is the network address.
func parseSubnet(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid subnet %q: want an IPv4 CIDR such as 172.30.0.0/16", s)
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("invalid subnet %s: only IPv4 is supported for now", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("invalid subnet %s: host bits set, did you mean %s?", s, p.Masked())
	}
	if p.Bits() < 8 || p.Bits() > 30 {
		return netip.Prefix{}, fmt.Errorf("invalid subnet %s: prefix length must be between 8 and 30", s)
	}
	return p, nil
}

func broadcast(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// isHost reports whether ip is a usable host address of p (neither the
// network nor the broadcast address).
func isHost(p netip.Prefix, ip netip.Addr) bool {
	return ip.Is4() && p.Contains(ip) && ip != p.Masked().Addr() && ip != broadcast(p)
}

// checkGateway validates a gateway for subnet; an invalid addr picks the
// first host address, as Docker does.
func checkGateway(subnet netip.Prefix, gw string) (netip.Addr, error) {
	if gw == "" {
		return subnet.Addr().Next(), nil
	}
	a, err := netip.ParseAddr(gw)
	if err != nil || !a.Is4() {
		return netip.Addr{}, fmt.Errorf("invalid gateway %q: want an IPv4 address", gw)
	}
	if !isHost(subnet, a) {
		return netip.Addr{}, fmt.Errorf("gateway %s is not a host address of subnet %s", a, subnet)
	}
	return a, nil
}

// checkRequestedIP validates a container address asked for with --ip.
func checkRequestedIP(n Network, ip string, used map[netip.Addr]string) (netip.Addr, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is4() {
		return netip.Addr{}, fmt.Errorf("invalid --ip %q: want an IPv4 address", ip)
	}
	if !n.Subnet.IsValid() {
		return netip.Addr{}, fmt.Errorf("--ip %s: network %s is IPv6-only", a, n.Name)
	}
	if !isHost(n.Subnet, a) {
		return netip.Addr{}, fmt.Errorf("address %s is not a host address of network %s (%s)", a, n.Name, n.Subnet)
	}
	if a == n.Gateway {
		return netip.Addr{}, fmt.Errorf("address %s is the gateway of network %s", a, n.Name)
	}
	if owner, ok := used[a]; ok {
		return netip.Addr{}, fmt.Errorf("address %s is already in use by %s", a, owner)
	}
	return a, nil
}

// allocateIP returns the lowest free host address of the network.
func allocateIP(n Network, used map[netip.Addr]string) (netip.Addr, error) {
	for a := n.Subnet.Addr().Next(); isHost(n.Subnet, a); a = a.Next() {
		if _, taken := used[a]; !taken && a != n.Gateway {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("network %s (%s) has no free address", n.Name, n.Subnet)
}

// defaultPool is where the default network's subnet comes from: Docker's
// 172.17-31.0.0/16 then 192.168.x.0/20.
func defaultPool() []netip.Prefix {
	var out []netip.Prefix
	for i := 17; i <= 31; i++ {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{172, byte(i), 0, 0}), 16))
	}
	for i := 0; i < 256; i += 16 {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(i), 0}), 20))
	}
	return out
}

// chooseSubnet picks the first pool subnet overlapping none of taken.
func chooseSubnet(taken []netip.Prefix) (netip.Prefix, error) {
	for _, p := range defaultPool() {
		free := true
		for _, t := range taken {
			if t.Overlaps(p) {
				free = false
				break
			}
		}
		if free {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("no free subnet left in the default pool: create the network with --subnet")
}

// macFor derives a locally administered MAC from the IPv4 address, as
// Docker does (02:42:a.b.c.d), so a re-attached address keeps its MAC.
func macFor(ip netip.Addr) string {
	if !ip.IsValid() {
		return randomMAC().String() // IPv6 only: no IPv4 address to derive it from
	}
	b := ip.As4()
	return fmt.Sprintf("02:42:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3])
}

// randomMAC returns a random unicast, locally administered MAC.
func randomMAC() net.HardwareAddr {
	mac := make(net.HardwareAddr, 6)
	rand.Read(mac)
	mac[0] = mac[0]&0xfe | 0x02
	return mac
}
