package datapath

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// checkRoutedSubnet refuses a subnet that overlaps a route this namespace
// already has (any table but local, default routes aside), as Docker does:
// the host would send the subnet's traffic by whichever route is more
// specific or older, not necessarily to the bridge. That includes an
// uplink's own connected route, and the route of a bridge that another
// instance (or a crashed command) left. Existing networks' routes are
// reported by name before this runs.
func checkRoutedSubnet(subnet netip.Prefix) error {
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst == nil || r.Table == unix.RT_TABLE_LOCAL || r.Type == unix.RTN_LOCAL || r.Type == unix.RTN_BROADCAST {
			continue
		}
		p, ok := ipNetPrefix(r.Dst)
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
