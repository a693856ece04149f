package loader

// Exported names for the layouts bpf2go mirrored from bpf/lib/*.h.
type (
	Counter          = fromContainerCounter
	EndpointCounters = fromContainerEndpointCounters
	EndpointInfo     = fromContainerEndpointInfo
	NetworkInfo      = fromContainerNetworkInfo
	SubnetKey        = fromContainerSubnetKey
	IP6Key           = fromContainerIp6Key
	Network6Info     = fromContainerNetwork6Info
	Subnet6Key       = fromContainerSubnet6Key
	DropReason       = fromContainerDropReason
	Direction        = fromContainerDirection
	Verdict          = fromContainerVerdict
	NetworkFlags     = fromContainerNetworkFlags
	CTKey            = fromContainerCtKey
	CTEntry          = fromContainerCtEntry
	CT6Key           = fromContainerCt6Key // conntrack6's (bpf/lib/nat6.h)
	CT6Entry         = fromContainerCt6Entry
	CTKind           = fromContainerCtKind
	CTState          = fromContainerCtState
	PortKey          = fromContainerPortKey
	Port6Key         = fromContainerPort6Key // ports6's (bpf/lib/ports.h)
	PortEntry        = fromContainerPortEntry
	UplinkInfo       = fromContainerUplinkInfo
	MonitorEvent     = fromContainerMonitorEvent
	MonitorControl   = fromContainerMonitorControl
	MonitorType      = fromContainerMonitorType
	FWKey            = fromContainerFwKey
	FWRule           = fromContainerFwRule
	FW6Key           = fromContainerFw6Key
	FWScopeKind      = fromContainerFwScopeKind
	FWAction         = fromContainerFwAction
	RemoteEndpoint   = fromContainerRemoteEndpoint
	OverlayNetwork   = fromContainerOverlayNetwork
	OverlayCounters  = fromContainerOverlayHostCounters
	ServiceCIDRKey   = fromContainerServiceCidrKey
	EndpointFlags    = fromContainerEndpointFlags
	LBKey            = sockLbKey
	LBService        = sockLbService
	LBBackendKey     = sockLbBackendKey
	LBBackend        = sockLbBackend
	LBAffinityKey    = sockLbAffinityKey
	LBAffinity       = sockLbAffinity
	LBReverseKey     = sockLbReverseKey
	LBScope          = sockLbScope
	LBFlags          = sockLbFlags
)

const (
	LBScopeExact    = sockLbScopeLB_SCOPE_EXACT
	LBScopeNodePort = sockLbScopeLB_SCOPE_NODEPORT
	LBExternalLocal = sockLbFlagsLB_F_EXTERNAL_LOCAL
	LBInternalLocal = sockLbFlagsLB_F_INTERNAL_LOCAL
)

const (
	DirFromContainer = fromContainerDirectionDIR_FROM_CONTAINER
	DirFromUplink    = fromContainerDirectionDIR_FROM_UPLINK
	DirFromOverlay   = fromContainerDirectionDIR_FROM_OVERLAY
	DirFromHost      = fromContainerDirectionDIR_FROM_HOST
	NumDirections    = fromContainerDirectionDIR_MAX

	VerdictForward = fromContainerVerdictVERDICT_FORWARD
	VerdictSNAT    = fromContainerVerdictVERDICT_SNAT
	VerdictDNAT    = fromContainerVerdictVERDICT_DNAT
	VerdictPass    = fromContainerVerdictVERDICT_PASS
	VerdictDrop    = fromContainerVerdictVERDICT_DROP
	// VerdictKernelNAT: handed to the stack for netfilter's NAT
	// (bpf/lib/kernel_nat.h).
	VerdictKernelNAT = fromContainerVerdictVERDICT_KERNEL_NAT
	NumVerdicts      = fromContainerVerdictVERDICT_MAX
	// VerdictSlots is the stride of the verdicts map: direction *
	// VerdictSlots + verdict (room for verdicts to come).
	VerdictSlots = uint32(fromContainerVerdictLimitsVERDICT_SLOTS)

	NumDropReasons = fromContainerDropReasonDROP_MAX

	NetICC        = fromContainerNetworkFlagsNET_F_ICC
	NetMasquerade = fromContainerNetworkFlagsNET_F_MASQUERADE
	NetInternal   = fromContainerNetworkFlagsNET_F_INTERNAL
	// NetUnprotected: gateway mode nat-unprotected, no direct routing protection.
	NetUnprotected = fromContainerNetworkFlagsNET_F_UNPROTECTED
	// NetKernelNAT: the network has service prefixes; the kernel's
	// netfilter NATs some of its flows.
	NetKernelNAT = fromContainerNetworkFlagsNET_F_KERNEL_NAT
	// NetIPv6: dual stack, the network's gateway6 and its endpoints' ip6
	// are set.
	NetIPv6   = fromContainerNetworkFlagsNET_F_IPV6
	EPOverlay = fromContainerEndpointFlagsEP_F_OVERLAY

	CTKindSNAT    = fromContainerCtKindCT_KIND_SNAT
	CTKindDNAT    = fromContainerCtKindCT_KIND_DNAT
	CTKindHairpin = fromContainerCtKindCT_KIND_HAIRPIN
	CTKindRouted  = fromContainerCtKindCT_KIND_ROUTED
	// CTKindServiceRouted: from outside to a Service's endpoint elsewhere.
	CTKindServiceRouted = fromContainerCtKindCT_KIND_SERVICE_ROUTED
	// CTKindNAT64: from an IPv6 client to a published port of an IPv4-only
	// container (bpf/lib/nat64.h), in conntrack6.
	CTKindNAT64 = fromContainerCtKindCT_KIND_NAT64

	CTStateSYN         = fromContainerCtStateCT_ST_SYN
	CTStateEstablished = fromContainerCtStateCT_ST_ESTABLISHED
	CTStateFIN         = fromContainerCtStateCT_ST_FIN
	CTStateRST         = fromContainerCtStateCT_ST_RST

	FWScopeAll     = fromContainerFwScopeKindFW_SCOPE_ALL
	FWScopeNetwork = fromContainerFwScopeKindFW_SCOPE_NETWORK
	FWScopePort    = fromContainerFwScopeKindFW_SCOPE_PORT
	FWAllow        = fromContainerFwActionFW_ALLOW
	FWDeny         = fromContainerFwActionFW_DENY
	FWScopeBits    = int(fromContainerFwLimitsFW_SCOPE_BITS)

	PortRuntimeHeld = fromContainerPortFlagsPORT_F_RUNTIME_HELD
	PortIPv4Only    = fromContainerPortFlagsPORT_F_IPV4ONLY

	// VXLANPort is the UDP port of the overlay's VXLAN devices.
	VXLANPort = int(fromContainerOverlayLimitsOVERLAY_VXLAN_PORT)

	MonitorDrop    = fromContainerMonitorTypeMONITOR_DROP
	MonitorNewFlow = fromContainerMonitorTypeMONITOR_NEW_FLOW
	// MonitorEventV1Size is the IPv4-only event's size: the event's IPv6
	// part comes after it (bpf/lib/monitor.h).
	MonitorEventV1Size = int(fromContainerMonitorLimitsMONITOR_EVENT_V1SIZE)
)

// The nat_retries histogram (enum nat_retry_bucket in bpf/lib/nat.h):
// NATRetryBuckets buckets, from NATRetryStrained on allocations that took at
// least half the retry budget or failed.
const (
	NATRetryBuckets  = int(fromContainerNatRetryBucketNAT_RETRY_MAX)
	NATRetryStrained = int(fromContainerNatLimitsNAT_RETRY_STRAINED)
)
