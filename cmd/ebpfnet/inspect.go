package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/ebpfnet/ebpfnet/datapath"
)

func newInspectCmd(g *globals) *cobra.Command {
	var out *listFlags
	cmd := &cobra.Command{
		Use:   "inspect TARGET...",
		Short: "Show endpoints as a JSON array: mode, network, addresses, interfaces, program, counters",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withInstance(func(cmd *cobra.Command, args []string, inst *datapath.Instance) error {
			var found []datapath.EndpointDetail
			var errs []error
			for _, t := range args {
				d, err := inst.Inspect(t)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				found = append(found, d)
			}
			if len(found) > 0 || len(errs) == 0 {
				if err := printInspected(cmd, out, found, func(d datapath.EndpointDetail) string { return d.Name }); err != nil {
					return err
				}
			}
			return errors.Join(errs...)
		}),
	}
	out = newInspectFlags(cmd)
	return cmd
}

// newInspectFlags gives inspect commands Docker's --format; their default
// output is always a JSON array, as docker inspect's.
func newInspectFlags(cmd *cobra.Command) *listFlags {
	l := &listFlags{output: newOutputFlag("json")}
	cmd.Flags().StringVarP(&l.format, "format", "f", "", "format each item with a Go template, e.g. '{{.IP}}'")
	return l
}

func printInspected[T any](cmd *cobra.Command, l *listFlags, items []T, name func(T) string) error {
	return printList(cmd, l, items, name, nil)
}
