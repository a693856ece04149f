// Package report holds the benchmark's result model (every sample, as
// written to JSON) and renders it: medians with min-max and ratios to host
// mode as a Markdown table, and SVG charts.
package report

import (
	"encoding/json"
	"math"
	"sort"
	"time"

	"github.com/ebpfnet/ebpfnet/bench/internal/stats"
)

// NoN marks a sample that is not part of a scaling series.
const NoN = -1

// Sample is one measurement of one metric, in one repetition, for one mode.
type Sample struct {
	Rep      int             `json:"rep"`
	Mode     string          `json:"mode"`
	Workload string          `json:"workload"`
	Metric   string          `json:"metric"`
	Unit     string          `json:"unit"`
	N        int             `json:"n"` // scaling parameter; NoN otherwise
	OK       bool            `json:"ok"`
	Value    float64         `json:"value"` // 0 when !OK
	Error    string          `json:"error,omitempty"`
	Detail   json.RawMessage `json:"detail,omitempty"` // the tool's own output
	At       time.Time       `json:"at"`
}

// Meta describes the run and the machine.
type Meta struct {
	Start   time.Time         `json:"start"`
	End     time.Time         `json:"end"`
	Quick   bool              `json:"quick"`
	Reps    int               `json:"reps"`
	Modes   []string          `json:"modes"`
	Machine map[string]string `json:"machine"`
	Params  map[string]string `json:"params"`
}

// Results is the whole run.
type Results struct {
	Meta    Meta     `json:"meta"`
	Samples []Sample `json:"samples"`
	Notes   []string `json:"notes,omitempty"`
}

// Key identifies a table cell independent of mode and repetition.
type Key struct {
	Workload, Metric string
	N                int
}

func (s Sample) Key() Key { return Key{s.Workload, s.Metric, s.N} }

// Cell is the summary of one key for one mode.
type Cell struct {
	Values   stats.Summary // over successful repetitions
	Ratios   stats.Summary // value / host value of the same repetition
	Failed   int
	Total    int
	Errors   []string // distinct error messages
	HasRatio bool
}

// Summarize builds the cell for (k, mode). ref is the host-mode key the ratio
// is taken against (nil: no ratio).
func (r *Results) Summarize(k Key, mode string, ref *Key) Cell {
	var c Cell
	var vals, ratios []float64
	seen := map[string]bool{}
	for _, s := range r.Samples {
		if s.Key() != k || s.Mode != mode {
			continue
		}
		c.Total++
		if !s.OK {
			c.Failed++
			if !seen[s.Error] {
				seen[s.Error] = true
				c.Errors = append(c.Errors, s.Error)
			}
			continue
		}
		vals = append(vals, s.Value)
		if ref != nil {
			if h, ok := r.find(*ref, "host", s.Rep); ok {
				ratios = append(ratios, stats.Ratio(s.Value, h))
			}
		}
	}
	c.Values = stats.Summarize(vals)
	if ref != nil {
		c.Ratios = stats.Summarize(ratios)
		c.HasRatio = c.Ratios.N > 0
	}
	return c
}

func (r *Results) find(k Key, mode string, rep int) (float64, bool) {
	for _, s := range r.Samples {
		if s.Key() == k && s.Mode == mode && s.Rep == rep && s.OK {
			return s.Value, true
		}
	}
	return math.NaN(), false
}

// Ns returns the scaling values present for a workload/metric, ascending.
func (r *Results) Ns(workload, metric string) []int {
	set := map[int]bool{}
	for _, s := range r.Samples {
		if s.Workload == workload && s.Metric == metric && s.N != NoN {
			set[s.N] = true
		}
	}
	var ns []int
	for n := range set {
		ns = append(ns, n)
	}
	sort.Ints(ns)
	return ns
}

// HasMode reports whether any sample of mode exists for k.
func (r *Results) HasMode(k Key, mode string) bool {
	for _, s := range r.Samples {
		if s.Key() == k && s.Mode == mode {
			return true
		}
	}
	return false
}
