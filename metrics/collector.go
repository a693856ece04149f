// Package metrics exports the datapath to Prometheus. It observes a
// datapath.Instance (the control plane knows nothing of metrics). Counters
// are read from the per-CPU BPF maps at scrape time and summed, so a scrape
// always reflects the kernel's truth, including traffic forwarded while no
// daemon ran.
package metrics

import (
	"log/slog"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebpfnet/ebpfnet/datapath"
)

// Source is what the collector observes: a datapath.Instance.
type Source interface {
	Stats() (datapath.Stats, error)
	EndpointTraffic() ([]datapath.EndpointTraffic, error)
	NetworkSummaries() ([]datapath.NetworkSummary, error)
	MapUsage() ([]datapath.MapUsage, error)
	NATStats() (datapath.NATStats, error)
	Latencies() (map[string]datapath.Histogram, error)
	OverlayPeers() ([]datapath.OverlayPeer, error)
}

// Collector is a prometheus.Collector over the datapath maps.
type Collector struct {
	src Source
	log *slog.Logger

	packets, bytes     *prometheus.Desc
	drops, dropBytes   *prometheus.Desc
	epPackets, epBytes *prometheus.Desc
	endpoints, ports   *prometheus.Desc
	mapEntries, mapCap *prometheus.Desc
	buildInfo          *prometheus.Desc
	latency            *prometheus.Desc
	natFailures        *prometheus.Desc
	natRetries         *prometheus.Desc
	peerPackets        *prometheus.Desc
	peerBytes          *prometheus.Desc
	scrapeErrors       prometheus.Counter
}

// NewCollector returns a collector over src; register it with a registry.
func NewCollector(src Source, log *slog.Logger) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("ebpfnet_"+name, help, labels, nil)
	}
	return &Collector{
		src: src, log: log,
		packets:     d("packets_total", "Packets handled by the datapath, by program direction and verdict.", "direction", "verdict"),
		bytes:       d("bytes_total", "Bytes handled by the datapath, by program direction and verdict.", "direction", "verdict"),
		drops:       d("drops_total", "Packets dropped by the datapath, by reason.", "reason"),
		dropBytes:   d("dropped_bytes_total", "Bytes dropped by the datapath, by reason.", "reason"),
		epPackets:   d("endpoint_packets_total", "Packets an endpoint sent (tx) or the datapath delivered to it (rx).", "network", "endpoint", "direction"),
		epBytes:     d("endpoint_bytes_total", "Bytes an endpoint sent (tx) or the datapath delivered to it (rx).", "network", "endpoint", "direction"),
		endpoints:   d("endpoints", "Endpoints attached to a network.", "network"),
		ports:       d("published_ports", "Host ports published to a network's endpoints.", "network"),
		mapEntries:  d("map_entries", "Entries in a datapath map.", "map"),
		mapCap:      d("map_capacity_entries", "Maximum entries of a datapath map.", "map"),
		buildInfo:   d("build_info", "Build information of the running ebpfnet; always 1.", "version", "goversion"),
		natFailures: d("nat_port_allocation_failures_total", "New masqueraded flows dropped because no source port was free."),
		natRetries:  d("nat_port_allocations_total", "Source port allocations by how many retries they took (bucket \"exhausted\": failed).", "retries"),
		peerPackets: d("overlay_peer_packets_total", "Overlay packets encapsulated to (tx) or received from (rx) a peer host.", "peer", "direction"),
		peerBytes:   d("overlay_peer_bytes_total", "Overlay bytes (inner frames) encapsulated to (tx) or received from (rx) a peer host.", "peer", "direction"),
		latency:     d("operation_duration_seconds", "Duration of control-plane operations (attach, detach, map_update).", "operation"),
		scrapeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ebpfnet_scrape_errors_total", Help: "Errors reading datapath maps during scrapes.",
		}),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.packets, c.bytes, c.drops, c.dropBytes, c.epPackets, c.epBytes, c.endpoints, c.ports, c.mapEntries, c.mapCap, c.buildInfo, c.latency, c.natFailures, c.natRetries, c.peerPackets, c.peerBytes} {
		ch <- d
	}
	c.scrapeErrors.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	fail := func(what string, err error) {
		c.scrapeErrors.Inc()
		c.log.Warn("scrape", "what", what, "err", err)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}

	if s, err := c.src.Stats(); err != nil {
		fail("counters", err)
	} else {
		for _, v := range s.Verdicts {
			counter(c.packets, v.Count.Packets, v.Direction, v.Verdict)
			counter(c.bytes, v.Count.Bytes, v.Direction, v.Verdict)
		}
		for reason, v := range s.Drops {
			counter(c.drops, v.Packets, reason)
			counter(c.dropBytes, v.Bytes, reason)
		}
	}
	if eps, err := c.src.EndpointTraffic(); err != nil {
		fail("endpoints", err)
	} else {
		labels := endpointLabels(eps)
		for i, e := range eps {
			label := labels[i]
			counter(c.epPackets, e.Tx.Packets, e.Network, label, "tx")
			counter(c.epBytes, e.Tx.Bytes, e.Network, label, "tx")
			counter(c.epPackets, e.Rx.Packets, e.Network, label, "rx")
			counter(c.epBytes, e.Rx.Bytes, e.Network, label, "rx")
		}
	}
	if nets, err := c.src.NetworkSummaries(); err != nil {
		fail("networks", err)
	} else {
		for _, n := range nets {
			gauge(c.endpoints, float64(n.Endpoints), n.Name)
			gauge(c.ports, float64(n.PublishedPorts), n.Name)
		}
	}
	if usage, err := c.src.MapUsage(); err != nil {
		fail("map usage", err)
	} else {
		for _, u := range usage {
			gauge(c.mapEntries, float64(u.Entries), u.Name)
			gauge(c.mapCap, float64(u.Capacity), u.Name)
		}
	}
	if nat, err := c.src.NATStats(); err != nil {
		fail("nat", err)
	} else {
		counter(c.natFailures, nat.AllocFailures)
		for _, b := range nat.Retries {
			counter(c.natRetries, b.Count, b.Retries)
		}
	}
	if hs, err := c.src.Latencies(); err != nil {
		fail("latency", err)
	} else {
		for op, h := range hs {
			ch <- prometheus.MustNewConstHistogram(c.latency, h.Count, h.Sum, h.Cumulative(), op)
		}
	}
	if peers, err := c.src.OverlayPeers(); err != nil {
		fail("overlay peers", err)
	} else {
		for _, p := range peers {
			h := p.Host.String()
			counter(c.peerPackets, p.TxPackets, h, "tx")
			counter(c.peerBytes, p.TxBytes, h, "tx")
			counter(c.peerPackets, p.RxPackets, h, "rx")
			counter(c.peerBytes, p.RxBytes, h, "rx")
		}
	}
	gauge(c.buildInfo, 1, Version(), runtime.Version())
	c.scrapeErrors.Collect(ch)
}

// endpointLabels are the endpoint labels of eps, one each: the
// container's name where it is known (what Docker users know a container
// by), else the endpoint's name. Two endpoints of one network must not
// share a label, or the whole scrape fails; a container name already taken
// in its network (a renamed container's old name, an endpoint named like
// a container) falls back to the endpoint's name, which is unique.
func endpointLabels(eps []datapath.EndpointTraffic) []string {
	type key struct{ network, label string }
	taken := make(map[key]bool, len(eps))
	for _, e := range eps {
		taken[key{e.Network, e.Name}] = true
	}
	out := make([]string, len(eps))
	for i, e := range eps {
		out[i] = e.Name
		if e.ContainerName == "" || taken[key{e.Network, e.ContainerName}] {
			continue
		}
		taken[key{e.Network, e.ContainerName}] = true
		out[i] = e.ContainerName
	}
	return out
}

// Version is the module version ebpfnet was built as, or "devel".
func Version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
