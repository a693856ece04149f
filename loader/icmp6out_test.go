package loader_test

import (
	"encoding/binary"
	"testing"
)

// A container's own ICMPv6 error about a packet of a tracked flow leaves
// translated: a client of a port published over IPv6 is told "port
// unreachable" from the host's address and port it asked, the quote
// showing its packet as it sent it (but the hop limit). An error about no
// flow does not leave.
func TestContainerICMPv6ErrorOut(t *testing.T) {
	e := newDNAT6Env(t)
	ret, in := e.fromUplink(t, frame6(macRt, macUp, srvD6, hostH6, 60, nil, 17, udp6(40000, 5353, "query")))
	if ret != tcActRedirect {
		t.Fatalf("datagram: verdict %d", ret)
	}
	quote := append([]byte{}, in[14:]...) // as B got it: srvD6:40000 -> ip6B:53, hop 59
	ret, got := e.fromContainer(t, e.ifB, frame6(macB, macGW, ip6B, srvD6, 64, nil, 58, icmp6Err(1, 4, 0, quote)))
	if ret != tcActRedirect {
		d, _ := e.views.Drops()
		t.Fatalf("port unreachable: verdict %d, want TC_ACT_REDIRECT (drops %v)", ret, d)
	}
	want := append([]byte{}, quote...)
	h := hostH6.As16()
	copy(want[24:40], h[:])
	binary.BigEndian.PutUint16(want[42:], 5353)
	expectFrame6(t, "port unreachable out", got, frame6(macUp, macRt, hostH6, srvD6, 63, nil, 58, icmp6Err(1, 4, 0, want)))

	before := e.drops(t, "ipv6_not_routed")
	stray := quoteAs(frame6(macRt, macUp, srvD6, ip6B, 60, nil, 17, udp6(40001, 53, "x")), srvD6, 40001)
	if ret, _ := e.fromContainer(t, e.ifB, frame6(macB, macGW, ip6B, srvD6, 64, nil, 58, icmp6Err(1, 4, 0, stray))); ret != tcActShot || e.drops(t, "ipv6_not_routed") != before+1 {
		t.Errorf("an error about no flow: verdict %d, want dropped as ipv6_not_routed", ret)
	}
}
