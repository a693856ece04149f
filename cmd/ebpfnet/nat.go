package main

import (
	"bufio"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ebpfnet/ebpfnet/datapath"
	"github.com/ebpfnet/ebpfnet/datapath/ports"
)

func newNATCmd(g *globals) *cobra.Command {
	cmd := group(&cobra.Command{Use: "nat", Short: "Inspect address translations"})
	output := newOutputFlag("table", "json")
	var expand bool
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List published ports and active translations",
		Args:  cobra.NoArgs,
		RunE: g.withInstance(func(cmd *cobra.Command, _ []string, inst *datapath.Instance) error {
			bindings, err := inst.PortEntries()
			if err != nil {
				return err
			}
			flows, err := inst.Flows()
			if err != nil {
				return err
			}
			var orig []datapath.Flow
			for _, f := range flows {
				if !f.Reply {
					orig = append(orig, f)
				}
			}
			if output.value == "json" {
				return printJSON(cmd, struct {
					Published    []datapath.PortEntry `json:"published"`
					Translations []datapath.Flow      `json:"translations"`
				}{append([]datapath.PortEntry{}, bindings...), append([]datapath.Flow{}, orig...)})
			}
			// Buffered: tabwriter writes cell by cell, a syscall each.
			out := bufio.NewWriter(cmd.OutOrStdout())
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "PUBLISHED\tTO")
			runs := groupRuns(bindings, expand, func(b datapath.PortEntry) portRun {
				return portRun{proto: b.Proto, hostIP: b.HostIP, ctrIP: b.ContainerIP, hostPort: b.HostPort, ctrPort: b.ContainerPort}
			})
			for _, r := range runs {
				fmt.Fprintf(w, "%s:%s/%s\t%s:%s\n", ports.HostAddrString(r.hostIP), portSpan(r.hostPort, r.n), r.proto, r.ctrIP, portSpan(r.ctrPort, r.n))
			}
			fmt.Fprintln(w, "\t")
			fmt.Fprintln(w, "KIND\tFROM\tTO")
			for _, f := range orig {
				fmt.Fprintf(w, "%s\t%s\t%s\n", f.Kind, f.Tuple, f.Translated)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			return out.Flush()
		}),
	}
	output.register(ls.Flags(), "output format")
	ls.Flags().BoolVar(&expand, "expand", false, "one line per published port instead of one per range")
	cmd.AddCommand(ls)
	return cmd
}
