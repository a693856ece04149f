package report

import (
	"fmt"
	"math"
	"strings"
)

// Row is one line of the Markdown table.
type Row struct {
	Section string // a new section header row when it changes
	Label   string
	Key     Key
	Ref     *Key // host-mode key for the ratio column; nil: no ratio
}

// Num formats a value with precision that suits its size.
func Num(v float64) string {
	a := math.Abs(v)
	switch {
	case math.IsNaN(v):
		return "n/a"
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// CellText renders a cell: "median (min–max) ×ratio", or the failure.
func CellText(c Cell, footnote func(string) int) string {
	if c.Total == 0 {
		return "—"
	}
	if c.Values.N == 0 {
		var refs []string
		for _, e := range c.Errors {
			refs = append(refs, fmt.Sprintf("[%d]", footnote(e)))
		}
		return "**FAILED** " + strings.Join(refs, "")
	}
	s := Num(c.Values.Median)
	if c.Values.N > 1 {
		s += fmt.Sprintf(" (%s–%s)", Num(c.Values.Min), Num(c.Values.Max))
	}
	if c.HasRatio {
		s += fmt.Sprintf(" ×%.2f", c.Ratios.Median)
	}
	if c.Failed > 0 {
		var refs []string
		for _, e := range c.Errors {
			refs = append(refs, fmt.Sprintf("[%d]", footnote(e)))
		}
		s += fmt.Sprintf(" (%d/%d failed %s)", c.Failed, c.Total, strings.Join(refs, ""))
	}
	return s
}

// Markdown renders rows × modes. Failures are numbered footnotes below.
func Markdown(r *Results, rows []Row, modes []string) string {
	var b strings.Builder
	var notes []string
	index := map[string]int{}
	footnote := func(e string) int {
		if i, ok := index[e]; ok {
			return i
		}
		notes = append(notes, e)
		index[e] = len(notes)
		return len(notes)
	}
	b.WriteString("| metric |")
	for _, m := range modes {
		b.WriteString(" " + m + " |")
	}
	b.WriteString("\n|---|")
	for range modes {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	section := ""
	for _, row := range rows {
		if row.Section != section {
			section = row.Section
			fmt.Fprintf(&b, "| ***%s*** |%s\n", section, strings.Repeat(" |", len(modes)))
		}
		b.WriteString("| " + row.Label + " |")
		for _, m := range modes {
			b.WriteString(" " + CellText(r.Summarize(row.Key, m, row.Ref), footnote) + " |")
		}
		b.WriteString("\n")
	}
	if len(notes) > 0 {
		b.WriteString("\nFailures:\n\n")
		for i, n := range notes {
			fmt.Fprintf(&b, "%d. %s\n", i+1, oneLine(n))
		}
	}
	return b.String()
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return strings.ReplaceAll(s, "|", "\\|")
}
