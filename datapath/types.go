package datapath

import (
	"net/netip"
	"time"

	"github.com/ebpfnet/ebpfnet/datapath/ports"
)

// Network is the stored description of a bridge network.
type Network struct {
	ID      uint32       `json:"id"`
	Name    string       `json:"name"`
	Subnet  netip.Prefix `json:"subnet"`
	Gateway netip.Addr   `json:"gateway"`
	// Subnet6 and Gateway6 make it dual stack (--ipv6); zero: IPv4 only.
	Subnet6    netip.Prefix `json:"subnet6,omitzero"`
	Gateway6   netip.Addr   `json:"gateway6,omitzero"`
	Bridge     string       `json:"bridge"`
	BridgeMAC  string       `json:"bridge_mac,omitempty"` // kept for a bridge made again (netrepair.go)
	Uplink     string       `json:"uplink,omitempty"`
	MTU        int          `json:"mtu"`
	ICC        bool         `json:"icc"`
	Masquerade bool         `json:"ip_masquerade"`
	Internal   bool         `json:"internal"`
	// GatewayMode "nat-unprotected" lets an uplink route to every
	// container port; empty is "nat".
	GatewayMode string `json:"gateway_mode,omitempty"`
	// Driver is "" for a bridge network, DriverOverlay for this host's
	// part of an overlay network, which VNI identifies across hosts.
	Driver string `json:"driver,omitempty"`
	VNI    uint32 `json:"vni,omitempty"`
	// ServiceCIDRs go to the kernel's netfilter (NetworkOptions).
	ServiceCIDRs []netip.Prefix `json:"service_cidrs,omitempty"`
	Created      time.Time      `json:"created"`
}

// resolver is where n's containers find the embedded resolver (and the
// host, for host-gateway): its IPv4 gateway, or its IPv6 one on an
// IPv6-only network.
func (n Network) resolver() netip.Addr {
	if n.Gateway.IsValid() {
		return n.Gateway
	}
	return n.Gateway6
}

// hairpin: n's bridge ports reflect frames, so that netfilter's DNAT of a
// pod to its own Service, bridged, reaches it (only networks that hand
// services to netfilter need it; elsewhere a container's own broadcasts
// would come back to it).
func (n Network) hairpin() bool { return len(n.ServiceCIDRs) > 0 }

// Prefix is ep's IPv4 address with n's prefix length; zero on an IPv6-only
// network.
func (ep Endpoint) Prefix(n Network) netip.Prefix {
	if !ep.IP.IsValid() {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(ep.IP, n.Subnet.Bits())
}

// Mode is a Docker network mode.
type Mode string

const (
	ModeBridge    Mode = "bridge"
	ModeNone      Mode = "none"
	ModeHost      Mode = "host"
	ModeContainer Mode = "container"
)

// Endpoint is the stored description of one attached network namespace.
type Endpoint struct {
	Name     string `json:"name"`
	Mode     Mode   `json:"mode"`
	Netns    string `json:"netns"`     // /run/netns/NAME, /proc/PID/ns/net or the path given
	NetnsIno uint64 `json:"netns_ino"` // identity of the namespace
	// NetnsCookie names the namespace as the socket hooks see it (their
	// bpf_get_netns_cookie): its sockets reach services (lb_clients).
	NetnsCookie uint64 `json:"netns_cookie,omitempty"`
	// OwnNetns is set when ebpfnet created the named netns (ebpfnet run).
	OwnNetns bool `json:"own_netns,omitempty"`

	// Bridge mode only.
	Network string     `json:"network,omitempty"`
	IP      netip.Addr `json:"ip,omitzero"`
	// IP6 is its global IPv6 address on a dual-stack network; its
	// link-local one is the EUI-64 of MAC (LinkLocal).
	IP6              netip.Addr `json:"ip6,omitzero"`
	MAC              string     `json:"mac,omitempty"`
	HostVeth         string     `json:"host_veth,omitempty"`
	HostIfindex      int        `json:"host_ifindex,omitempty"`
	ContainerIfindex int        `json:"container_ifindex,omitempty"`
	DefaultRoute     bool       `json:"default_route,omitempty"`  // the namespace's default route is via this interface
	DefaultRoute6    bool       `json:"default_route6,omitempty"` // and its IPv6 default route
	Ports            ports.List `json:"ports,omitempty"`
	// IfName is the container interface; empty means eth0 (records made
	// before it was configurable).
	IfName string `json:"ifname,omitempty"`
	// ContainerID is the owner's key (a CNI container ID) when a front end
	// attached the endpoint for a runtime; with IfName it identifies it.
	ContainerID string `json:"container_id,omitempty"`
	// PeerName is set on a prepared endpoint (PrepareEndpoint): a runtime
	// (Docker) moves the container end into its sandbox itself, and this is
	// the end's name while it is in the host's namespace. Such an endpoint
	// has no NetnsIno; it lives as long as its host veth.
	PeerName string `json:"peer_name,omitempty"`
	// ContainerName is the runtime's name of the container (Docker's,
	// without the leading "/"), when a front end could learn it: ls,
	// errors and metrics show it instead of Name (containername.go).
	// Records without it are fine: the name is a nicety.
	ContainerName string `json:"container_name,omitempty"`

	// Name resolution (dns.go): --network-alias, --dns, --add-host, and the
	// /etc/netns/NAME directory whose resolv.conf and hosts ebpfnet wrote.
	Aliases    []string     `json:"aliases,omitempty"`
	DNS        []netip.Addr `json:"dns,omitempty"`
	ExtraHosts []string     `json:"extra_hosts,omitempty"`
	EtcDir     string       `json:"etc_dir,omitempty"`

	Created time.Time `json:"created"`
}
