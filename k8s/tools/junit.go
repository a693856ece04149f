//go:build ignore

// junit turns the JUnit XML files that e2e.test writes (--report-dir) into
// the harness's summary: one line per test (PASS, FAIL or SKIP and its
// name) and totals on stdout, and the same as JSON.
//
//	go run k8s/tools/junit.go -json summary.json junit_01.xml ...
package main

import (
	"encoding/json"
	"encoding/xml"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
)

type testCase struct {
	Name    string   `xml:"name,attr"`
	Time    float64  `xml:"time,attr"`
	Status  string   `xml:"status,attr"`
	Skipped *message `xml:"skipped"`
	Failure *message `xml:"failure"`
	Error   *message `xml:"error"`
}

type message struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

type suite struct {
	Cases  []testCase `xml:"testcase"`
	Suites []suite    `xml:"testsuite"`
}

// Result is one test in the summary.
type Result struct {
	Status  string  `json:"status"` // PASS, FAIL or SKIP
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
	Reason  string  `json:"reason,omitempty"`
}

// Summary is the JSON file the harness writes.
type Summary struct {
	Pass int `json:"pass"`
	Fail int `json:"fail"`
	Skip int `json:"skip"`
	// NotSelected: specs outside the focus or inside the skip list, which
	// ginkgo reports as skipped without running them.
	NotSelected int      `json:"not_selected"`
	Results     []Result `json:"results"`
}

func collect(s suite, out *[]testCase) {
	*out = append(*out, s.Cases...)
	for _, c := range s.Suites {
		collect(c, out)
	}
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

func main() {
	jsonOut := flag.String("json", "", "write the summary as JSON to this file")
	flag.Parse()
	var cases []testCase
	for _, f := range flag.Args() {
		b, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		var s suite
		if err := xml.Unmarshal(b, &s); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", f, err)
			os.Exit(1)
		}
		collect(s, &cases)
	}
	var sum Summary
	for _, c := range cases {
		// Ginkgo's suite-level nodes are not tests.
		if strings.HasPrefix(c.Name, "[SynchronizedBeforeSuite]") || strings.HasPrefix(c.Name, "[SynchronizedAfterSuite]") ||
			strings.HasPrefix(c.Name, "[ReportAfterSuite]") || strings.HasPrefix(c.Name, "[ReportBeforeSuite]") ||
			strings.HasPrefix(c.Name, "[BeforeSuite]") || strings.HasPrefix(c.Name, "[AfterSuite]") {
			if c.Failure == nil && c.Error == nil {
				continue
			}
		}
		r := Result{Name: strings.TrimPrefix(c.Name, "[It] "), Seconds: c.Time, Status: "PASS"}
		switch {
		case c.Failure != nil:
			r.Status, r.Reason = "FAIL", firstLine(c.Failure.Message+"\n"+c.Failure.Text)
		case c.Error != nil:
			r.Status, r.Reason = "FAIL", firstLine(c.Error.Message+"\n"+c.Error.Text)
		case c.Skipped != nil && c.Skipped.Message == "skipped" && strings.TrimSpace(c.Skipped.Text) == "":
			sum.NotSelected++
			continue
		case c.Skipped != nil || c.Status == "skipped":
			r.Status = "SKIP"
			if c.Skipped != nil {
				r.Reason = firstLine(c.Skipped.Message)
			}
		}
		switch r.Status {
		case "PASS":
			sum.Pass++
		case "FAIL":
			sum.Fail++
		case "SKIP":
			sum.Skip++
		}
		sum.Results = append(sum.Results, r)
	}
	order := map[string]int{"FAIL": 0, "PASS": 1, "SKIP": 2}
	sort.SliceStable(sum.Results, func(i, j int) bool {
		a, b := sum.Results[i], sum.Results[j]
		if order[a.Status] != order[b.Status] {
			return order[a.Status] < order[b.Status]
		}
		return a.Name < b.Name
	})
	for _, r := range sum.Results {
		if r.Reason != "" {
			fmt.Printf("%-4s %5.0fs  %s  -- %s\n", r.Status, r.Seconds, r.Name, r.Reason)
			continue
		}
		fmt.Printf("%-4s %5.0fs  %s\n", r.Status, r.Seconds, r.Name)
	}
	fmt.Printf("TOTAL pass %d, fail %d, skip %d (not selected by focus and skip: %d)\n", sum.Pass, sum.Fail, sum.Skip, sum.NotSelected)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(sum, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if sum.Pass+sum.Fail == 0 {
		os.Exit(2)
	}
}
