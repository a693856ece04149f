package loader_test

import (
	"testing"
	"time"

	"github.com/google/gopacket/layers"

	"github.com/ebpfnet/ebpfnet/maps"
)

// Issue 12: a new flow's event carries the tuple after translation, for
// masquerade (the allocated port) and for a published port (the container).
func TestMonitorNewFlowCarriesTranslatedTuple(t *testing.T) {
	e := newNATEnv(t, envOpts{netns: true})
	publish(t, e, maps.PortEntry{Proto: maps.ProtoTCP, HostPort: 8080, ContainerIP: ipB, ContainerPort: 80, Ifindex: e.ifB})
	rd, err := e.views.OpenMonitor()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	if err := e.views.EnableMonitor(maps.Monotonic()+time.Minute, 100); err != nil {
		t.Fatal(err)
	}
	next := func() maps.Event {
		t.Helper()
		rd.SetDeadline(time.Now().Add(time.Second))
		ev, err := rd.Read()
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}

	snat := pkt{srcMAC: macA, dstMAC: macGW, src: ipA, dst: srvD, proto: layers.IPProtocolTCP, sport: 40000, dport: 443, tcpFlags: "S"}
	_, out := e.fromContainer(t, e.ifA, snat.build(t))
	d := decode(t, out)
	ev := next()
	if ev.Type != "new_flow" || ev.Tuple.Src != ap(ipA, 40000) || ev.Tuple.Dst != ap(srvD, 443) ||
		ev.Translated.Src != ap(hostH, d.sport) || ev.Translated.Dst != ap(srvD, 443) {
		t.Errorf("masquerade event %v, want %v -> %v translated to %v -> %v", ev, ap(ipA, 40000), ap(srvD, 443), ap(hostH, d.sport), ap(srvD, 443))
	}

	dnat := pkt{srcMAC: macRt, dstMAC: macUp, src: cliC, dst: hostH, proto: layers.IPProtocolTCP, sport: 5555, dport: 8080, tcpFlags: "S"}
	e.fromUplink(t, dnat.build(t))
	ev = next()
	if ev.Type != "new_flow" || ev.Tuple.Dst != ap(hostH, 8080) || ev.Translated.Src != ap(cliC, 5555) || ev.Translated.Dst != ap(ipB, 80) {
		t.Errorf("published port event %v, want translated to %v -> %v", ev, ap(cliC, 5555), ap(ipB, 80))
	}
}
