package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"text/template"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// listFlags are the output flags every listing and inspect command has, as
// in Docker: -o table|json, --format with a Go template applied to each
// item (or "json"), and -q for names only.
type listFlags struct {
	output *outputFlag
	format string
	quiet  bool
}

func newListFlags(f *pflag.FlagSet, quiet bool) *listFlags {
	l := &listFlags{output: newOutputFlag("table", "json")}
	l.output.register(f, "output format")
	f.StringVar(&l.format, "format", "", "format each item with a Go template, e.g. '{{.Name}} {{.IP}}', or 'json'")
	if quiet {
		f.BoolVarP(&l.quiet, "quiet", "q", false, "print names only")
	}
	return l
}

// print writes items as the flags ask: names, template, JSON array, or the
// table that table writes.
func printList[T any](cmd *cobra.Command, l *listFlags, items []T, name func(T) string, table func(w io.Writer)) error {
	out := cmd.OutOrStdout()
	switch {
	case l.quiet:
		for _, it := range items {
			fmt.Fprintln(out, name(it))
		}
		return nil
	case l.format == "json" || (l.format == "" && l.output.value == "json"):
		if items == nil {
			items = []T{}
		}
		return printJSON(cmd, items)
	case l.format != "":
		tmpl, err := parseFormat(l.format)
		if err != nil {
			return err
		}
		for _, it := range items {
			if err := tmpl.Execute(out, it); err != nil {
				return fmt.Errorf("--format: %w", err)
			}
			fmt.Fprintln(out)
		}
		return nil
	}
	// Buffered: tabwriter writes cell by cell, a syscall each (seconds for
	// `ct ls` of 100k entries).
	buf := bufio.NewWriter(out)
	w := tabwriter.NewWriter(buf, 0, 4, 2, ' ', 0)
	table(w)
	if err := w.Flush(); err != nil {
		return err
	}
	return buf.Flush()
}

// parseFormat compiles a --format template with Docker's json and join
// functions.
func parseFormat(s string) (*template.Template, error) {
	t, err := template.New("format").Funcs(template.FuncMap{
		"json": func(v any) (string, error) {
			b, err := json.Marshal(v)
			return string(b), err
		},
		"join":  strings.Join,
		"upper": strings.ToUpper,
		"lower": strings.ToLower,
	}).Option("missingkey=error").Parse(s)
	if err != nil {
		return nil, fmt.Errorf("--format: %w", err)
	}
	return t, nil
}

func printJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
