// Package stats summarises benchmark samples: percentiles of one run's
// per-operation timings, and medians with min-max over repetitions.
package stats

import (
	"math"
	"sort"
)

// Desc describes one distribution.
type Desc struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean"`
	Min  float64 `json:"min"`
	Max  float64 `json:"max"`
	P50  float64 `json:"p50"`
	P99  float64 `json:"p99"`
}

// Describe returns mean, min, max, p50 and p99 of xs (NaN-free; empty gives zeros).
func Describe(xs []float64) Desc {
	if len(xs) == 0 {
		return Desc{}
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	sum := 0.0
	for _, x := range s {
		sum += x
	}
	return Desc{
		N: len(s), Mean: sum / float64(len(s)), Min: s[0], Max: s[len(s)-1],
		P50: Percentile(s, 50), P99: Percentile(s, 99),
	}
}

// Percentile of sorted xs by linear interpolation between closest ranks
// (p in [0,100]).
func Percentile(sorted []float64, p float64) float64 {
	n := len(sorted)
	switch {
	case n == 0:
		return math.NaN()
	case n == 1 || p <= 0:
		return sorted[0]
	case p >= 100:
		return sorted[n-1]
	}
	r := p / 100 * float64(n-1)
	lo := int(math.Floor(r))
	frac := r - float64(lo)
	if lo+1 >= n {
		return sorted[n-1]
	}
	return sorted[lo] + frac*(sorted[lo+1]-sorted[lo])
}

// Summary is the median and range of repeated measurements.
type Summary struct {
	N      int     `json:"n"`
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

// Summarize returns the median (mean of the middle two for even counts),
// min and max. NaNs are ignored.
func Summarize(xs []float64) Summary {
	s := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			s = append(s, x)
		}
	}
	if len(s) == 0 {
		return Summary{Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	}
	sort.Float64s(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return Summary{N: n, Median: med, Min: s[0], Max: s[n-1]}
}

// Ratio is v/ref, NaN when either is missing or ref is zero.
func Ratio(v, ref float64) float64 {
	if math.IsNaN(v) || math.IsNaN(ref) || ref == 0 {
		return math.NaN()
	}
	return v / ref
}
