package metrics_test

import (
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
	"github.com/ebpfnet/ebpfnet/metrics"
)

type inventory struct{}

func (inventory) EndpointRefs() ([]metrics.EndpointRef, error) {
	return []metrics.EndpointRef{{Network: "n1", Name: "web", Ifindex: 7}}, nil
}

func (inventory) LatencyHistograms() (map[string]metrics.LatencyHistogram, error) {
	return map[string]metrics.LatencyHistogram{"attach": {Count: 2, Sum: 0.03, Buckets: map[float64]uint64{0.01: 1, 0.1: 2}}}, nil
}

func (inventory) NetworkRefs() ([]metrics.NetworkRef, error) {
	return []metrics.NetworkRef{{Name: "n1", Endpoints: 1, PublishedPorts: 2}}, nil
}

// perCPU spreads a total over the CPUs so the collector has to sum.
func perCPU(packets, bytes uint64) []loader.Counter {
	n := ebpf.MustPossibleCPU()
	out := make([]loader.Counter, n)
	out[0] = loader.Counter{Packets: packets, Bytes: bytes}
	if n > 1 {
		out[0] = loader.Counter{Packets: packets - 1, Bytes: bytes - 100}
		out[n-1] = loader.Counter{Packets: 1, Bytes: 100}
	}
	return out
}

func TestCollectorReadsMaps(t *testing.T) {
	dp, err := loader.Load(loader.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dp.Close()
	v := maps.New(&dp.Maps)
	fwd := uint32(loader.DirFromContainer)*uint32(loader.NumVerdicts) + uint32(loader.VerdictForward)
	if err := dp.Maps.VerdictCounters.Put(fwd, perCPU(10, 1000)); err != nil {
		t.Fatal(err)
	}
	if err := dp.Maps.DropCounters.Put(uint32(4), perCPU(3, 300)); err != nil { // DROP_SPOOFED_IP
		t.Fatal(err)
	}
	err = v.PutEndpoint(maps.Endpoint{IP: netip.MustParseAddr("172.30.0.2"), MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, NetID: 1, Ifindex: 7})
	if err != nil {
		t.Fatal(err)
	}
	n := ebpf.MustPossibleCPU()
	stats := make([]loader.EndpointCounters, n)
	stats[n-1] = loader.EndpointCounters{Tx: loader.Counter{Packets: 5, Bytes: 500}, Rx: loader.Counter{Packets: 6, Bytes: 600}}
	if err := dp.Maps.EndpointStats.Put(uint32(7), stats); err != nil {
		t.Fatal(err)
	}

	c := metrics.NewCollector(v, inventory{}, slog.New(slog.DiscardHandler))
	want := `
# HELP ebpfnet_endpoint_packets_total Packets an endpoint sent (tx) or the datapath delivered to it (rx).
# TYPE ebpfnet_endpoint_packets_total counter
ebpfnet_endpoint_packets_total{direction="rx",endpoint="web",network="n1"} 6
ebpfnet_endpoint_packets_total{direction="tx",endpoint="web",network="n1"} 5
# HELP ebpfnet_operation_duration_seconds Duration of control-plane operations (attach, detach, map_update).
# TYPE ebpfnet_operation_duration_seconds histogram
ebpfnet_operation_duration_seconds_bucket{operation="attach",le="0.01"} 1
ebpfnet_operation_duration_seconds_bucket{operation="attach",le="0.1"} 2
ebpfnet_operation_duration_seconds_bucket{operation="attach",le="+Inf"} 2
ebpfnet_operation_duration_seconds_sum{operation="attach"} 0.03
ebpfnet_operation_duration_seconds_count{operation="attach"} 2
# HELP ebpfnet_endpoints Endpoints attached to a network.
# TYPE ebpfnet_endpoints gauge
ebpfnet_endpoints{network="n1"} 1
# HELP ebpfnet_published_ports Host ports published to a network's endpoints.
# TYPE ebpfnet_published_ports gauge
ebpfnet_published_ports{network="n1"} 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "ebpfnet_endpoint_packets_total", "ebpfnet_endpoints", "ebpfnet_published_ports", "ebpfnet_operation_duration_seconds"); err != nil {
		t.Error(err)
	}
	if got := testutil.ToFloat64(filtered{c, `direction="from_container"`, `verdict="forward"`, "ebpfnet_packets_total"}); got != 10 {
		t.Errorf("forward packets = %v, want 10", got)
	}
	if got := testutil.ToFloat64(filtered{c, `reason="spoofed_ip"`, "", "ebpfnet_drops_total"}); got != 3 {
		t.Errorf("spoofed_ip drops = %v, want 3", got)
	}
	if got := testutil.ToFloat64(filtered{c, `map="endpoints"`, "", "ebpfnet_map_entries"}); got != 1 {
		t.Errorf("endpoints map entries = %v, want 1", got)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}
