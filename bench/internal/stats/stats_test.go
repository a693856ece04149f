package stats

import (
	"math"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestPercentile(t *testing.T) {
	s := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, c := range []struct{ p, want float64 }{
		{0, 1}, {50, 5.5}, {100, 10}, {90, 9.1}, {99, 9.91},
	} {
		if got := Percentile(s, c.p); !near(got, c.want) {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if got := Percentile([]float64{7}, 99); got != 7 {
		t.Errorf("single = %v", got)
	}
	if !math.IsNaN(Percentile(nil, 50)) {
		t.Error("empty percentile should be NaN")
	}
}

func TestDescribe(t *testing.T) {
	d := Describe([]float64{5, 1, 3})
	if d.N != 3 || d.Min != 1 || d.Max != 5 || d.P50 != 3 || !near(d.Mean, 3) {
		t.Errorf("%+v", d)
	}
	if (Describe(nil) != Desc{}) {
		t.Error("empty describe")
	}
}

func TestSummarize(t *testing.T) {
	s := Summarize([]float64{3, 1, 2})
	if s.N != 3 || s.Median != 2 || s.Min != 1 || s.Max != 3 {
		t.Errorf("odd: %+v", s)
	}
	s = Summarize([]float64{4, 1, math.NaN(), 2, 3})
	if s.N != 4 || s.Median != 2.5 || s.Min != 1 || s.Max != 4 {
		t.Errorf("even with NaN: %+v", s)
	}
	if s := Summarize([]float64{math.NaN()}); s.N != 0 || !math.IsNaN(s.Median) {
		t.Errorf("all NaN: %+v", s)
	}
}

func TestRatio(t *testing.T) {
	if Ratio(9, 10) != 0.9 {
		t.Error("9/10")
	}
	for _, c := range [][2]float64{{1, 0}, {math.NaN(), 1}, {1, math.NaN()}} {
		if !math.IsNaN(Ratio(c[0], c[1])) {
			t.Errorf("Ratio(%v) should be NaN", c)
		}
	}
}
