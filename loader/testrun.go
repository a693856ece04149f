package loader

// SkBuff is the head of struct __sk_buff, for BPF_PROG_TEST_RUN contexts.
// The kernel accepts a prefix; it only reads the fields it allows a test to
// set (mark, priority, ingress_ifindex, ifindex, cb, ...), the rest must be 0.
type SkBuff struct {
	Len            uint32
	PktType        uint32
	Mark           uint32
	QueueMapping   uint32
	Protocol       uint32
	VlanPresent    uint32
	VlanTCI        uint32
	VlanProto      uint32
	Priority       uint32
	IngressIfindex uint32
	Ifindex        uint32
	TCIndex        uint32
	CB             [5]uint32
}
