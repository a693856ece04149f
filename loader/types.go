package loader

// Exported names for the layouts bpf2go mirrored from bpf/lib/*.h.
type (
	Counter           = fromContainerCounter
	EndpointCounters  = fromContainerEndpointCounters
	EndpointInfo      = fromContainerEndpointInfo
	NetworkInfo       = fromContainerNetworkInfo
	SubnetKey         = fromContainerSubnetKey
	DropReason        = fromContainerDropReason
	Direction         = fromContainerDirection
	Verdict           = fromContainerVerdict
	NetworkFlags      = fromContainerNetworkFlags
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
)
