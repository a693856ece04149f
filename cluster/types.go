package cluster

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"go.uber.org/zap"

	"github.com/ebpfnet/ebpfnet/datapath"
)

func nopZap() *zap.Logger { return zap.NewNop() }

// Host is a member of the cluster, present while its lease lives.
type Host struct {
	Name string `json:"name"`
	// Addr is the underlay address other hosts send VXLAN packets to.
	Addr netip.Addr `json:"addr"`
	// MAC of the host's uplink, if known.
	MAC string `json:"mac,omitempty"`
	// Lease the host's records live under.
	Lease   int64     `json:"lease"`
	Started time.Time `json:"started"`
}

// Network is an overlay network, the same on every host.
type Network struct {
	Name    string       `json:"name"`
	Subnet  netip.Prefix `json:"subnet"`
	Gateway netip.Addr   `json:"gateway"`
	// Subnet6 and Gateway6 make it dual stack (--ipv6); zero: IPv4 only.
	// An endpoint's IPv6 address is its IPv4 one's twin (IP6For), so the
	// IPv4 allocation makes both unique in the cluster.
	Subnet6  netip.Prefix `json:"subnet6,omitzero"`
	Gateway6 netip.Addr   `json:"gateway6,omitzero"`
	VNI      uint32       `json:"vni"`
	// BlockBits is the prefix length of the per-host address blocks.
	BlockBits int  `json:"block_bits"`
	ICC       bool `json:"icc"`
	Internal  bool `json:"internal"`
	MTU       int  `json:"mtu,omitempty"` // 0: the underlay's minus VXLAN overhead (50)
	// ServiceCIDRs go to each host's netfilter (datapath.NetworkOptions).
	ServiceCIDRs []netip.Prefix `json:"service_cidrs,omitempty"`
	Created      time.Time      `json:"created"`
	CreatedBy    string         `json:"created_by,omitempty"`
}

// NetworkOptions create a Network.
type NetworkOptions struct {
	Name   string
	Subnet string
	// Gateway defaults to the subnet's first address.
	Gateway string
	// IPv6 makes the network dual stack: Subnet6 (empty: a random unique
	// local /64) must have at least as many host bits as Subnet; Gateway6,
	// if set, must be Gateway's twin (Network.IP6For).
	IPv6     bool
	Subnet6  string
	Gateway6 string
	// VNI 0 allocates the lowest free one from FirstVNI.
	VNI       uint32
	BlockBits int // 0: DefaultBlockBits (or the subnet when it is smaller)
	ICC       bool
	Internal  bool
	MTU       int
	// ServiceCIDRs: datapath.NetworkOptions.
	ServiceCIDRs []string
	// Host creating the network (recorded only).
	Host string
}

// DefaultNetworkOptions are Docker's defaults for a network NAME.
func DefaultNetworkOptions(name string) NetworkOptions {
	return NetworkOptions{Name: name, ICC: true}
}

// VNI range: Docker's overlay driver allocates from 4096 up.
const (
	FirstVNI         = 4096
	MaxVNI           = datapath.MaxVNI
	DefaultBlockBits = 26
)

// Block is an address block of a network with affinity to one host: only
// that host allocates addresses from it.
type Block struct {
	Network string       `json:"network"`
	CIDR    netip.Prefix `json:"cidr"`
	Host    string       `json:"host"`
}

// Endpoint is a container's address on an overlay network.
type Endpoint struct {
	Network string     `json:"network"`
	IP      netip.Addr `json:"ip"`
	// IP6 is IP's twin on a dual-stack network (Network.IP6For).
	IP6  netip.Addr `json:"ip6,omitzero"`
	MAC  string     `json:"mac"`
	Host string     `json:"host"`
	Name string     `json:"name,omitempty"`
}

// IP6For is the IPv6 twin of ip, an IPv4 address of n.Subnet, on a
// dual-stack network: n.Subnet6's address at the same offset from the
// subnet's start (10.210.0.64 in 10.210.0.0/24 is fd00:210::40 in
// fd00:210::/64). The zero Addr if n is IPv4-only or ip is outside n.Subnet.
func (n Network) IP6For(ip netip.Addr) netip.Addr {
	if !n.Subnet6.IsValid() || !ip.Is4() || !n.Subnet.Contains(ip) {
		return netip.Addr{}
	}
	b := n.Subnet6.Masked().Addr().As16()
	binary.BigEndian.PutUint32(b[12:], binary.BigEndian.Uint32(b[12:])+be4(ip)-be4(n.Subnet.Masked().Addr()))
	return netip.AddrFrom16(b)
}

// IP4For is the IPv4 address whose twin is ip6 (IP6For), or the zero Addr
// if there is none.
func (n Network) IP4For(ip6 netip.Addr) netip.Addr {
	if !n.Subnet6.IsValid() || !ip6.Is6() || ip6.Is4In6() || !n.Subnet6.Contains(ip6) {
		return netip.Addr{}
	}
	b, base := ip6.As16(), n.Subnet6.Masked().Addr().As16()
	for i := 0; i < 12; i++ {
		if b[i] != base[i] {
			return netip.Addr{}
		}
	}
	off := binary.BigEndian.Uint32(b[12:]) - binary.BigEndian.Uint32(base[12:])
	if off >= 1<<(32-n.Subnet.Bits()) {
		return netip.Addr{}
	}
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], be4(n.Subnet.Masked().Addr())+off)
	return netip.AddrFrom4(a)
}

func be4(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func (e Endpoint) String() string {
	return fmt.Sprintf("%s/%s (%s on %s)", e.Network, e.IP, e.Name, e.Host)
}
