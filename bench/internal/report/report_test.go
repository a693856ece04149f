package report

import (
	"encoding/xml"
	"io"
	"math"
	"strings"
	"testing"

	"github.com/ebpfnet/ebpfnet/bench/internal/stats"
)

func sample(rep int, mode string, v float64, ok bool) Sample {
	s := Sample{Rep: rep, Mode: mode, Workload: "dnat_tcp", Metric: "gbps", N: NoN, OK: ok, Value: v}
	if !ok {
		s.Value, s.Error = 0, "connectivity check failed"
	}
	return s
}

func testResults() *Results {
	return &Results{Samples: []Sample{
		sample(1, "host", 10, true), sample(2, "host", 20, true), sample(3, "host", 8, true),
		sample(1, "ebpfnet", 9, true), sample(2, "ebpfnet", 19, true), sample(3, "ebpfnet", 8, true),
		sample(1, "iptables", 0, false), sample(2, "iptables", 0, false), sample(3, "iptables", 0, false),
		sample(1, "nftables", 5, true), sample(2, "nftables", 0, false), sample(3, "nftables", 4, true),
	}}
}

func TestSummarizeRatiosSameRepetition(t *testing.T) {
	r := testResults()
	k := Key{"dnat_tcp", "gbps", NoN}
	c := r.Summarize(k, "ebpfnet", &k)
	if c.Values.Median != 9 || c.Values.Min != 8 || c.Values.Max != 19 {
		t.Errorf("values %+v", c.Values)
	}
	// Ratios per repetition: 0.9, 0.95, 1.0 -> median 0.95. The ratio of
	// medians (9/10) would differ: ratios must pair repetitions.
	if !c.HasRatio || math.Abs(c.Ratios.Median-0.95) > 1e-9 || c.Ratios.Min != 0.9 || c.Ratios.Max != 1 {
		t.Errorf("ratios %+v", c.Ratios)
	}
	f := r.Summarize(k, "iptables", &k)
	if f.Failed != 3 || f.Values.N != 0 || len(f.Errors) != 1 || f.HasRatio {
		t.Errorf("failed cell %+v", f)
	}
	p := r.Summarize(k, "nftables", &k)
	if p.Failed != 1 || p.Values.N != 2 || p.Values.Median != 4.5 || p.Ratios.N != 2 {
		t.Errorf("partial cell %+v", p)
	}
}

func TestMarkdown(t *testing.T) {
	r := testResults()
	k := Key{"dnat_tcp", "gbps", NoN}
	md := Markdown(r, []Row{{Section: "S", Label: "ingress", Key: k, Ref: &k}}, []string{"host", "iptables", "nftables", "ebpfnet", "other"})
	for _, want := range []string{
		"| metric | host | iptables | nftables | ebpfnet | other |",
		"| ingress | 10.0 (8.00–20.0) ×1.00 | **FAILED** [1] | 4.50 (4.00–5.00) ×0.50 (1/3 failed [1]) | 9.00 (8.00–19.0) ×0.95 | — |",
		"1. connectivity check failed",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestNum(t *testing.T) {
	for v, want := range map[float64]string{12345.6: "12346", 123.4: "123", 12.34: "12.3", 1.234: "1.23", 0.1234: "0.123", math.NaN(): "n/a"} {
		if got := Num(v); got != want {
			t.Errorf("Num(%v) = %q, want %q", v, got, want)
		}
	}
}

func wellFormed(t *testing.T, svg string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(svg))
	for {
		_, err := d.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v\n%s", err, svg)
		}
	}
}

func TestCharts(t *testing.T) {
	series := []Series{
		{Name: "host", Values: []stats.Summary{{N: 3, Median: 9, Min: 8, Max: 10}, {N: 1, Median: 5, Min: 5, Max: 5}}},
		{Name: "ebpfnet <&>", Values: []stats.Summary{{}, {N: 3, Median: 4, Min: 3, Max: 6}}, Note: []string{"failed", ""}},
	}
	bar := BarChart("TCP <throughput>", Axis{Unit: "Gbit/s", Better: HigherBetter}, []string{"ingress", "egress"}, series)
	wellFormed(t, bar)
	for _, want := range []string{"failed", "ebpfnet &lt;&amp;&gt;", "TCP &lt;throughput&gt;", `height="`, "higher is better"} {
		if !strings.Contains(bar, want) {
			t.Errorf("bar chart lacks %q", want)
		}
	}
	// Axis top: the largest max (10) rounded to a nice number.
	if !strings.Contains(bar, ">10<") {
		t.Errorf("bar chart axis should top at 10:\n%s", bar)
	}
	line := LineChart("rate", Axis{Unit: "conn/s"}, "N", []string{"0", "1000"}, series)
	wellFormed(t, line)
	if strings.Count(line, "<polyline") != 1 { // host has 2 points; ebpfnet only 1
		t.Errorf("want one polyline:\n%s", line)
	}
	if !strings.Contains(line, "ebpfnet &lt;&amp;&gt;: failed") {
		t.Error("line chart should label the failed point")
	}
	series[0].Reference = true
	ref := LineChart("rate", Axis{Unit: "conn/s"}, "N", []string{"0", "1000"}, series)
	wellFormed(t, ref)
	if strings.Count(ref, "<polyline") != 0 || !strings.Contains(ref, `stroke-dasharray`) {
		t.Errorf("reference series should be a dashed line, not a polyline:\n%s", ref)
	}
}

// A log axis keeps a flat line of tens of µs readable next to a 100,000 µs
// collapse: ticks at every decade, and the small values well off the floor.
func TestLogAxis(t *testing.T) {
	series := []Series{
		{Name: "ebpfnet", Values: []stats.Summary{{N: 1, Median: 40, Min: 40, Max: 40}, {N: 1, Median: 45, Min: 45, Max: 45}}},
		{Name: "iptables", Values: []stats.Summary{{N: 1, Median: 60, Min: 60, Max: 60}, {N: 1, Median: 120000, Min: 120000, Max: 120000}}},
	}
	svg := LineChart("p99", Axis{Unit: "µs", Better: LowerBetter, Log: true}, "N", []string{"10", "50000"}, series)
	wellFormed(t, svg)
	for _, want := range []string{">10<", ">100<", ">1000<", ">1000000<", "lower is better; log scale"} {
		if !strings.Contains(svg, want) {
			t.Errorf("log axis lacks %q", want)
		}
	}
	var b strings.Builder
	y := valueAxis(&b, Axis{Log: true}, series)
	if floor, small := y(10), y(40); floor-small < float64(plotH)/10 {
		t.Errorf("40 µs sits %.1f px above the floor of a 10..10^6 axis: flattened", floor-small)
	}
}

func TestNiceMax(t *testing.T) {
	for v, want := range map[float64]float64{0: 1, 7: 10, 10: 10, 11: 20, 0.3: 0.5, 2200: 2500, 12843: 20000} {
		if got := niceMax(v); math.Abs(got-want) > 1e-9 {
			t.Errorf("niceMax(%v) = %v, want %v", v, got, want)
		}
	}
}
