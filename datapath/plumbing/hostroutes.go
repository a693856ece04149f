package plumbing

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// RouteProtocol marks the routes ebpfnet makes (ip route shows "proto
// 235"), so that a sync finds its own and no one else's.
const RouteProtocol = netlink.RouteProtocol(235)

// SyncHostRoutes makes the /32 routes of ebpfnet through the device dev
// exactly want, each with src as the preferred source (no routes when src
// is invalid).
func SyncHostRoutes(dev string, src netip.Addr, want []netip.Addr) error {
	l, err := netlink.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("routes through %s: %w", dev, err)
	}
	have, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{LinkIndex: l.Attrs().Index, Protocol: RouteProtocol},
		netlink.RT_FILTER_OIF|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return fmt.Errorf("list routes through %s: %w", dev, err)
	}
	keep := map[netip.Addr]bool{}
	if src.IsValid() {
		for _, a := range want {
			keep[a] = true
		}
	}
	var errs []error
	for _, r := range have {
		var p netip.Prefix
		ok := r.Dst != nil
		if ok {
			p, ok = IPNetPrefix(r.Dst)
		}
		if ok && p.IsSingleIP() && keep[p.Addr()] && r.Src.Equal(src.AsSlice()) {
			delete(keep, p.Addr())
			continue
		}
		if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("delete route %s: %w", r.Dst, err))
		}
	}
	for a := range keep {
		r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: PrefixIPNet(netip.PrefixFrom(a, 32)),
			Src: src.AsSlice(), Scope: netlink.SCOPE_LINK, Protocol: RouteProtocol}
		if err := netlink.RouteReplace(r); err != nil {
			errs = append(errs, fmt.Errorf("route %s via %s: %w", a, dev, err))
		}
	}
	return errors.Join(errs...)
}

// SetSoleAddress makes addr/32 the only IPv4 address of dev (none when addr
// is invalid).
func SetSoleAddress(dev string, addr netip.Addr) error {
	l, err := netlink.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("address of %s: %w", dev, err)
	}
	have, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", dev, err)
	}
	found := false
	for _, h := range have {
		if p, ok := IPNetPrefix(h.IPNet); ok && addr.IsValid() && p == netip.PrefixFrom(addr, 32) {
			found = true
			continue
		}
		if err := netlink.AddrDel(l, &h); err != nil {
			return fmt.Errorf("remove %s from %s: %w", h.IPNet, dev, err)
		}
	}
	if found || !addr.IsValid() {
		return nil
	}
	// No prefix route: the /32 routes of SyncHostRoutes are the device's.
	a := &netlink.Addr{IPNet: PrefixIPNet(netip.PrefixFrom(addr, 32)), Flags: unix.IFA_F_NOPREFIXROUTE}
	if err := netlink.AddrAdd(l, a); err != nil {
		return fmt.Errorf("address %s on %s: %w", addr, dev, err)
	}
	return nil
}
