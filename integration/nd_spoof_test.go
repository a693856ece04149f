package integration

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/layers"

	"github.com/ebpfnet/ebpfnet/maps"
)

// A container's forged neighbour advertisement (claiming its peer's
// address for its own MAC) and a solicitation carrying another MAC never
// leave its veth: dropped as spoofed_nd, and neither the host's nor the
// peer's neighbour table learns the forgery.
func TestSpoofedNeighbourDiscoveryOverIPv6(t *testing.T) {
	tp := newTopology(t)
	c1, c2, c3 := tp.AddContainer("c1"), tp.AddContainer("c2"), tp.AddContainer("c3")
	tp.MustEbpfnet("network", "create", "n6", "--ipv6", "--subnet", "172.36.0.0/24", "--subnet", "fd00:36::/64")
	for _, c := range []string{c1, c2, c3} {
		tp.MustEbpfnet("attach", "--network", "n6", c)
	}
	ep1 := inspect(t, tp, c1)
	mac1, _ := net.ParseMAC(ep1.MAC)
	ll1 := maps.LinkLocal(mac1)
	victim := net.ParseIP("fd00:36::3") // c2
	forged := net.HardwareAddr{0x02, 0xde, 0xad, 0xbe, 0xef, 0x01}
	ip6 := func(dst net.IP) *layers.IPv6 {
		return &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolICMPv6, HopLimit: 255, SrcIP: ll1.AsSlice(), DstIP: dst}
	}
	allNodes := net.ParseIP("ff02::1")
	na := func() []byte {
		ip := ip6(allNodes)
		icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborAdvertisement, 0)}
		icmp.SetNetworkLayerForChecksum(ip)
		adv := &layers.ICMPv6NeighborAdvertisement{Flags: 0x20, TargetAddress: victim, // override
			Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptTargetAddress, Data: mac1}}}
		return serialize(t, &layers.Ethernet{SrcMAC: mac1, DstMAC: net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}, EthernetType: layers.EthernetTypeIPv6}, ip, icmp, adv)
	}
	ns := func() []byte {
		ip := ip6(net.ParseIP("ff02::1:ff00:1"))
		icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)}
		icmp.SetNetworkLayerForChecksum(ip)
		sol := &layers.ICMPv6NeighborSolicitation{TargetAddress: net.ParseIP("fd00:36::1"),
			Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: forged}}}
		return serialize(t, &layers.Ethernet{SrcMAC: mac1, DstMAC: net.HardwareAddr{0x33, 0x33, 0xff, 0, 0, 1}, EthernetType: layers.EthernetTypeIPv6}, ip, icmp, sol)
	}
	v := tp.Views()
	before := dropCount(t, v, "spoofed_nd")
	sock := openRaw(t, tp.Namespace(c1), "eth0", false)
	for range 3 {
		for _, f := range [][]byte{na(), ns()} {
			if err := sock.send(f); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := dropCount(t, v, "spoofed_nd") - before; got < 6 {
		t.Errorf("spoofed_nd +%d, want +6 (3 advertisements, 3 solicitations)", got)
	}
	// Nobody learned the forgeries: c3 and the host hold no entry for c2's
	// address with c1's MAC, none with the forged MAC.
	for _, where := range []string{c3, tp.Host} {
		n := tp.Exec(where, "ip", "-6", "neigh", "show")
		if strings.Contains(n, ep1.MAC) && strings.Contains(n, "fd00:36::3 ") || strings.Contains(n, forged.String()) {
			t.Errorf("%s learned a forged neighbour entry:\n%s", where, n)
		}
	}
	// The real c2 stays reachable from c3.
	tp.Exec(c3, "ping", "-6", "-c", "1", "-W", "2", "fd00:36::3")
	if n := tp.Exec(c3, "ip", "-6", "neigh", "show", "fd00:36::3"); strings.Contains(n, ep1.MAC) {
		t.Errorf("c3 resolves c2 to c1's MAC: %s", n)
	}
}
