package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// GCMetrics count the daemon's conntrack garbage collections.
type GCMetrics struct {
	runs     prometheus.Counter
	expired  prometheus.Counter
	duration prometheus.Histogram
}

// NewGCMetrics returns unregistered GC metrics.
func NewGCMetrics() *GCMetrics {
	return &GCMetrics{
		runs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ebpfnet_conntrack_gc_runs_total", Help: "Conntrack garbage collections run.",
		}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ebpfnet_conntrack_gc_expired_total", Help: "Flows expired by conntrack garbage collection.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ebpfnet_conntrack_gc_duration_seconds", Help: "Duration of conntrack garbage collections.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8),
		}),
	}
}

// Observe records one collection.
func (g *GCMetrics) Observe(expired int, d time.Duration) {
	g.runs.Inc()
	g.expired.Add(float64(expired))
	g.duration.Observe(d.Seconds())
}

// Describe implements prometheus.Collector.
func (g *GCMetrics) Describe(ch chan<- *prometheus.Desc) {
	g.runs.Describe(ch)
	g.expired.Describe(ch)
	g.duration.Describe(ch)
}

// Collect implements prometheus.Collector.
func (g *GCMetrics) Collect(ch chan<- prometheus.Metric) {
	g.runs.Collect(ch)
	g.expired.Collect(ch)
	g.duration.Collect(ch)
}
