package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ebpfnet/ebpfnet/datapath"
)

func newRmCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rm [--force] ENDPOINT...",
		Short: "Remove endpoints, and the namespaces ebpfnet run made for them (like docker rm)",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withInstance(func(cmd *cobra.Command, args []string, inst *datapath.Instance) error {
			removed, err := inst.Remove(force, args...)
			for _, name := range removed {
				fmt.Fprintln(cmd.OutOrStdout(), name)
			}
			return err
		}),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove an endpoint whose command is still running")
	return cmd
}

func newPruneCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "prune",
		Short: "Remove endpoints whose namespace is gone or whose ebpfnet run command has exited",
		Args:  cobra.NoArgs,
		RunE: g.withInstance(func(cmd *cobra.Command, _ []string, inst *datapath.Instance) error {
			removed, err := inst.Prune()
			for _, name := range removed {
				fmt.Fprintln(cmd.OutOrStdout(), name)
			}
			return err
		}),
	}
}
