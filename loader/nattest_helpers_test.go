package loader_test

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

// The NAT tests' world: network 1 (172.30.0.0/16, masquerading) with
// containers A and B; an uplink with host IP H whose default router is R;
// D a server outside, C a client outside.
var (
	macUp = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xf0}
	macRt = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xfe}

	gw1   = netip.MustParseAddr("172.30.0.1")
	hostH = netip.MustParseAddr("198.18.0.2")
	rtR   = netip.MustParseAddr("198.18.0.1")
	srvD  = netip.MustParseAddr("198.18.5.5")
	cliC  = netip.MustParseAddr("198.18.7.7")
)

type natEnv struct {
	*fixture
	up     *ebpf.Program // from_uplink
	ifA    int
	ifB    int
	ifUp   int
	netnsd bool
}

type envOpts struct {
	loader   loader.Options
	netns    bool // real devices and routes in a private netns, for FIB lookups
	internal bool
	noMasq   bool
	// serviceCIDRs: network 1 hands these to the kernel's netfilter.
	serviceCIDRs []netip.Prefix
}

// newNATEnv loads a datapath for NAT tests. With o.netns the calling test's
// goroutine is locked into a fresh network namespace holding only veth pairs
// (no link to any real network): A's and B's host-side veths, and the uplink
// with H, a default route via R and a permanent neighbour entry for R, so
// bpf_fib_lookup resolves. Programs must then be run from the test goroutine.
func newNATEnv(t testing.TB, o envOpts) *natEnv {
	t.Helper()
	e := &natEnv{ifA: 101, ifB: 102, ifUp: 200}
	if o.netns {
		e.ifA, e.ifB, e.ifUp = setupNetns(t)
		e.netnsd = true
	}
	if o.loader.CTMapSize == 0 {
		o.loader.CTMapSize = 4096 // keep the tests light
	}
	dp, err := loader.Load(o.loader)
	if err != nil {
		t.Fatalf("load datapath: %v", err)
	}
	t.Cleanup(dp.Close)
	v := maps.New(&dp.Maps)
	n := maps.Network{ID: 1, Subnet: netip.MustParsePrefix("172.30.0.0/16"), Gateway: gw1, GatewayMAC: macGW, BridgeIfindex: 50,
		ICC: true, Masquerade: !o.noMasq, Internal: o.internal, ServiceCIDRs: o.serviceCIDRs}
	if err := v.PutNetwork(n); err != nil {
		t.Fatal(err)
	}
	for _, ep := range []maps.Endpoint{
		{IP: ipA, MAC: macA, NetID: 1, Ifindex: e.ifA},
		{IP: ipB, MAC: macB, NetID: 1, Ifindex: e.ifB},
	} {
		if err := v.PutEndpoint(ep); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.PutUplink(maps.Uplink{Ifindex: e.ifUp, IP: hostH, MAC: macUp}); err != nil {
		t.Fatal(err)
	}
	e.fixture = &fixture{dp: dp, views: v, prog: dp.Program(loader.ProgFromContainer)}
	e.up = dp.Program(loader.ProgFromUplink)
	if e.up == nil {
		t.Fatal("from_uplink not loaded")
	}
	return e
}

func setupNetns(t testing.TB) (ifA, ifB, ifUp int) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	ns, err := netns.New() // also switches this thread into it
	if err != nil {
		orig.Close()
		runtime.UnlockOSThread()
		t.Skipf("cannot create a network namespace: %v", err)
	}
	t.Cleanup(func() {
		ns.Close() // the namespace and its devices go with the last reference
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: Go discards it with the goroutine.
			t.Errorf("restore network namespace: %v", err)
			return
		}
		orig.Close()
		runtime.UnlockOSThread()
	})
	// bpf_fib_lookup refuses interfaces with forwarding off.
	if err := os.WriteFile("/proc/sys/net/ipv4/conf/all/forwarding", []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	veth := func(name, peer string, mac net.HardwareAddr) netlink.Link {
		la := netlink.NewLinkAttrs()
		la.Name = name
		la.HardwareAddr = mac
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: peer}); err != nil {
			t.Fatalf("add veth %s: %v", name, err)
		}
		for _, n := range []string{name, peer} {
			l, err := netlink.LinkByName(n)
			if err != nil {
				t.Fatal(err)
			}
			if err := netlink.LinkSetUp(l); err != nil {
				t.Fatal(err)
			}
		}
		l, err := netlink.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	a := veth("epa", "epa-c", nil)
	b := veth("epb", "epb-c", nil)
	up := veth("up0", "up0-p", macUp)
	if err := netlink.AddrAdd(up, &netlink.Addr{IPNet: &net.IPNet{IP: hostH.AsSlice(), Mask: net.CIDRMask(24, 32)}}); err != nil {
		t.Fatal(err)
	}
	if err := netlink.NeighAdd(&netlink.Neigh{LinkIndex: up.Attrs().Index, Family: netlink.FAMILY_V4,
		State: netlink.NUD_PERMANENT, IP: rtR.AsSlice(), HardwareAddr: macRt}); err != nil {
		t.Fatal(err)
	}
	if err := netlink.RouteAdd(&netlink.Route{LinkIndex: up.Attrs().Index, Gw: rtR.AsSlice()}); err != nil {
		t.Fatal(err)
	}
	return a.Attrs().Index, b.Attrs().Index, up.Attrs().Index
}

func runProg(t *testing.T, prog *ebpf.Program, ingress int, frame []byte) (uint32, []byte) {
	t.Helper()
	out := make([]byte, len(frame)+256)
	opts := ebpf.RunOptions{
		Data:    frame,
		DataOut: out,
		Context: loader.SkBuff{IngressIfindex: uint32(ingress)},
		Repeat:  1,
	}
	ret, err := prog.Run(&opts)
	if err != nil {
		t.Fatalf("BPF_PROG_TEST_RUN: %v", err)
	}
	return ret, out[:len(opts.DataOut)]
}

func (e *natEnv) fromContainer(t *testing.T, ifindex int, frame []byte) (uint32, []byte) {
	t.Helper()
	return runProg(t, e.prog, ifindex, frame)
}

func (e *natEnv) fromUplink(t *testing.T, frame []byte) (uint32, []byte) {
	t.Helper()
	return runProg(t, e.up, e.ifUp, frame)
}

func (e *natEnv) verdictIn(t *testing.T, dir loader.Direction, v loader.Verdict) uint64 {
	t.Helper()
	all, err := e.views.Verdicts()
	if err != nil {
		t.Fatal(err)
	}
	return all[maps.VerdictKey{Direction: dir, Verdict: v}].Packets
}

func (e *natEnv) rx(t *testing.T, ifindex int) uint64 {
	t.Helper()
	_, rx, err := e.views.EndpointCounters(ifindex)
	if err != nil {
		t.Fatal(err)
	}
	return rx.Packets
}

func (e *natEnv) flows(t *testing.T) map[maps.Tuple]maps.Flow {
	t.Helper()
	fs, err := e.views.Flows()
	return byTuple(t, fs, err)
}

// byTuple indexes a listing of conntrack (or conntrack6) flows by tuple.
func byTuple(t *testing.T, fs []maps.Flow, err error) map[maps.Tuple]maps.Flow {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	out := map[maps.Tuple]maps.Flow{}
	for _, f := range fs {
		out[f.Tuple] = f
	}
	return out
}

// embryonic lists the embryonic table by key.
func (e *natEnv) embryonic(t *testing.T) map[maps.Tuple]maps.Flow {
	t.Helper()
	fs, err := e.views.EmbryonicFlows()
	if err != nil {
		t.Fatal(err)
	}
	out := map[maps.Tuple]maps.Flow{}
	for _, f := range fs {
		out[f.Tuple] = f
	}
	return out
}

// pkt describes a test packet; build turns it into a frame.
type pkt struct {
	srcMAC, dstMAC net.HardwareAddr
	src, dst       netip.Addr
	proto          layers.IPProtocol
	sport, dport   uint16 // echo id in sport for ICMP
	ttl            uint8
	tcpFlags       string // "S", "A", "F", "R", "SA" ...
	// seq and ack: TCP sequence and acknowledgement numbers. Unset, seq is
	// 1000 and an ACK acknowledges a SYN sent with the default seq
	// (1001): each side's default answer is a valid one.
	seq, ack    uint32
	icmpType    uint8 // ICMP: echo request by default
	flags       layers.IPv4Flag
	fragOffset  uint16
	payload     []byte
	zeroUDPCsum bool
}

func (p pkt) build(t testing.TB) []byte {
	t.Helper()
	ttl := p.ttl
	if ttl == 0 {
		ttl = 64
	}
	payload := p.payload
	if payload == nil {
		payload = []byte("ebpfnet nat test payload")
	}
	eth := &layers.Ethernet{SrcMAC: p.srcMAC, DstMAC: p.dstMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: ttl, Id: 4242, Protocol: p.proto, SrcIP: p.src.AsSlice(), DstIP: p.dst.AsSlice(),
		Flags: p.flags, FragOffset: p.fragOffset}
	var l4 gopacket.SerializableLayer
	switch p.proto {
	case layers.IPProtocolTCP:
		tcp := &layers.TCP{SrcPort: layers.TCPPort(p.sport), DstPort: layers.TCPPort(p.dport), Seq: cmp.Or(p.seq, 1000), Window: 64000, DataOffset: 5}
		for _, c := range p.tcpFlags {
			switch c {
			case 'S':
				tcp.SYN = true
			case 'A':
				tcp.ACK = true
				tcp.Ack = cmp.Or(p.ack, 1001)
			case 'F':
				tcp.FIN = true
			case 'R':
				tcp.RST = true
			}
		}
		tcp.SetNetworkLayerForChecksum(ip)
		l4 = tcp
	case layers.IPProtocolUDP:
		udp := &layers.UDP{SrcPort: layers.UDPPort(p.sport), DstPort: layers.UDPPort(p.dport)}
		udp.SetNetworkLayerForChecksum(ip)
		l4 = udp
	case layers.IPProtocolICMPv4:
		typ := p.icmpType
		if typ == 0 && p.dport == 0 {
			typ = layers.ICMPv4TypeEchoRequest
		}
		id := p.sport
		if typ == layers.ICMPv4TypeEchoReply {
			id = p.dport
		}
		l4 = &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0), Id: id, Seq: 9}
	}
	f := serialize(t, eth, ip, l4, gopacket.Payload(payload))
	if p.zeroUDPCsum {
		off := 14 + 20 + 6
		f[off], f[off+1] = 0, 0
	}
	return f
}

// onesSum is the Internet checksum's one's complement sum, written here so
// the tests do not trust the program or a library to check checksums.
func onesSum(sum uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return sum
}

// verifyChecksums checks the IPv4 header checksum and the L4 checksum of a
// frame from its raw bytes: a correct checksum makes the sum 0xffff. For
// ICMP errors it also checks the quoted IPv4 header.
func verifyChecksums(t *testing.T, frame []byte) {
	t.Helper()
	for _, msg := range checksumErrors(frame) {
		t.Error(msg)
	}
}

func checksumErrors(frame []byte) []string {
	var errs []string
	if len(frame) < 34 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
		return []string{fmt.Sprintf("not an IPv4 frame: %x", frame)}
	}
	ip := frame[14:]
	ihl := int(ip[0]&0xf) * 4
	tot := int(binary.BigEndian.Uint16(ip[2:]))
	if tot > len(ip) || ihl > tot || ihl < 20 {
		return []string{fmt.Sprintf("bad lengths ihl=%d total=%d frame=%d", ihl, tot, len(ip))}
	}
	if s := onesSum(0, ip[:ihl]); s != 0xffff {
		errs = append(errs, fmt.Sprintf("IPv4 header checksum wrong (sum %#x): %x", s, ip[:ihl]))
	}
	l4 := ip[ihl:tot]
	proto := ip[9]
	pseudo := func() uint32 {
		p := make([]byte, 12)
		copy(p, ip[12:20])
		p[9] = proto
		binary.BigEndian.PutUint16(p[10:], uint16(len(l4)))
		return onesSum(0, p)
	}
	switch proto {
	case 6:
		if s := onesSum(pseudo(), l4); s != 0xffff {
			errs = append(errs, fmt.Sprintf("TCP checksum wrong (sum %#x)", s))
		}
	case 17:
		if binary.BigEndian.Uint16(l4[6:]) == 0 {
			break // no checksum
		}
		if s := onesSum(pseudo(), l4); s != 0xffff {
			errs = append(errs, fmt.Sprintf("UDP checksum wrong (sum %#x)", s))
		}
	case 1:
		if s := onesSum(0, l4); s != 0xffff {
			errs = append(errs, fmt.Sprintf("ICMP checksum wrong (sum %#x)", s))
		}
		if l4[0] == 3 || l4[0] == 11 {
			inner := l4[8:]
			iihl := int(inner[0]&0xf) * 4
			if s := onesSum(0, inner[:iihl]); s != 0xffff {
				errs = append(errs, fmt.Sprintf("quoted IPv4 header checksum wrong (sum %#x)", s))
			}
		}
	}
	return errs
}

// decoded is what the tests check of an output frame.
type decoded struct {
	srcMAC, dstMAC net.HardwareAddr
	src, dst       netip.Addr
	sport, dport   uint16 // ICMP echo: id in both
	ttl            uint8
	udpCsum        uint16
}

func decode(t *testing.T, frame []byte) decoded {
	t.Helper()
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("decode output: %v", el.Error())
	}
	var d decoded
	eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	d.srcMAC, d.dstMAC = eth.SrcMAC, eth.DstMAC
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	d.src, _ = netip.AddrFromSlice(ip.SrcIP.To4())
	d.dst, _ = netip.AddrFromSlice(ip.DstIP.To4())
	d.ttl = ip.TTL
	switch l := p.TransportLayer().(type) {
	case *layers.TCP:
		d.sport, d.dport = uint16(l.SrcPort), uint16(l.DstPort)
	case *layers.UDP:
		d.sport, d.dport = uint16(l.SrcPort), uint16(l.DstPort)
		d.udpCsum = l.Checksum
	}
	if ic, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok {
		d.sport, d.dport = ic.Id, ic.Id
	}
	return d
}

func (d decoded) expect(t *testing.T, srcMAC, dstMAC net.HardwareAddr, src netip.AddrPort, dst netip.AddrPort, ttl uint8) {
	t.Helper()
	got := [...]any{d.srcMAC.String(), d.dstMAC.String(), netip.AddrPortFrom(d.src, d.sport), netip.AddrPortFrom(d.dst, d.dport), d.ttl}
	want := [...]any{srcMAC.String(), dstMAC.String(), src, dst, ttl}
	if got != want {
		t.Errorf("output (srcMAC, dstMAC, src, dst, ttl):\n got %v\nwant %v", got, want)
	}
}

func ap(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }
