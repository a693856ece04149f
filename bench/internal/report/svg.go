package report

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"

	"github.com/ebpfnet/ebpfnet/bench/internal/stats"
)

// Palette: one colour per series, colour-blind friendly (Okabe-Ito).
var Palette = []string{"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00"}

// Series is one mode's values, one per category (bars) or x position (lines).
// A value with N == 0 is missing (failed or not measured).
type Series struct {
	Name   string
	Values []stats.Summary
	Note   []string // per point, shown instead of a missing value (e.g. "failed")
	// Reference: in a line chart, draw the first value as a dashed
	// horizontal line across the plot (host mode, measured at N=0 only).
	Reference bool
}

// Axis is a chart's value axis: its unit, which direction is better (said
// under the title, so a reader never has to guess), and whether it is
// logarithmic, for values spanning decades (iptables' collapse next to a
// flat eBPF line would otherwise flatten the line to zero).
type Axis struct {
	Unit   string
	Better string // HigherBetter or LowerBetter
	Log    bool
}

// Directions for Axis.Better.
const (
	HigherBetter = "higher is better"
	LowerBetter  = "lower is better"
)

const (
	svgW, svgH             = 760, 420
	padL, padR, padT, padB = 70, 20, 50, 80
	plotW, plotH           = svgW - padL - padR, svgH - padT - padB
	fontAttr               = `font-family="sans-serif"`
)

// niceMax rounds the axis top up to 1, 2, 2.5 or 5 times a power of ten.
func niceMax(v float64) float64 {
	if v <= 0 || math.IsNaN(v) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func header(b *strings.Builder, title string, a Axis) {
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" %s font-size="12">`+"\n", svgW, svgH, svgW, svgH, fontAttr)
	fmt.Fprintf(b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(b, `<text x="%d" y="24" font-size="16" font-weight="bold">%s</text>`+"\n", padL, html.EscapeString(title))
	sub := a.Better
	if a.Log {
		sub = strings.TrimPrefix(sub+"; log scale", "; ")
	}
	if sub != "" {
		fmt.Fprintf(b, `<text x="%d" y="40" font-size="12" fill="#555">%s</text>`+"\n", padL, html.EscapeString(sub))
	}
	fmt.Fprintf(b, `<text x="14" y="%d" transform="rotate(-90 14 %d)" text-anchor="middle">%s</text>`+"\n", padT+plotH/2, padT+plotH/2, html.EscapeString(a.Unit))
}

// valueAxis draws the y axis for series and returns the value-to-y map.
func valueAxis(b *strings.Builder, a Axis, series []Series) func(float64) float64 {
	if !a.Log {
		return yAxis(b, niceMax(maxOf(series)))
	}
	lo, hi := logRange(series)
	y := func(v float64) float64 {
		v = math.Max(v, lo) // zero and below sit on the axis
		return padT + plotH - (math.Log10(v)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))*plotH
	}
	for v := lo; v <= hi*1.0001; v *= 10 {
		fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", padL, padL+plotW, y(v), y(v))
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", padL-6, y(v), Num(v))
	}
	fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#333"/>`+"\n", padL, padL+plotW, padT+plotH, padT+plotH)
	return y
}

// logRange is the decades the series' positive values span.
func logRange(series []Series) (lo, hi float64) {
	lo, hi = math.Inf(1), 0
	for _, s := range series {
		for _, v := range s.Values {
			if v.N > 0 && v.Min > 0 {
				lo = math.Min(lo, v.Min)
			}
			if v.N > 0 {
				hi = math.Max(hi, v.Max)
			}
		}
	}
	if hi <= 0 {
		return 1, 10
	}
	if math.IsInf(lo, 1) {
		lo = hi
	}
	lo = math.Pow(10, math.Floor(math.Log10(lo)))
	hi = math.Pow(10, math.Ceil(math.Log10(hi)))
	if hi <= lo {
		hi = lo * 10
	}
	return lo, hi
}

func yAxis(b *strings.Builder, top float64) func(float64) float64 {
	y := func(v float64) float64 { return padT + plotH - v/top*plotH }
	dec := max(0, int(-math.Floor(math.Log10(top/5))))
	for i := 0; i <= 5; i++ {
		v := top * float64(i) / 5
		fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", padL, padL+plotW, y(v), y(v))
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", padL-6, y(v), strconv.FormatFloat(v, 'f', dec, 64))
	}
	fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#333"/>`+"\n", padL, padL+plotW, padT+plotH, padT+plotH)
	return y
}

func legend(b *strings.Builder, series []Series) {
	x := padL
	for i, s := range series {
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/>`, x, svgH-24, Palette[i%len(Palette)])
		fmt.Fprintf(b, `<text x="%d" y="%d">%s</text>`+"\n", x+16, svgH-14, html.EscapeString(s.Name))
		x += 30 + 8*len(s.Name)
	}
}

func maxOf(series []Series) float64 {
	m := 0.0
	for _, s := range series {
		for _, v := range s.Values {
			if v.N > 0 && v.Max > m {
				m = v.Max
			}
		}
	}
	return m
}

// BarChart draws grouped bars: one group per category, one bar per series,
// the median as the bar and min-max as a whisker.
func BarChart(title string, a Axis, categories []string, series []Series) string {
	unit := a.Unit
	var b strings.Builder
	header(&b, title, a)
	y := valueAxis(&b, a, series)
	groupW := float64(plotW) / float64(max(1, len(categories)))
	barW := groupW * 0.8 / float64(max(1, len(series)))
	for ci, cat := range categories {
		gx := padL + float64(ci)*groupW + groupW*0.1
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", gx+groupW*0.4, padT+plotH+18, html.EscapeString(cat))
		for si, s := range series {
			x := gx + float64(si)*barW
			col := Palette[si%len(Palette)]
			if ci >= len(s.Values) || s.Values[ci].N == 0 {
				note := "n/a"
				if ci < len(s.Note) && s.Note[ci] != "" {
					note = s.Note[ci]
				}
				fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="end" transform="rotate(-90 %.1f %d)" fill="%s" font-size="11">%s</text>`+"\n",
					x+barW/2+4, padT+plotH-4, x+barW/2+4, padT+plotH-4, col, html.EscapeString(note))
				continue
			}
			v := s.Values[ci]
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s %s</title></rect>`+"\n",
				x, y(v.Median), barW*0.9, y(0)-y(v.Median), col, html.EscapeString(s.Name), html.EscapeString(cat), Num(v.Median), html.EscapeString(unit))
			if v.N > 1 {
				cx := x + barW*0.45
				fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#000"/>`+"\n", cx, cx, y(v.Min), y(v.Max))
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%s</text>`+"\n", x+barW*0.45, y(v.Max)-4, Num(v.Median))
		}
	}
	legend(&b, series)
	b.WriteString("</svg>\n")
	return b.String()
}

// LineChart draws one line per series over equally spaced x positions
// (labelled by xlabels: a categorical axis, so N = 10, 1000 and 50000 are
// equally readable), markers at medians, min-max whiskers.
func LineChart(title string, a Axis, xtitle string, xlabels []string, series []Series) string {
	unit := a.Unit
	var b strings.Builder
	header(&b, title, a)
	y := valueAxis(&b, a, series)
	n := max(1, len(xlabels))
	x := func(i int) float64 {
		if n == 1 {
			return padL + plotW/2
		}
		return padL + 30 + float64(i)*float64(plotW-60)/float64(n-1)
	}
	for i, l := range xlabels {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x(i), padT+plotH+18, html.EscapeString(l))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", padL+plotW/2, padT+plotH+38, html.EscapeString(xtitle))
	for si, s := range series {
		col := Palette[si%len(Palette)]
		if s.Reference {
			if len(s.Values) > 0 && s.Values[0].N > 0 {
				v := s.Values[0]
				fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="2" stroke-dasharray="6 4"><title>%s: %s %s</title></line>`+"\n",
					padL, padL+plotW, y(v.Median), y(v.Median), col, html.EscapeString(s.Name), Num(v.Median), html.EscapeString(unit))
				fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="%s" font-size="11">%s %s</text>`+"\n", padL+plotW-4, y(v.Median)-4, col, html.EscapeString(s.Name), Num(v.Median))
			}
			continue
		}
		var pts []string
		for i, v := range s.Values {
			if i >= len(xlabels) {
				break
			}
			if v.N == 0 {
				if len(pts) > 1 {
					fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), col)
				}
				pts = nil
				if i < len(s.Note) && s.Note[i] != "" {
					fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="%s" font-size="11">%s</text>`+"\n", x(i), padT+plotH-6-12*si, col, html.EscapeString(s.Name+": "+s.Note[i]))
				}
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(v.Median)))
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="4" fill="%s"><title>%s N=%s: %s %s</title></circle>`+"\n", x(i), y(v.Median), col, html.EscapeString(s.Name), html.EscapeString(xlabels[i]), Num(v.Median), html.EscapeString(unit))
			if v.N > 1 {
				fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s"/>`+"\n", x(i), x(i), y(v.Min), y(v.Max), col)
			}
		}
		if len(pts) > 1 {
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), col)
		}
	}
	legend(&b, series)
	b.WriteString("</svg>\n")
	return b.String()
}
