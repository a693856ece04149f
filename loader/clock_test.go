package loader_test

import (
	"testing"

	"github.com/google/gopacket/layers"

	"github.com/ebpfnet/ebpfnet/maps"
)

// GC and monitor leases compare maps.Monotonic with the datapath's
// bpf_ktime_get_ns: a flow the program creates must be stamped between two
// readings of Monotonic taken around the run.
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
	if f.Created < before || f.Created > after || f.LastSeen != f.Created {
		t.Errorf("flow stamped created %v, last seen %v; want both within [%v, %v]", f.Created, f.LastSeen, before, after)
	}
}
