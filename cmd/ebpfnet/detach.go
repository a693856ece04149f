package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ebpfnet/ebpfnet/datapath"
	"github.com/ebpfnet/ebpfnet/overlay"
)

func newDetachCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "detach TARGET...",
		Short: "Disconnect endpoints and remove everything attach made",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withInstance(func(cmd *cobra.Command, args []string, inst *datapath.Instance) error {
			agent := g.overlayAgent(inst)
			defer agent.Close()
			for _, t := range args {
				ep, err := agent.Detach(cmd.Context(), t)
				var notReleased *overlay.NotReleasedError
				if errors.As(err, &notReleased) {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v\n", err)
				} else if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), ep.Name)
			}
			return nil
		}),
	}
}
