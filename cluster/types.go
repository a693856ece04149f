package cluster

import (
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
	VNI     uint32       `json:"vni"`
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
	MAC     string     `json:"mac"`
	Host    string     `json:"host"`
	Name    string     `json:"name,omitempty"`
}

func (e Endpoint) String() string {
	return fmt.Sprintf("%s/%s (%s on %s)", e.Network, e.IP, e.Name, e.Host)
}
