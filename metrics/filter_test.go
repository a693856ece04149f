package metrics_test

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// filtered passes on the one metric of a collector whose name and labels
// match, so testutil.ToFloat64 can read it.
type filtered struct {
	c            prometheus.Collector
	label1       string
	label2, name string
}

func (f filtered) Describe(ch chan<- *prometheus.Desc) { f.c.Describe(ch) }

func (f filtered) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric)
	go func() { f.c.Collect(all); close(all) }()
	for m := range all {
		desc := m.Desc().String()
		var pb dto.Metric
		m.Write(&pb)
		labels := ""
		for _, l := range pb.GetLabel() {
			labels += l.GetName() + `="` + l.GetValue() + `",`
		}
		if strings.Contains(desc, `"`+f.name+`"`) && strings.Contains(labels, f.label1) && strings.Contains(labels, f.label2) {
			ch <- m
		}
	}
}
