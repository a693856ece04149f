package datapath

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ebpfnet/ebpfnet/datapath/plumbing"
	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
	"github.com/ebpfnet/ebpfnet/maps"
)

// DefaultNetwork is the network `attach --net=bridge` uses without --network.
const DefaultNetwork = "bridge"

// NetworkOptions are the flags of `ebpfnet network create`.
type NetworkOptions struct {
	Name       string
	Subnet     string // empty: pick from the default pool
	Gateway    string
	Uplink     string // empty: the interface of the default route, if any
	Bridge     string // empty: ebpfnet<ID>
	MTU        int    // 0: the uplink's MTU, else 1500
	ICC        bool
	Masquerade bool
	Internal   bool
	// GatewayMode: "nat" (default: from an uplink only published ports and
	// replies reach the containers) or "nat-unprotected" (Docker's: direct
	// routing to every container port).
	GatewayMode string
	// VNI makes it this host's part of an overlay network (overlay.go);
	// its MTU defaults to the uplink's minus VXLANOverhead.
	VNI uint32
	// ServiceCIDRs (IPv4 prefixes, e.g. Kubernetes' service CIDR) are
	// handed to the kernel's netfilter, where kube-proxy DNATs them, and
	// so are the replies of every flow netfilter translated.
	ServiceCIDRs []string
	// IPv6 makes the network dual stack: Subnet6 (empty: a free unique
	// local /64) and Gateway6 (empty: the subnet's first address).
	IPv6     bool
	Subnet6  string
	Gateway6 string
	// NoIPv4 (--ipv4=false, with IPv6) makes an IPv6-only network: no
	// IPv4 subnet, gateway or endpoint addresses.
	NoIPv4 bool
}

// maxServiceCIDRs bounds a network's service prefixes.
const maxServiceCIDRs = 16

// Gateway modes, as Docker's com.docker.network.bridge.gateway_mode_ipv4.
const (
	GatewayNAT            = "nat"
	GatewayNATUnprotected = "nat-unprotected"
)

// DefaultNetworkOptions are Docker's defaults.
func DefaultNetworkOptions(name string) NetworkOptions {
	return NetworkOptions{Name: name, ICC: true, Masquerade: true}
}

// CreateNetwork validates o, creates the bridge and programs the datapath.
func (i *Instance) CreateNetwork(o NetworkOptions) (Network, error) {
	var n Network
	err := i.withStore(func(st *store) (err error) {
		n, err = i.createNetwork(st, o)
		return err
	})
	return n, err
}

func (i *Instance) createNetwork(st *store, o NetworkOptions) (Network, error) {
	n, err := i.validateNetwork(st, o)
	if err != nil {
		return Network{}, err
	}
	views, err := i.datapath()
	if err != nil {
		return Network{}, err
	}
	if n.ID, err = st.NextNetworkID(); err != nil {
		return Network{}, err
	}
	if n.Bridge == "" {
		n.Bridge = fmt.Sprintf("ebpfnet%d", n.ID)
		if _, err := netlink.LinkByName(n.Bridge); err == nil {
			return Network{}, fmt.Errorf("interface %s already exists: choose a bridge name with --bridge", n.Bridge)
		}
	}

	var rollback undo
	defer rollback.run()
	n.BridgeMAC = randomMAC().String()
	var link netlink.Link
	overlayIfindex := 0
	if err := runSteps(&rollback,
		i.networkIntent(st, n),
		step{do: func() (err error) { link, err = makeBridge(n, &rollback); return err }},
		step{do: func() (err error) {
			if n.VNI != 0 {
				overlayIfindex, err = i.ensureOverlayDevice(n.MTU+VXLANOverhead, &rollback)
			}
			return err
		}},
		step{
			do:   func() error { return views.PutNetwork(networkEntry(n, link, overlayIfindex)) },
			undo: func() { views.DeleteNetwork(n.ID, n.Subnet) },
		},
		at("after-network-maps"),
		step{do: func() error {
			if n.Internal {
				return nil
			}
			return i.ensureUplink(n.Uplink, &rollback)
		}},
		step{do: func() error {
			if !i.dp.SockHooksAttached() {
				// Without them the host reaches published ports only from
				// outside.
				if err := i.dp.AttachSockHooks(); err != nil {
					i.log.Warn("host-local access to published ports is off", "err", err)
				}
			}
			return nil
		}},
		at("before-network-save"),
		step{do: func() error {
			n.Created = time.Now().UTC()
			if err := st.putNetwork(n); err != nil {
				return fmt.Errorf("save network: %w", err)
			}
			return nil
		}},
	); err != nil {
		return Network{}, err
	}
	rollback = nil
	// A fresh datapath has an empty firewall, and a network scope names
	// this network's id only now.
	if err := syncFirewall(st, views); err != nil {
		return n, fmt.Errorf("network %s created, but %w", n.Name, err)
	}
	i.log.Info("network created", "name", n.Name, "subnet", n.Subnet, "subnet6", n.Subnet6, "bridge", n.Bridge)
	return n, nil
}

// makeBridge creates n's bridge with its MAC, the gateway addresses (and
// with them the subnets' routes) and brings it up.
func makeBridge(n Network, rollback *undo) (netlink.Link, error) {
	// The datapath rewrites frames with the gateway MAC, so it must not
	// change. Docker sets one too.
	mac, err := net.ParseMAC(n.BridgeMAC)
	if err != nil {
		mac = randomMAC() // a record from before the MAC was kept
	}
	var link netlink.Link
	var del func()
	err = runSteps(rollback,
		step{
			do:   func() (err error) { del, err = plumbing.AddBridge(n.Bridge, n.MTU, mac); return err },
			undo: func() { del() },
		},
		at("after-bridge"),
		step{do: func() (err error) {
			var gateways []netip.Prefix
			if n.Subnet.IsValid() {
				gateways = append(gateways, netip.PrefixFrom(n.Gateway, n.Subnet.Bits()))
			}
			if n.Subnet6.IsValid() {
				gateways = append(gateways, netip.PrefixFrom(n.Gateway6, n.Subnet6.Bits()))
			}
			link, err = plumbing.AddressBridge(n.Bridge, gateways...)
			return err
		}},
	)
	return link, err
}

// networkEntry is the datapath's view of n, whose bridge is bridge.
func networkEntry(n Network, bridge netlink.Link, overlayIfindex int) maps.Network {
	return maps.Network{
		ID: n.ID, Subnet: n.Subnet, Gateway: n.Gateway, GatewayMAC: bridge.Attrs().HardwareAddr,
		BridgeIfindex: bridge.Attrs().Index, ICC: n.ICC, Masquerade: n.Masquerade, Internal: n.Internal,
		Unprotected: n.GatewayMode == GatewayNATUnprotected,
		VNI:         n.VNI, OverlayIfindex: overlayIfindex,
		ServiceCIDRs: n.ServiceCIDRs,
		Subnet6:      n.Subnet6, Gateway6: n.Gateway6,
	}
}

// validateNetwork checks everything before the kernel is touched.
func (i *Instance) validateNetwork(st *store, o NetworkOptions) (Network, error) {
	n := Network{Name: o.Name, Bridge: o.Bridge, Uplink: o.Uplink, MTU: o.MTU, ICC: o.ICC, Masquerade: o.Masquerade, Internal: o.Internal}
	if err := netnsutil.ValidName(o.Name); err != nil {
		return n, fmt.Errorf("network name: %w", err)
	}
	switch o.GatewayMode {
	case "", GatewayNAT:
	case GatewayNATUnprotected:
		if o.Internal {
			return n, fmt.Errorf("gateway mode %s: an internal network is never reachable from outside", o.GatewayMode)
		}
		n.GatewayMode = o.GatewayMode
	default:
		return n, fmt.Errorf("gateway mode %q: want %s or %s", o.GatewayMode, GatewayNAT, GatewayNATUnprotected)
	}
	if slices.Contains(reservedNetworkNames, o.Name) {
		return n, fmt.Errorf("network name %s is reserved: --network=%s is a network mode", o.Name, o.Name)
	}
	existing, err := st.networks()
	if err != nil {
		return n, err
	}
	var taken, taken6 []netip.Prefix
	if o.VNI != 0 {
		if o.VNI > MaxVNI {
			return n, fmt.Errorf("invalid VNI %d: at most %d", o.VNI, MaxVNI)
		}
		n.Driver, n.VNI = DriverOverlay, o.VNI
	}
	for _, e := range existing {
		if e.Name == o.Name {
			return n, fmt.Errorf("network %s already exists", o.Name)
		}
		if o.VNI != 0 && e.VNI == o.VNI {
			return n, fmt.Errorf("VNI %d is already used by network %s", o.VNI, e.Name)
		}
		if o.Bridge != "" && e.Bridge == o.Bridge {
			return n, fmt.Errorf("bridge %s is already used by network %s", o.Bridge, e.Name)
		}
		if e.Subnet.IsValid() {
			taken = append(taken, e.Subnet)
		}
		if e.Subnet6.IsValid() {
			taken6 = append(taken6, e.Subnet6)
		}
	}
	if o.NoIPv4 {
		if err := checkIPv6Only(o); err != nil {
			return n, err
		}
	} else if err := validateIPv4(&n, o, existing, taken); err != nil {
		return n, err
	}
	if err := validateIPv6(&n, o, existing, taken6); err != nil {
		return n, err
	}
	if o.Bridge != "" {
		if err := validIfName(o.Bridge); err != nil {
			return n, fmt.Errorf("bridge name: %w", err)
		}
		if _, err := netlink.LinkByName(o.Bridge); err == nil {
			return n, fmt.Errorf("interface %s already exists", o.Bridge)
		}
	}
	uplinkMTU := 0
	if o.Uplink != "" {
		if err := validIfName(o.Uplink); err != nil {
			return n, fmt.Errorf("uplink: %w", err)
		}
		l, err := netlink.LinkByName(o.Uplink)
		if err != nil {
			return n, fmt.Errorf("uplink %s: no such interface", o.Uplink)
		}
		uplinkMTU = l.Attrs().MTU
		if _, err := plumbing.UplinkAddr(l); err != nil && !o.Internal {
			return n, err
		}
	} else if l := plumbing.DefaultRouteLink(); l != nil {
		if _, err := plumbing.UplinkAddr(l); err == nil {
			n.Uplink, uplinkMTU = l.Attrs().Name, l.Attrs().MTU
		}
	}
	if o.VNI != 0 && o.MTU == 0 {
		// The frame must fit the underlay once encapsulated.
		uplinkMTU = cmp.Or(uplinkMTU, 1500) - VXLANOverhead
	}
	switch {
	case o.MTU == 0 && uplinkMTU > 0:
		n.MTU = uplinkMTU
	case o.MTU == 0:
		n.MTU = 1500
	case o.MTU < 68 || o.MTU > 65535:
		return n, fmt.Errorf("invalid MTU %d: must be between 68 and 65535", o.MTU)
	}
	return n, nil
}

// validateIPv4 gives n its IPv4 subnet, gateway and service prefixes.
func validateIPv4(n *Network, o NetworkOptions, existing []Network, taken []netip.Prefix) error {
	var err error
	if o.Subnet == "" {
		routes, err := plumbing.RoutedPrefixes()
		if err != nil {
			return err
		}
		if n.Subnet, err = chooseSubnet(append(taken, routes...)); err != nil {
			return err
		}
	} else if n.Subnet, err = parseSubnet(o.Subnet); err != nil {
		return err
	}
	for _, e := range existing {
		if e.Subnet.IsValid() && e.Subnet.Overlaps(n.Subnet) {
			return fmt.Errorf("subnet %s overlaps network %s (%s)", n.Subnet, e.Name, e.Subnet)
		}
	}
	if err := plumbing.CheckRoutedSubnet(n.Subnet); err != nil {
		return err
	}
	if n.Gateway, err = checkGateway(n.Subnet, o.Gateway); err != nil {
		return err
	}
	n.ServiceCIDRs, err = ParseServiceCIDRs(o.ServiceCIDRs, n.Subnet)
	return err
}

// checkIPv6Only refuses what an IPv6-only network (--ipv4=false) cannot
// have, as Docker 28 does.
func checkIPv6Only(o NetworkOptions) error {
	switch {
	case !o.IPv6:
		return fmt.Errorf("--ipv4=false needs --ipv6: a network must have at least one address family")
	case o.Subnet != "" || o.Gateway != "":
		return fmt.Errorf("--ipv4=false: an IPv4 subnet or gateway was given")
	case len(o.ServiceCIDRs) > 0:
		return fmt.Errorf("--ipv4=false: service CIDRs are IPv4")
	case o.VNI != 0:
		return fmt.Errorf("--ipv4=false: overlay networks need IPv4 (their VXLAN peers and remote endpoints are IPv4)")
	}
	return nil
}

// validateIPv6 gives n its IPv6 subnet and gateway if o asks for IPv6.
func validateIPv6(n *Network, o NetworkOptions, existing []Network, taken6 []netip.Prefix) error {
	if !o.IPv6 {
		if o.Subnet6 != "" || o.Gateway6 != "" {
			return fmt.Errorf("an IPv6 subnet or gateway needs --ipv6")
		}
		return nil
	}
	var err error
	if o.Subnet6 == "" {
		routes, err := plumbing.RoutedPrefixes6()
		if err != nil {
			return err
		}
		if n.Subnet6, err = chooseSubnet6(append(taken6, routes...)); err != nil {
			return err
		}
	} else if n.Subnet6, err = parseSubnet6(o.Subnet6); err != nil {
		return err
	}
	for _, e := range existing {
		if e.Subnet6.IsValid() && e.Subnet6.Overlaps(n.Subnet6) {
			return fmt.Errorf("subnet %s overlaps network %s (%s)", n.Subnet6, e.Name, e.Subnet6)
		}
	}
	if err := plumbing.CheckRoutedSubnet(n.Subnet6); err != nil {
		return err
	}
	n.Gateway6, err = checkGateway6(n.Subnet6, o.Gateway6)
	return err
}

// ParseServiceCIDRs validates a network's service prefixes: IPv4, none
// overlapping the network's subnet (its own addresses are forwarded in
// eBPF) or another, listed once each.
func ParseServiceCIDRs(in []string, subnet netip.Prefix) ([]netip.Prefix, error) {
	if len(in) > maxServiceCIDRs {
		return nil, fmt.Errorf("%d service CIDRs: at most %d", len(in), maxServiceCIDRs)
	}
	var out []netip.Prefix
	for _, s := range in {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil || !p.Addr().Is4() {
			return nil, fmt.Errorf("service CIDR %q: want an IPv4 CIDR such as 10.96.0.0/12", s)
		}
		p = p.Masked()
		if p.Overlaps(subnet) {
			return nil, fmt.Errorf("service CIDR %s overlaps the network's subnet %s", p, subnet)
		}
		for _, q := range out {
			if q.Overlaps(p) {
				return nil, fmt.Errorf("service CIDRs %s and %s overlap", q, p)
			}
		}
		out = append(out, p)
	}
	return out, nil
}

func validIfName(name string) error {
	if name == "" || len(name) > unix.IFNAMSIZ-1 {
		return fmt.Errorf("invalid interface name %q: must be 1-15 characters", name)
	}
	for _, r := range name {
		if r <= ' ' || r == '/' || r == ':' || r > '~' {
			return fmt.Errorf("invalid interface name %q", name)
		}
	}
	return nil
}

// RemoveNetwork deletes a network with no endpoints.
func (i *Instance) RemoveNetwork(name string) error {
	return i.withStore(func(st *store) error {
		n, ok, err := st.network(name)
		if err != nil {
			return err
		}
		if !ok {
			return notFoundf("network %s not found", name)
		}
		eps, err := st.endpoints()
		if err != nil {
			return err
		}
		var users []string
		for _, e := range eps {
			if e.Network == name {
				users = append(users, e.Name)
			}
		}
		if len(users) > 0 {
			slices.Sort(users)
			return fmt.Errorf("network %s has attached endpoints: %v (detach them first)", name, users)
		}
		// Whatever a crash left on the bridge goes with it.
		if err := i.sweepOrphans(st); err != nil {
			i.log.Warn("reconcile before network rm", "err", err)
		}
		if err := i.removeNetwork(st, n); err != nil {
			return fmt.Errorf("remove network %s: %w", name, err)
		}
		i.log.Info("network removed", "name", name)
		if err := i.applyFirewall(st); err != nil {
			return err
		}
		return i.releaseIfUnused(st)
	})
}

// removeNetwork undoes createNetwork: the datapath's entries, the uplink if
// no other network uses it, the bridge, and the record. It keeps going past
// errors so a half-made network (a failed attach's default network) is
// removed as far as possible, and keeps the record if anything failed. Its
// intent lets the next command finish a removal that died half way
// (finishNetworkRemove).
func (i *Instance) removeNetwork(st *store, n Network) error {
	views, err := i.datapath()
	if err != nil {
		return err
	}
	nets, err := st.networks()
	if err != nil {
		return err
	}
	nets = slices.DeleteFunc(nets, func(o Network) bool { return o.Name == n.Name })
	failed, err := i.beginRemoval(st, intent{Kind: intentNetworkRemove, Network: &n})
	if err != nil {
		return err
	}
	if err := runAll(
		step{do: func() error {
			if n.VNI == 0 {
				return nil
			}
			return i.releaseOverlay(views, n, nets)
		}},
		step{do: func() error { return views.DeleteNetwork(n.ID, n.Subnet) }},
		at("network-rm-after-maps"),
		step{do: func() error { return i.releaseUplink(n.Uplink, nets) }},
		at("network-rm-after-uplink"),
		step{do: func() error { return plumbing.DeleteLink(n.Bridge) }},
		at("network-rm-after-bridge"),
	); err != nil {
		failed()
		return err
	}
	if err := st.deleteNetwork(n.Name); err != nil {
		failed()
		return err
	}
	return nil
}

// Networks lists the instance's networks, sorted by name.
func (i *Instance) Networks() ([]Network, error) {
	var out []Network
	err := i.withStore(func(st *store) (err error) {
		out, err = st.networks()
		return err
	})
	slices.SortFunc(out, func(a, b Network) int { return cmp.Compare(a.Name, b.Name) })
	return out, err
}

// NetworkDetail is what `network inspect` shows.
type NetworkDetail struct {
	Network
	Endpoints []Endpoint `json:"endpoints"`
}

// InspectNetwork returns a network and its endpoints.
func (i *Instance) InspectNetwork(name string) (NetworkDetail, error) {
	var d NetworkDetail
	err := i.withStore(func(st *store) error {
		n, ok, err := st.network(name)
		if err != nil {
			return err
		}
		if !ok {
			return notFoundf("network %s not found", name)
		}
		d.Network = n
		eps, err := st.endpoints()
		for _, e := range eps {
			if e.Network == name {
				d.Endpoints = append(d.Endpoints, e)
			}
		}
		return err
	})
	return d, err
}
