package plumbing

import (
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// CheckRoutedSubnet refuses a subnet that overlaps a route this namespace
// already has (any table but local, default routes aside), as Docker does:
// the host would send the subnet's traffic by whichever route is more
// specific or older, not necessarily to the bridge. That includes an
// uplink's own connected route, and the route of a bridge that another
// instance (or a crashed command) left. Existing networks' routes are
// reported by name before this runs.
func CheckRoutedSubnet(subnet netip.Prefix) error {
	routes, err := netlink.RouteListFiltered(family(subnet.Addr()), &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst == nil || r.Table == unix.RT_TABLE_LOCAL || r.Type == unix.RTN_LOCAL || r.Type == unix.RTN_BROADCAST || r.Type == unix.RTN_MULTICAST {
			continue
		}
		p, ok := IPNetPrefix(r.Dst)
		if !ok || p.Bits() == 0 || !p.Overlaps(subnet) {
			continue
		}
		dev := ""
		if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil {
			dev = " dev " + l.Attrs().Name
		}
		return fmt.Errorf("subnet %s overlaps route %s%s of this host: choose another subnet", subnet, p, dev)
	}
	return nil
}

// family is a's netlink address family.
func family(a netip.Addr) int {
	if a.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

// RoutedPrefixes lists the IPv4 routes of this namespace, except default
// routes, so the default network's subnet avoids them.
func RoutedPrefixes() ([]netip.Prefix, error) { return routedPrefixes(netlink.FAMILY_V4) }

// RoutedPrefixes6 is RoutedPrefixes for IPv6.
func RoutedPrefixes6() ([]netip.Prefix, error) { return routedPrefixes(netlink.FAMILY_V6) }

func routedPrefixes(family int) ([]netip.Prefix, error) {
	routes, err := netlink.RouteListFiltered(family, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	var out []netip.Prefix
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		if p, ok := IPNetPrefix(r.Dst); ok && p.Bits() > 0 {
			out = append(out, p)
		}
	}
	return out, nil
}

// DefaultRouteLink is the interface of this namespace's IPv4 default route.
func DefaultRouteLink() netlink.Link {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil
	}
	for _, r := range routes {
		if (r.Dst == nil || r.Dst.IP.IsUnspecified()) && r.LinkIndex > 0 {
			if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil {
				return l
			}
		}
	}
	return nil
}

// HasDefaultRoute reports whether h's namespace has an IPv4 default route.
func HasDefaultRoute(h *netlink.Handle) bool { return hasDefaultRoute(h, netlink.FAMILY_V4) }

// HasDefaultRoute6 reports whether h's namespace has an IPv6 default route.
func HasDefaultRoute6(h *netlink.Handle) bool { return hasDefaultRoute(h, netlink.FAMILY_V6) }

func hasDefaultRoute(h *netlink.Handle, family int) bool {
	routes, err := h.RouteList(nil, family)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(routes, isDefaultRoute)
}

func isDefaultRoute(r netlink.Route) bool {
	return r.Dst == nil || (r.Dst.IP.IsUnspecified() && r.Dst.Mask != nil && net.IP(r.Dst.Mask).IsUnspecified())
}

// DefaultRouteVia reports whether the namespace's default route leaves
// through ifindex via gw.
func DefaultRouteVia(h *netlink.Handle, ifindex int, gw netip.Addr) bool {
	routes, err := h.RouteList(nil, family(gw))
	if err != nil {
		return false
	}
	return slices.ContainsFunc(routes, func(r netlink.Route) bool {
		g, _ := netip.AddrFromSlice(r.Gw)
		return isDefaultRoute(r) && r.LinkIndex == ifindex && g.Unmap() == gw
	})
}
