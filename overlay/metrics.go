package overlay

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// syncMetrics export how far the datapath is behind the cluster store.
type syncMetrics struct {
	applied    atomic.Int64 // unix ns of the last view applied
	viewSynced atomic.Bool
	failures   atomic.Uint64

	lag, synced, failed *prometheus.Desc
}

func newSyncMetrics() *syncMetrics {
	return &syncMetrics{
		lag: prometheus.NewDesc("ebpfnet_cluster_sync_lag_seconds",
			"Seconds since the datapath last applied a view of the cluster store that was in step with it (grows while the store is away).", nil, nil),
		synced: prometheus.NewDesc("ebpfnet_cluster_view_synced", "1 while the daemon's view of the cluster store is in step with it.", nil, nil),
		failed: prometheus.NewDesc("ebpfnet_cluster_sync_failures_total", "Views of the cluster store the datapath could not apply.", nil, nil),
	}
}

func (m *syncMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.lag
	ch <- m.synced
	ch <- m.failed
}

func (m *syncMetrics) Collect(ch chan<- prometheus.Metric) {
	if at := m.applied.Load(); at != 0 {
		ch <- prometheus.MustNewConstMetric(m.lag, prometheus.GaugeValue, time.Since(time.Unix(0, at)).Seconds())
	}
	synced := 0.0
	if m.viewSynced.Load() {
		synced = 1
	}
	ch <- prometheus.MustNewConstMetric(m.synced, prometheus.GaugeValue, synced)
	ch <- prometheus.MustNewConstMetric(m.failed, prometheus.CounterValue, float64(m.failures.Load()))
}
