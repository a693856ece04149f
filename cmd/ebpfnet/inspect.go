package main

import (
	"github.com/spf13/cobra"

	"github.com/ebpfnet/ebpfnet/datapath"
)

func newInspectCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect TARGET",
		Short: "Show an endpoint as JSON: mode, network, addresses, interfaces, program, counters",
		Args:  cobra.ExactArgs(1),
		RunE: g.withInstance(func(cmd *cobra.Command, args []string, inst *datapath.Instance) error {
			d, err := inst.Inspect(args[0])
			if err != nil {
				return err
			}
			return printJSON(cmd, d)
		}),
	}
}
