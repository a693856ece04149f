package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ebpfnet/ebpfnet/datapath"
)

func newLsCmd(g *globals) *cobra.Command {
	output := newOutputFlag("table", "json")
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List endpoints",
		Args:  cobra.NoArgs,
		RunE: g.withInstance(func(cmd *cobra.Command, _ []string, inst *datapath.Instance) error {
			eps, err := inst.Endpoints()
			if err != nil {
				return err
			}
			if output.value == "json" {
				if eps == nil {
					eps = []datapath.Endpoint{}
				}
				return printJSON(cmd, eps)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tMODE\tNETWORK\tIP\tMAC\tHOST VETH\tNETNS")
			for _, e := range eps {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Name, e.Mode, dash(e.Network), dash(addrString(e)), dash(e.MAC), dash(e.HostVeth), e.Netns)
			}
			return w.Flush()
		}),
	}
	output.register(cmd.Flags(), "output format")
	return cmd
}

func addrString(e datapath.Endpoint) string {
	if !e.IP.IsValid() {
		return ""
	}
	return e.IP.String()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
