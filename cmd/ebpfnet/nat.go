package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ebpfnet/ebpfnet/datapath"
)

func newNATCmd(g *globals) *cobra.Command {
	cmd := group(&cobra.Command{Use: "nat", Short: "Inspect address translations"})
	output := newOutputFlag("table", "json")
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List published ports and active translations",
		Args:  cobra.NoArgs,
		RunE: g.withInstance(func(cmd *cobra.Command, _ []string, inst *datapath.Instance) error {
			bindings, err := inst.PortBindings()
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
					Published    []datapath.PortBinding `json:"published"`
					Translations []datapath.Flow        `json:"translations"`
				}{append([]datapath.PortBinding{}, bindings...), append([]datapath.Flow{}, orig...)})
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "PUBLISHED\tTO")
			for _, b := range bindings {
				fmt.Fprintf(w, "%s:%d/%s\t%s:%d\n", datapath.HostAddrString(b.HostIP), b.HostPort, b.Proto, b.ContainerIP, b.ContainerPort)
			}
			fmt.Fprintln(w, "\t")
			fmt.Fprintln(w, "KIND\tFROM\tTO")
			for _, f := range orig {
				fmt.Fprintf(w, "%s\t%s\t%s\n", f.Kind, f.Tuple, f.Translated)
			}
			return w.Flush()
		}),
	}
	output.register(ls.Flags(), "output format")
	cmd.AddCommand(ls)
	return cmd
}
