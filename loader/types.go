package loader

// Exported names for the layouts bpf2go mirrored from bpf/lib/*.h.
type (
	Counter          = fromContainerCounter
	EndpointCounters = fromContainerEndpointCounters
	EndpointInfo     = fromContainerEndpointInfo
	NetworkInfo      = fromContainerNetworkInfo
	SubnetKey        = fromContainerSubnetKey
	DropReason       = fromContainerDropReason
	Direction        = fromContainerDirection
	Verdict          = fromContainerVerdict
	NetworkFlags     = fromContainerNetworkFlags
	CTKey            = fromContainerCtKey
	CTEntry          = fromContainerCtEntry
	CTKind           = fromContainerCtKind
	CTState          = fromContainerCtState
	PortKey          = fromContainerPortKey
	PortBinding      = fromContainerPortBinding
	UplinkInfo       = fromContainerUplinkInfo
	MonitorEvent     = fromContainerMonitorEvent
	MonitorControl   = fromContainerMonitorControl
	MonitorType      = fromContainerMonitorType
)

const (
	DirFromContainer = fromContainerDirectionDIR_FROM_CONTAINER
	DirFromUplink    = fromContainerDirectionDIR_FROM_UPLINK
	NumDirections    = fromContainerDirectionDIR_MAX

	VerdictForward = fromContainerVerdictVERDICT_FORWARD
	VerdictSNAT    = fromContainerVerdictVERDICT_SNAT
	VerdictDNAT    = fromContainerVerdictVERDICT_DNAT
	VerdictPass    = fromContainerVerdictVERDICT_PASS
	VerdictDrop    = fromContainerVerdictVERDICT_DROP
	NumVerdicts    = fromContainerVerdictVERDICT_MAX

	NumDropReasons = fromContainerDropReasonDROP_MAX

	NetICC        = fromContainerNetworkFlagsNET_F_ICC
	NetMasquerade = fromContainerNetworkFlagsNET_F_MASQUERADE
	NetInternal   = fromContainerNetworkFlagsNET_F_INTERNAL

	CTKindSNAT    = fromContainerCtKindCT_KIND_SNAT
	CTKindDNAT    = fromContainerCtKindCT_KIND_DNAT
	CTKindHairpin = fromContainerCtKindCT_KIND_HAIRPIN

	CTStateSYN         = fromContainerCtStateCT_ST_SYN
	CTStateEstablished = fromContainerCtStateCT_ST_ESTABLISHED
	CTStateFIN         = fromContainerCtStateCT_ST_FIN
	CTStateRST         = fromContainerCtStateCT_ST_RST

	MonitorDrop    = fromContainerMonitorTypeMONITOR_DROP
	MonitorNewFlow = fromContainerMonitorTypeMONITOR_NEW_FLOW
)

// NATRetryBuckets is the length of the nat_retries histogram: 0, 1, 2-3,
// 4-7, 8-15, 16-31 retries, then exhausted (NAT_RETRY_BUCKETS in nat.h).
const NATRetryBuckets = 7
