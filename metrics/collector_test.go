package metrics_test

import (
	"errors"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ebpfnet/ebpfnet/datapath"
	"github.com/ebpfnet/ebpfnet/metrics"
)

// source is a fixed datapath view. The collector's reading of a real
// instance is covered by the daemon's integration tests, which scrape it.
type source struct {
	natErr error
	eps    []datapath.EndpointTraffic // nil: one endpoint, web on n1
}

func (source) Stats() (datapath.Stats, error) {
	return datapath.Stats{
		Verdicts: []datapath.VerdictStat{{Direction: "from_container", Verdict: "forward", Count: datapath.Counter{Packets: 10, Bytes: 1000}}},
		Drops:    map[string]datapath.Counter{"spoofed_ip": {Packets: 3, Bytes: 300}},
	}, nil
}

func (s source) EndpointTraffic() ([]datapath.EndpointTraffic, error) {
	if s.eps != nil {
		return s.eps, nil
	}
	return []datapath.EndpointTraffic{{Network: "n1", Name: "web", Tx: datapath.Counter{Packets: 5, Bytes: 500}, Rx: datapath.Counter{Packets: 6, Bytes: 600}}}, nil
}

func (source) NetworkSummaries() ([]datapath.NetworkSummary, error) {
	return []datapath.NetworkSummary{{Name: "n1", Endpoints: 1, PublishedPorts: 2}}, nil
}

func (source) MapUsage() ([]datapath.MapUsage, error) {
	return []datapath.MapUsage{{Name: "endpoints", Entries: 1, Capacity: 4096}}, nil
}

func (s source) NATStats() (datapath.NATStats, error) {
	return datapath.NATStats{AllocFailures: 1, Retries: []datapath.NATRetryBucket{{Retries: "0", Count: 7}, {Retries: "exhausted", Count: 1}}}, s.natErr
}

func (source) Latencies() (map[string]datapath.Histogram, error) {
	// Two attaches: one in the 10 ms bucket, one in the 100 ms bucket.
	h := datapath.Histogram{Count: 2, Sum: 0.03, Buckets: make([]uint64, len(datapath.LatencyBuckets))}
	for i, b := range datapath.LatencyBuckets {
		if b == 0.01 || b == 0.1 {
			h.Buckets[i] = 1
		}
	}
	return map[string]datapath.Histogram{"attach": h}, nil
}

func (source) OverlayPeers() ([]datapath.OverlayPeer, error) {
	return []datapath.OverlayPeer{{Host: netip.MustParseAddr("198.18.0.12"), TxPackets: 4, TxBytes: 400, RxPackets: 3, RxBytes: 300}}, nil
}

func TestCollectorSeries(t *testing.T) {
	c := metrics.NewCollector(source{}, slog.New(slog.DiscardHandler))
	want := `
# HELP ebpfnet_endpoint_packets_total Packets an endpoint sent (tx) or the datapath delivered to it (rx).
# TYPE ebpfnet_endpoint_packets_total counter
ebpfnet_endpoint_packets_total{direction="rx",endpoint="web",network="n1"} 6
ebpfnet_endpoint_packets_total{direction="tx",endpoint="web",network="n1"} 5
# HELP ebpfnet_endpoints Endpoints attached to a network.
# TYPE ebpfnet_endpoints gauge
ebpfnet_endpoints{network="n1"} 1
# HELP ebpfnet_published_ports Host ports published to a network's endpoints.
# TYPE ebpfnet_published_ports gauge
ebpfnet_published_ports{network="n1"} 2
# HELP ebpfnet_packets_total Packets handled by the datapath, by program direction and verdict.
# TYPE ebpfnet_packets_total counter
ebpfnet_packets_total{direction="from_container",verdict="forward"} 10
# HELP ebpfnet_drops_total Packets dropped by the datapath, by reason.
# TYPE ebpfnet_drops_total counter
ebpfnet_drops_total{reason="spoofed_ip"} 3
# HELP ebpfnet_map_entries Entries in a datapath map.
# TYPE ebpfnet_map_entries gauge
ebpfnet_map_entries{map="endpoints"} 1
# HELP ebpfnet_map_capacity_entries Maximum entries of a datapath map.
# TYPE ebpfnet_map_capacity_entries gauge
ebpfnet_map_capacity_entries{map="endpoints"} 4096
# HELP ebpfnet_nat_port_allocations_total Source port allocations by how many retries they took (bucket "exhausted": failed).
# TYPE ebpfnet_nat_port_allocations_total counter
ebpfnet_nat_port_allocations_total{retries="0"} 7
ebpfnet_nat_port_allocations_total{retries="exhausted"} 1
# HELP ebpfnet_overlay_peer_packets_total Overlay packets encapsulated to (tx) or received from (rx) a peer host.
# TYPE ebpfnet_overlay_peer_packets_total counter
ebpfnet_overlay_peer_packets_total{direction="rx",peer="198.18.0.12"} 3
ebpfnet_overlay_peer_packets_total{direction="tx",peer="198.18.0.12"} 4
`
	names := []string{"ebpfnet_endpoint_packets_total", "ebpfnet_endpoints", "ebpfnet_published_ports", "ebpfnet_packets_total",
		"ebpfnet_drops_total", "ebpfnet_map_entries", "ebpfnet_map_capacity_entries", "ebpfnet_nat_port_allocations_total",
		"ebpfnet_overlay_peer_packets_total"}
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	// Latency buckets are cumulative in Prometheus, not in the store.
	hist := `
# HELP ebpfnet_operation_duration_seconds Duration of control-plane operations (attach, detach, map_update).
# TYPE ebpfnet_operation_duration_seconds histogram
` + histogramLines("attach", 2, 0.03, map[float64]uint64{0.01: 1, 0.1: 2})
	if err := testutil.CollectAndCompare(c, strings.NewReader(hist), "ebpfnet_operation_duration_seconds"); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// histogramLines renders the expected exposition of a histogram over
// datapath.LatencyBuckets, given the cumulative count at the bounds where
// it changes.
func histogramLines(op string, count uint64, sum float64, steps map[float64]uint64) string {
	var b strings.Builder
	var acc uint64
	for _, le := range datapath.LatencyBuckets {
		if n, ok := steps[le]; ok {
			acc = n
		}
		b.WriteString(`ebpfnet_operation_duration_seconds_bucket{operation="` + op + `",le="` + formatFloat(le) + `"} ` + formatUint(acc) + "\n")
	}
	b.WriteString(`ebpfnet_operation_duration_seconds_bucket{operation="` + op + `",le="+Inf"} ` + formatUint(count) + "\n")
	b.WriteString(`ebpfnet_operation_duration_seconds_sum{operation="` + op + `"} ` + formatFloat(sum) + "\n")
	b.WriteString(`ebpfnet_operation_duration_seconds_count{operation="` + op + `"} ` + formatUint(count) + "\n")
	return b.String()
}

func TestCollectorCountsScrapeErrors(t *testing.T) {
	c := metrics.NewCollector(source{natErr: errors.New("map gone")}, slog.New(slog.DiscardHandler))
	if got := testutil.ToFloat64(filtered{c, "", "", "ebpfnet_scrape_errors_total"}); got != 1 {
		t.Errorf("scrape errors = %v, want 1", got)
	}
	// The rest of the scrape still works.
	if got := testutil.ToFloat64(filtered{c, `reason="spoofed_ip"`, "", "ebpfnet_drops_total"}); got != 3 {
		t.Errorf("spoofed_ip drops = %v, want 3", got)
	}
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
func formatUint(n uint64) string   { return strconv.FormatUint(n, 10) }

// TestCollectorEndpointLabels: an endpoint whose container's name is known
// is labelled with it (a Docker endpoint is d2aa190d69e1 to ebpfnet, web to
// its user); a name another endpoint of the network already has falls
// back to the endpoint's own, so the scrape never has duplicate series.
func TestCollectorEndpointLabels(t *testing.T) {
	c := metrics.NewCollector(source{eps: []datapath.EndpointTraffic{
		{Network: "n1", Name: "d2aa190d69e1", ContainerName: "web", Tx: datapath.Counter{Packets: 1}},
		{Network: "n1", Name: "e3bb201e70f2", ContainerName: "web", Tx: datapath.Counter{Packets: 2}},
		{Network: "n1", Name: "api", Tx: datapath.Counter{Packets: 3}},
		{Network: "n1", Name: "f4cc312f81a3", ContainerName: "api", Tx: datapath.Counter{Packets: 4}},
		{Network: "n2", Name: "a5dd423a92b4", ContainerName: "web", Tx: datapath.Counter{Packets: 5}},
	}}, slog.New(slog.DiscardHandler))
	want := `
# HELP ebpfnet_endpoint_packets_total Packets an endpoint sent (tx) or the datapath delivered to it (rx).
# TYPE ebpfnet_endpoint_packets_total counter
ebpfnet_endpoint_packets_total{direction="rx",endpoint="web",network="n1"} 0
ebpfnet_endpoint_packets_total{direction="tx",endpoint="web",network="n1"} 1
ebpfnet_endpoint_packets_total{direction="rx",endpoint="e3bb201e70f2",network="n1"} 0
ebpfnet_endpoint_packets_total{direction="tx",endpoint="e3bb201e70f2",network="n1"} 2
ebpfnet_endpoint_packets_total{direction="rx",endpoint="api",network="n1"} 0
ebpfnet_endpoint_packets_total{direction="tx",endpoint="api",network="n1"} 3
ebpfnet_endpoint_packets_total{direction="rx",endpoint="f4cc312f81a3",network="n1"} 0
ebpfnet_endpoint_packets_total{direction="tx",endpoint="f4cc312f81a3",network="n1"} 4
ebpfnet_endpoint_packets_total{direction="rx",endpoint="web",network="n2"} 0
ebpfnet_endpoint_packets_total{direction="tx",endpoint="web",network="n2"} 5
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "ebpfnet_endpoint_packets_total"); err != nil {
		t.Error(err)
	}
}
