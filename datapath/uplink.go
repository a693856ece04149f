package datapath

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"

	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

// uplinkAddr is the address an uplink masquerades with: its first global
// IPv4 address.
func uplinkAddr(l netlink.Link) (netip.Addr, error) {
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("addresses of %s: %w", l.Attrs().Name, err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok && ip.IsGlobalUnicast() {
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("uplink %s has no IPv4 address to masquerade with", l.Attrs().Name)
}

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
	ip, err := uplinkAddr(l)
	if err != nil {
		return err
	}
	idx := l.Attrs().Index
	if i.dp.LinkedProgramID(loader.ProgFromUplink, name) != 0 {
		return nil // already serving another network
	}
	if err := views.PutUplink(maps.Uplink{Ifindex: idx, IP: ip, MAC: l.Attrs().HardwareAddr}); err != nil {
		return err
	}
	rollback.add(func() { views.DeleteUplink(idx) })
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

// enableForwarding turns on IPv4 forwarding for one interface of this
// namespace: bpf_fib_lookup refuses to route packets that arrive on an
// interface that does not forward. Only ebpfnet's own interfaces are
// touched, not the namespace-wide ip_forward.
func enableForwarding(ifname string) error {
	path := filepath.Join("/proc/sys/net/ipv4/conf", ifname, "forwarding")
	if err := os.WriteFile(path, []byte("1"), 0o644); err != nil {
		return fmt.Errorf("enable forwarding on %s: %w", ifname, err)
	}
	return nil
}
