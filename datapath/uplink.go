package datapath

import (
	"fmt"

	"github.com/vishvananda/netlink"

	"github.com/ebpfnet/ebpfnet/datapath/plumbing"
	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

// ensureUplink registers an uplink in the datapath (its address for
// masquerade and published ports) and attaches from_uplink to it, once per
// uplink however many networks use it.
func (i *Instance) ensureUplink(name string, rollback *undo) error {
	if name == "" {
		return nil
	}
	views, err := i.datapath()
	if err != nil {
		return err
	}
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("uplink %s: %w", name, err)
	}
	ip, err := plumbing.UplinkAddr(l)
	if err != nil {
		return err
	}
	idx := l.Attrs().Index
	if i.dp.LinkedProgramID(loader.ProgFromUplink, name) != 0 {
		// Already serving another network: its IPv6 addresses (for the
		// socket hooks) are read again, which also fills them in for an
		// uplink attached by a version without them.
		return views.PutUplinkIPs6(idx, plumbing.UplinkAddrs6(l))
	}
	if err := views.PutUplink(maps.Uplink{Ifindex: idx, IP: ip, MAC: l.Attrs().HardwareAddr}); err != nil {
		return err
	}
	rollback.add(func() { views.DeleteUplink(idx) })
	if err := views.PutUplinkIPs6(idx, plumbing.UplinkAddrs6(l)); err != nil {
		return err
	}
	if _, err := i.dp.AttachTCXIngress(loader.ProgFromUplink, idx, name); err != nil {
		return err
	}
	rollback.add(func() { i.dp.DetachTCX(loader.ProgFromUplink, name) })
	i.log.Info("uplink attached", "uplink", name, "ip", ip)
	return nil
}

// releaseUplink detaches from_uplink from an uplink no remaining network uses.
func (i *Instance) releaseUplink(name string, remaining []Network) error {
	if name == "" {
		return nil
	}
	for _, n := range remaining {
		if n.Uplink == name {
			return nil
		}
	}
	views, err := i.datapath()
	if err != nil {
		return err
	}
	if l, err := netlink.LinkByName(name); err == nil {
		if err := views.DeleteUplink(l.Attrs().Index); err != nil {
			return err
		}
	}
	return i.dp.DetachTCX(loader.ProgFromUplink, name)
}
