package loader_test

import (
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket/layers"

	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

// tickLag bounds how far the datapath's flow clock (bpf_ktime_get_coarse_ns,
// CLOCK_MONOTONIC as of the last tick) trails maps.Monotonic: a tick is
// 1-10 ms (HZ 1000-100); twice that for a late tick on a busy machine.
const tickLag = 20 * time.Millisecond

// GC compares maps.Monotonic with the datapath's flow stamps: a flow the
// program creates must be stamped between two readings of Monotonic taken
// around the run, less at most the coarse clock's lag.
func TestMonotonicMatchesDatapathClock(t *testing.T) {
	e := newNATEnv(t, envOpts{netns: true})
	p := pkt{srcMAC: macA, dstMAC: macGW, src: ipA, dst: srvD, proto: layers.IPProtocolUDP, sport: 40000, dport: 9053}
	before := maps.Monotonic()
	if ret, _ := e.fromContainer(t, e.ifA, p.build(t)); ret != tcActRedirect {
		t.Fatalf("verdict = %d, want TC_ACT_REDIRECT", ret)
	}
	after := maps.Monotonic()
	f, ok := e.flows(t)[maps.Tuple{Proto: maps.ProtoUDP, Src: ap(ipA, 40000), Dst: ap(srvD, 9053)}]
	if !ok {
		t.Fatal("no conntrack entry for the flow")
	}
	if f.Created < before-tickLag || f.Created > after || f.LastSeen != f.Created {
		t.Errorf("flow stamped created %v, last seen %v; want both within [%v, %v]", f.Created, f.LastSeen, before-tickLag, after)
	}
}

// An entry stamped up to a tick in the flow clock's future (user space
// stamps with the precise clock) is young, not ages old: the embryonic
// idle check must not see an unsigned difference wrap and forget a live
// handshake.
func TestFlowStampedAheadOfTheFlowClockStaysLive(t *testing.T) {
	f := newFloodEnv(t)
	f.in(t, "SYN", pkt{src: cliC, sport: 6200, dport: 8080, tcpFlags: "S"})
	m := f.dp.Maps.CTEmbryonic
	ahead := uint64(maps.Monotonic() + tickLag)
	var k loader.CTKey
	var v loader.CTEntry
	restamped := 0
	for it := m.Iterate(); it.Next(&k, &v); {
		v.LastSeen = ahead
		if err := m.Update(k, v, ebpf.UpdateExist); err != nil {
			t.Fatal(err)
		}
		restamped++
	}
	if restamped != 2 {
		t.Fatalf("%d embryonic entries, want the handshake's 2", restamped)
	}
	f.back(t, f.ifB, "SYN-ACK", pkt{src: ipB, dst: cliC, sport: 80, dport: 6200, tcpFlags: "SA", seq: 70000, payload: []byte{}})
	if n := len(f.embryonic(t)); n != 2 {
		t.Errorf("after the SYN-ACK %d embryonic entries, want the handshake's 2", n)
	}
}
