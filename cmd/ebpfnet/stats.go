package main

import (
	"cmp"
	"fmt"
	"slices"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ebpfnet/ebpfnet/datapath"
)

func newStatsCmd(g *globals) *cobra.Command {
	output := newOutputFlag("table", "json")
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Show datapath counters: packets by direction and verdict, drops by reason",
		Args:  cobra.NoArgs,
		RunE: g.withInstance(func(cmd *cobra.Command, _ []string, inst *datapath.Instance) error {
			s, err := inst.Stats()
			if err != nil {
				return err
			}
			if output.value == "json" {
				return printJSON(cmd, s)
			}
			slices.SortFunc(s.Verdicts, func(a, b datapath.VerdictStat) int {
				return cmp.Or(cmp.Compare(a.Direction, b.Direction), cmp.Compare(a.Verdict, b.Verdict))
			})
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(w, "DIRECTION\tVERDICT\tPACKETS\tBYTES\t")
			for _, v := range s.Verdicts {
				if v.Count.Packets > 0 {
					fmt.Fprintf(w, "%s\t%s\t%d\t%d\t\n", v.Direction, v.Verdict, v.Count.Packets, v.Count.Bytes)
				}
			}
			fmt.Fprintln(w, "\t\t\t\t")
			fmt.Fprintln(w, "DROP REASON\t\tPACKETS\tBYTES\t")
			reasons := make([]string, 0, len(s.Drops))
			for r := range s.Drops {
				reasons = append(reasons, r)
			}
			slices.Sort(reasons)
			for _, r := range reasons {
				if c := s.Drops[r]; c.Packets > 0 {
					fmt.Fprintf(w, "%s\t\t%d\t%d\t\n", r, c.Packets, c.Bytes)
				}
			}
			return w.Flush()
		}),
	}
	output.register(cmd.Flags(), "output format")
	return cmd
}
