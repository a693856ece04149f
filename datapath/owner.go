package datapath

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
)

// What runtime-driven front ends (CNI, Docker) need beyond the CLI:
// endpoints keyed by an owner (container ID + interface name), a chosen
// interface name, MAC and gateway, lookup and removal that tolerate
// anything already being gone.

const defaultIfName = "eth0"

// Interface is the endpoint's container interface name.
func (e Endpoint) Interface() string { return cmp.Or(e.IfName, defaultIfName) }

// sharesInterface reports whether attaching o into a namespace e already
// occupies would clash with e: a none-mode endpoint owns the whole namespace,
// bridge endpoints only their interface.
func sharesInterface(e Endpoint, o AttachOptions) bool {
	if e.Mode != ModeBridge || o.Mode != ModeBridge {
		return true
	}
	return e.Interface() == cmp.Or(o.IfName, defaultIfName)
}

// checkOwner validates the runtime-facing options before anything else.
func checkOwner(o AttachOptions) error {
	if o.IfName != "" {
		if err := validIfName(o.IfName); err != nil {
			return fmt.Errorf("container interface: %w", err)
		}
	}
	if o.ContainerID != "" {
		if err := validContainerID(o.ContainerID); err != nil {
			return err
		}
	}
	if o.Mode != ModeBridge && (o.MAC != "" || o.Gateway != "" || o.IfName != "") {
		return errors.New("an interface name, MAC or gateway needs bridge mode")
	}
	return CheckMAC(o.MAC)
}

// CheckMAC checks a requested container MAC (--mac-address, CNI's mac) as
// attach will take it: an Ethernet unicast address, not all zeroes. Empty
// is fine: the MAC is derived from the IP. Front ends call it before they
// change anything (run makes a namespace, an overlay attach takes an
// address in the cluster first).
func CheckMAC(mac string) error {
	if mac == "" {
		return nil
	}
	_, err := endpointMAC(mac, netip.Addr{})
	return err
}

// validContainerID accepts what the CNI spec allows a container ID to be:
// letters, digits, '_', '.', '-', starting with a letter or digit.
func validContainerID(id string) error {
	if id == "" || len(id) > 1024 {
		return fmt.Errorf("invalid container ID %q: must be 1-1024 characters", id)
	}
	for i, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || (i > 0 && (r == '-' || r == '_' || r == '.'))
		if !ok {
			return fmt.Errorf("invalid container ID %q: use letters, digits, '-', '_' and '.'", id)
		}
	}
	return nil
}

// ownedEndpointName names the endpoint of (containerID, ifName): the first 12
// characters of the ID and the interface, e.g. "3f2a9c01b7de-eth0", readable
// in `ebpfnet ls`. Another owner already holding that name (two IDs sharing
// a prefix) gets a hash of the full key appended, so names never collide;
// lookups go by the full key stored on the record, never by the name.
func ownedEndpointName(containerID, ifName string, eps []Endpoint) string {
	ifName = cmp.Or(ifName, defaultIfName)
	short := containerID
	if len(short) > 12 {
		short = short[:12]
	}
	name := short + "-" + sanitizeName(ifName)
	for _, e := range eps {
		if e.Name == name {
			sum := sha256.Sum256([]byte(containerID + "/" + ifName))
			return name + "-" + hex.EncodeToString(sum[:4])
		}
	}
	return name
}

// sanitizeName maps characters an interface name may have but an endpoint
// name may not to '_'.
func sanitizeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, s)
}

// checkGatewayOf accepts an expected gateway only if it is the network's:
// the bridge holds the gateway address and the datapath answers with its MAC.
func checkGatewayOf(n Network, gw string) error {
	if gw == "" {
		return nil
	}
	a, err := netip.ParseAddr(gw)
	if err != nil || !a.Is4() {
		return fmt.Errorf("invalid gateway %q: want an IPv4 address", gw)
	}
	if a != n.Gateway {
		return fmt.Errorf("gateway %s is not the gateway of network %s (%s)", a, n.Name, n.Gateway)
	}
	return nil
}

// endpointMAC parses a requested MAC, or derives one from the address.
func endpointMAC(want string, ip netip.Addr) (net.HardwareAddr, error) {
	if want == "" {
		return net.ParseMAC(macFor(ip))
	}
	mac, err := net.ParseMAC(want)
	if err != nil || len(mac) != 6 {
		return nil, fmt.Errorf("invalid MAC %q: want an Ethernet address such as 02:42:ac:1e:00:02", want)
	}
	if mac[0]&1 != 0 {
		return nil, fmt.Errorf("invalid MAC %s: a multicast address cannot be an interface's", mac)
	}
	if mac.String() == "00:00:00:00:00:00" {
		return nil, fmt.Errorf("invalid MAC %s: all zeroes", mac)
	}
	return mac, nil
}

// hasState reports whether the instance has a store, so lookups on an
// instance that never existed (or was wiped) create nothing.
func (i *Instance) hasState() bool {
	_, err := os.Stat(filepath.Join(i.cfg.StateDir, "state.db"))
	return err == nil
}

// EndpointFor finds the endpoint a runtime attached as (containerID, ifName);
// an empty ifName is eth0. Missing state is "not found", not an error.
func (i *Instance) EndpointFor(containerID, ifName string) (Endpoint, bool, error) {
	if !i.hasState() {
		return Endpoint{}, false, nil
	}
	var ep Endpoint
	var found bool
	err := i.withStore(func(st *store) (err error) {
		ep, found, err = endpointFor(st, containerID, ifName)
		return err
	})
	return ep, found, err
}

func endpointFor(st *store, containerID, ifName string) (Endpoint, bool, error) {
	eps, err := st.endpoints()
	if err != nil {
		return Endpoint{}, false, err
	}
	for _, e := range eps {
		if e.ContainerID == containerID && e.Interface() == cmp.Or(ifName, defaultIfName) {
			return e, true, nil
		}
	}
	return Endpoint{}, false, nil
}

// RemoveEndpoint detaches the endpoint of (containerID, ifName) as far as
// anything of it is left: a vanished namespace, veth, pins or store are no
// error. It reports whether there was an endpoint.
func (i *Instance) RemoveEndpoint(containerID, ifName string) (Endpoint, bool, error) {
	if !i.hasState() {
		return Endpoint{}, false, nil
	}
	var ep Endpoint
	var found bool
	err := i.withStore(func(st *store) (err error) {
		if ep, found, err = endpointFor(st, containerID, ifName); err != nil || !found {
			return err
		}
		if err := i.detachEndpoint(st, ep); err != nil {
			return err
		}
		i.log.Info("detached", "endpoint", ep.Name, "container", containerID)
		return i.releaseIfUnused(st)
	})
	return ep, found, err
}

// EnsureNetwork returns the network o names, creating it on first use. An
// existing network that disagrees with a setting o makes explicit (subnet,
// gateway, bridge, uplink, MTU; masquerade, ICC and internal always) is an
// error and stays as it is. created reports whether this call made it.
func (i *Instance) EnsureNetwork(o NetworkOptions) (n Network, created bool, err error) {
	err = i.withStore(func(st *store) error {
		existing, ok, err := st.network(o.Name)
		if err != nil {
			return err
		}
		if ok {
			n = existing
			return networkAgrees(existing, o)
		}
		n, err = i.createNetwork(st, o)
		created = err == nil
		return err
	})
	return n, created, err
}

// networkAgrees lists every difference between n and the options.
func networkAgrees(n Network, o NetworkOptions) error {
	var diffs []string
	differ := func(what string, have, want any) {
		diffs = append(diffs, fmt.Sprintf("%s is %v, config says %v", what, have, want))
	}
	if o.Subnet != "" {
		if p, err := parseSubnet(o.Subnet); err != nil {
			return err
		} else if p != n.Subnet {
			differ("subnet", n.Subnet, p)
		}
	}
	if o.Gateway != "" {
		if a, err := netip.ParseAddr(o.Gateway); err != nil || a != n.Gateway {
			differ("gateway", n.Gateway, o.Gateway)
		}
	}
	if o.Bridge != "" && o.Bridge != n.Bridge {
		differ("bridge", n.Bridge, o.Bridge)
	}
	if o.Uplink != "" && o.Uplink != n.Uplink {
		differ("uplink", cmp.Or(n.Uplink, "(none)"), o.Uplink)
	}
	if o.MTU != 0 && o.MTU != n.MTU {
		differ("mtu", n.MTU, o.MTU)
	}
	if o.Masquerade != n.Masquerade {
		differ("ip masquerade", n.Masquerade, o.Masquerade)
	}
	if o.ICC != n.ICC {
		differ("icc", n.ICC, o.ICC)
	}
	if o.Internal != n.Internal {
		differ("internal", n.Internal, o.Internal)
	}
	if want, err := ParseServiceCIDRs(o.ServiceCIDRs, n.Subnet); err != nil {
		return err
	} else if !SamePrefixes(want, n.ServiceCIDRs) {
		differ("service CIDRs", n.ServiceCIDRs, want)
	}
	if len(diffs) > 0 {
		return fmt.Errorf("network %s exists with other settings: %s", n.Name, strings.Join(diffs, "; "))
	}
	return nil
}

// SamePrefixes: a and b hold the same prefixes, in any order.
func SamePrefixes(a, b []netip.Prefix) bool {
	if len(a) != len(b) {
		return false
	}
	for _, p := range a {
		if !slices.Contains(b, p) {
			return false
		}
	}
	return true
}

// Ready checks that the instance can work: its state dir opens and the
// datapath loads (bpffs mounted, pin root writable, programs verified). An
// instance with nothing in it is left with nothing pinned.
func (i *Instance) Ready() error {
	return i.withStore(func(st *store) error {
		if _, err := i.datapath(); err != nil {
			return fmt.Errorf("datapath: %w", err)
		}
		return i.releaseIfUnused(st)
	})
}

// ValidName reports whether name can name a network or an endpoint, so a
// front end can refuse bad input before it changes anything.
func ValidName(name string) error { return netnsutil.ValidName(name) }
