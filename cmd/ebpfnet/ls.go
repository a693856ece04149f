package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ebpfnet/ebpfnet/datapath"
)

func newLsCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List endpoints",
		Args:  cobra.NoArgs,
		RunE: g.withInstance(func(cmd *cobra.Command, _ []string, inst *datapath.Instance) error {
			eps, err := inst.Endpoints()
			if err != nil {
				return err
			}
			switch output {
			case "json":
				if eps == nil {
					eps = []datapath.Endpoint{}
				}
				return printJSON(cmd, eps)
			case "", "table":
			default:
				return fmt.Errorf("invalid -o %q: want table or json", output)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tMODE\tNETWORK\tIP\tMAC\tHOST VETH\tNETNS")
			for _, e := range eps {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Name, e.Mode, dash(e.Network), dash(addrString(e)), dash(e.MAC), dash(e.HostVeth), e.Netns)
			}
			return w.Flush()
		}),
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
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
