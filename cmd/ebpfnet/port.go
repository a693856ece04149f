package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ebpfnet/ebpfnet/datapath"
)

func newPortCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "port TARGET [PORT[/PROTO]]",
		Short: "List an endpoint's published ports, or where one container port is published (like docker port)",
		Example: `  ebpfnet port web            # 80/tcp -> 0.0.0.0:8080
  ebpfnet port web 80         # 0.0.0.0:8080
  ebpfnet port web 53/udp`,
		Args: cobra.RangeArgs(1, 2),
		RunE: g.withInstance(func(cmd *cobra.Command, args []string, inst *datapath.Instance) error {
			ports, err := inst.Ports(args[0])
			if err != nil {
				return err
			}
			if len(args) == 1 {
				for _, p := range ports {
					fmt.Fprintln(cmd.OutOrStdout(), p)
				}
				return nil
			}
			want, err := datapath.ParseContainerPort(args[1])
			if err != nil {
				return err
			}
			found := false
			for _, p := range ports {
				if p.ContainerPort == want.ContainerPort && p.Proto == want.Proto {
					fmt.Fprintf(cmd.OutOrStdout(), "%s:%d\n", datapath.HostAddrString(p.HostIP), p.HostPort)
					found = true
				}
			}
			if !found {
				return fmt.Errorf("no public port '%d/%s' published for %s", want.ContainerPort, want.Proto, args[0])
			}
			return nil
		}),
	}
}
