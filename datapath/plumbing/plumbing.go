// Package plumbing is the datapath's kernel plumbing: netlink calls that
// make and inspect veth pairs, bridges, addresses and routes, and the
// per-interface sysctls. It knows nothing of networks, endpoints or the
// store: datapath decides what to make and calls it with names, addresses
// and MTUs. Only datapath imports it (internal/layering).
package plumbing

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
)

// PrefixIPNet is p as netlink's *net.IPNet.
func PrefixIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// IPNetPrefix is n as a netip.Prefix; false if n's address is invalid.
func IPNetPrefix(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	bits, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), bits), true
}

// LinkUpByName brings up the interface name of h's namespace.
func LinkUpByName(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return err
	}
	return h.LinkSetUp(l)
}

// loopbackIfindex is lo's ifindex in every network namespace (the kernel's
// LOOPBACK_IFINDEX).
const loopbackIfindex = 1

// LoopbackUp brings up h's namespace's lo: by its fixed ifindex, one
// request instead of a lookup by name and a request.
func LoopbackUp(h *netlink.Handle) error {
	lo := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: loopbackIfindex, Name: "lo"}}
	return h.LinkSetUp(lo)
}

// WithHandle runs fn with a netlink handle inside ns.
func WithHandle(ns netnsutil.Namespace, fn func(*netlink.Handle) error) error {
	nsh, err := ns.Open()
	if err != nil {
		return err
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", ns.Path, err)
	}
	defer h.Close()
	return fn(h)
}

// EnableForwarding turns on IPv4 forwarding for one interface of this
// namespace: bpf_fib_lookup refuses to route packets that arrive on an
// interface that does not forward. Only ebpfnet's own interfaces are
// touched, not the namespace-wide ip_forward.
func EnableForwarding(ifname string) error {
	path := filepath.Join("/proc/sys/net/ipv4/conf", ifname, "forwarding")
	if err := os.WriteFile(path, []byte("1"), 0o644); err != nil {
		return fmt.Errorf("enable forwarding on %s: %w", ifname, err)
	}
	return nil
}

// EnableForwarding6 is EnableForwarding for IPv6: bpf_fib_lookup answers
// nothing but "forwarding disabled" for a packet from an interface that
// does not forward, not even that a destination is the host's own. The
// kernel's own IPv6 forwarding stays off: it follows the namespace-wide
// setting, which ebpfnet does not touch.
func EnableForwarding6(ifname string) error {
	path := filepath.Join("/proc/sys/net/ipv6/conf", ifname, "forwarding")
	if err := os.WriteFile(path, []byte("1"), 0o644); err != nil {
		return fmt.Errorf("enable IPv6 forwarding on %s: %w", ifname, err)
	}
	return nil
}

// UplinkAddrs6 lists an uplink's global IPv6 addresses (none when it has no
// IPv6, or they cannot be read: then only [::1] reaches published ports
// from the host over IPv6).
func UplinkAddrs6(l netlink.Link) []netip.Addr {
	addrs, _ := netlink.AddrList(l, netlink.FAMILY_V6)
	var out []netip.Addr
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Is6() && !ip.Is4In6() && ip.IsGlobalUnicast() {
			out = append(out, ip)
		}
	}
	return out
}

// UplinkAddr is the address an uplink masquerades with: its first global
// IPv4 address.
func UplinkAddr(l netlink.Link) (netip.Addr, error) {
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
