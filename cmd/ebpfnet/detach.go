package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ebpfnet/ebpfnet/datapath"
)

func newDetachCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "detach TARGET...",
		Short: "Disconnect endpoints and remove everything attach made",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withInstance(func(cmd *cobra.Command, args []string, inst *datapath.Instance) error {
			for _, t := range args {
				ep, err := inst.Detach(t)
				if err != nil {
					return err
				}
				g.releaseOverlay(cmd.Context(), cmd.ErrOrStderr(), ep, onOverlay(inst, ep))
				fmt.Fprintln(cmd.OutOrStdout(), ep.Name)
			}
			return nil
		}),
	}
}
