package loader_test

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket/layers"

	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

// The host's own path to other hosts' endpoints (docs/overlay.md, "The
// host's own path"): from_host on the VXLAN device's egress, and what
// from_overlay and from_container do with the flows it starts.

var hostSelf = netip.MustParseAddr("198.18.0.11") // this host's underlay address

func runFromHost(t *testing.T, f *fixture, frame []byte) (uint32, []byte) {
	t.Helper()
	prog := f.dp.Program(loader.ProgFromHost)
	out := make([]byte, len(frame)+256)
	opts := ebpf.RunOptions{Data: frame, DataOut: out, Context: loader.SkBuff{}, Repeat: 1}
	ret, err := prog.Run(&opts)
	if err != nil {
		t.Fatalf("BPF_PROG_TEST_RUN: %v", err)
	}
	return ret, out[:len(opts.DataOut)]
}

func (f *fixture) verdictOf(t *testing.T, dir loader.Direction, v loader.Verdict) uint64 {
	t.Helper()
	all, err := f.views.Verdicts()
	if err != nil {
		t.Fatal(err)
	}
	return all[maps.VerdictKey{Direction: dir, Verdict: v}].Packets
}

// The stack's packet to a remote endpoint leaves with the endpoint's MAC
// (and the sender's, if the stack forwards for a local endpoint), every
// other byte unchanged, counted to the endpoint's host; anything else is
// not tunnelled.
func TestFromHostTunnelsToRemoteEndpoints(t *testing.T) {
	f := newOverlayFixture(t, true)
	vxlanMAC := macUp // the device's own MAC, as the stack sends from it
	for _, tc := range []struct {
		name   string
		src    netip.Addr
		srcMAC []byte // after
	}{
		{"the host itself", hostSelf, vxlanMAC},
		{"netfilter forwarding for a local endpoint", ipD, macD},
	} {
		in := udpFrame(t, vxlanMAC, macUp, tc.src, ipR)
		before := f.peer(t, hostR).TxPackets
		ret, out := runFromHost(t, f, in)
		if ret != tcActOK {
			t.Fatalf("%s: verdict %d, want TC_ACT_OK (the device sends it)", tc.name, ret)
		}
		want := udpFrame(t, tc.srcMAC, macR, tc.src, ipR)
		if !bytes.Equal(out, want) {
			t.Errorf("%s: frame\n got %x\nwant %x", tc.name, out, want)
		}
		verifyChecksums(t, out)
		if got := f.peer(t, hostR).TxPackets - before; got != 1 {
			t.Errorf("%s: %d packets counted to host R, want 1", tc.name, got)
		}
	}
	if ret, _ := runFromHost(t, f, udpFrame(t, macUp, macUp, hostSelf, netip.MustParseAddr("10.210.0.77"))); ret != tcActShot || f.drops(t, "overlay_no_endpoint") != 1 {
		t.Errorf("to no remote endpoint: verdict %d, overlay_no_endpoint drops %d; want TC_ACT_SHOT and 1", ret, f.drops(t, "overlay_no_endpoint"))
	}
	arp := arpFrame(t, macUp, layers.ARPRequest, macUp, hostSelf, ipR)
	if ret, out := runFromHost(t, f, arp); ret != tcActOK || !bytes.Equal(out, arp) {
		t.Errorf("ARP: verdict %d, changed %v; want it passed unchanged", ret, !bytes.Equal(out, arp))
	}
	if got := f.verdictOf(t, loader.DirFromHost, loader.VerdictForward); got != 2 {
		t.Errorf("from_host forward verdicts %d, want 2", got)
	}
}

// A flow a peer host's stack starts with an endpoint here: delivered, and
// the endpoint's answer goes back through the tunnel to that host (not out
// of the uplink); an answer of another flow does not.
func TestPeerHostFlowsAnswerThroughTheTunnel(t *testing.T) {
	w := newOverlayWorld(t)
	in := pkt{srcMAC: macGW, dstMAC: macD, src: hostR, dst: ipD, proto: layers.IPProtocolTCP, sport: 45000, dport: 80, tcpFlags: "S"}.build(t)
	if ret, _, _ := runOverlay(t, w.prog, keyFrom(4096, hostR), in); ret != tcActRedirect {
		t.Fatalf("peer host to D: verdict %d, want delivery", ret)
	}
	before := w.peer(t, hostR).TxPackets
	answer := pkt{srcMAC: macD, dstMAC: macGW, src: ipD, dst: hostR, proto: layers.IPProtocolTCP, sport: 80, dport: 45000, tcpFlags: "SA"}.build(t)
	ret, out := w.run(t, ifD, answer)
	if ret != tcActRedirect || w.peer(t, hostR).TxPackets != before+1 {
		t.Fatalf("D's answer: verdict %d, %d packets to host R; want the tunnel", ret, w.peer(t, hostR).TxPackets-before)
	}
	if !bytes.Equal(out, answer) {
		t.Errorf("tunnelled answer changed:\n got %x\nwant %x", out, answer)
	}
	other := pkt{srcMAC: macD, dstMAC: macGW, src: ipD, dst: hostR, proto: layers.IPProtocolTCP, sport: 81, dport: 45000, tcpFlags: "SA"}.build(t)
	w.run(t, ifD, other)
	if w.peer(t, hostR).TxPackets != before+1 {
		t.Errorf("an answer to no flow of the peer host went through the tunnel")
	}
}

// Answers to this host's underlay address go to its stack, unchanged; to
// another address that is no endpoint, nowhere.
func TestFromOverlayHandsTheHostsAnswersToTheStack(t *testing.T) {
	w := newOverlayWorld(t)
	if err := w.views.SetOverlaySelf(hostSelf); err != nil {
		t.Fatal(err)
	}
	in := pkt{srcMAC: macR, dstMAC: macUp, src: ipR, dst: hostSelf, proto: layers.IPProtocolTCP, sport: 80, dport: 45000, tcpFlags: "SA"}.build(t)
	ret, out, _ := runOverlay(t, w.prog, keyFrom(4096, hostR), in)
	if ret != tcActOK || !bytes.Equal(out, in) {
		t.Fatalf("answer to this host: verdict %d, changed %v; want TC_ACT_OK unchanged", ret, !bytes.Equal(out, in))
	}
	if got := w.verdictOf(t, loader.DirFromOverlay, loader.VerdictPass); got != 1 {
		t.Errorf("from_overlay pass verdicts %d, want 1", got)
	}
	// Only a remote endpoint's answers: the peer host itself has no business
	// with this host's stack over the tunnel.
	in = pkt{srcMAC: macGW, dstMAC: macUp, src: hostR, dst: hostSelf, proto: layers.IPProtocolTCP, sport: 80, dport: 45000, tcpFlags: "S"}.build(t)
	if ret, _, _ := runOverlay(t, w.prog, keyFrom(4096, hostR), in); ret != tcActShot {
		t.Errorf("peer host to this host over the tunnel: verdict %d, want TC_ACT_SHOT", ret)
	}
	if got, err := w.views.OverlaySelf(); err != nil || got != hostSelf {
		t.Errorf("OverlaySelf = %v, %v", got, err)
	}
}
