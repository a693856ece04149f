package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ebpfnet/ebpfnet/datapath"
)

func newPortCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "port TARGET",
		Short: "List an endpoint's published ports (like docker port)",
		Args:  cobra.ExactArgs(1),
		RunE: g.withInstance(func(cmd *cobra.Command, args []string, inst *datapath.Instance) error {
			ports, err := inst.Ports(args[0])
			if err != nil {
				return err
			}
			for _, p := range ports {
				fmt.Fprintln(cmd.OutOrStdout(), p)
			}
			return nil
		}),
	}
}
