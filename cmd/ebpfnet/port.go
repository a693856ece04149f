package main

import (
	"bufio"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ebpfnet/ebpfnet/datapath"
	"github.com/ebpfnet/ebpfnet/datapath/ports"
)

func newPortCmd(g *globals) *cobra.Command {
	var expand bool
	cmd := &cobra.Command{
		Use:   "port TARGET [PORT[/PROTO]]",
		Short: "List an endpoint's published ports, or where one container port is published (like docker port)",
		Example: `  ebpfnet port web            # 80/tcp -> 0.0.0.0:8080
  ebpfnet port web 80         # 0.0.0.0:8080
  ebpfnet port web 53/udp
  ebpfnet port big            # 20000-40000/tcp -> 0.0.0.0:20000-40000 (--expand: one line per port)`,
		Args: cobra.RangeArgs(1, 2),
		RunE: g.withInstance(func(cmd *cobra.Command, args []string, inst *datapath.Instance) error {
			published, err := inst.Ports(args[0])
			if err != nil {
				return err
			}
			out := bufio.NewWriter(cmd.OutOrStdout())
			defer out.Flush()
			if len(args) == 1 {
				runs := groupRuns(published, expand, func(p ports.Mapping) portRun {
					return portRun{proto: p.Proto, hostIP: p.HostIP, hostPort: p.HostPort, ctrPort: p.ContainerPort}
				})
				for _, r := range runs {
					fmt.Fprintf(out, "%s/%s -> %s:%s\n", portSpan(r.ctrPort, r.n), r.proto, ports.HostAddrString(r.hostIP), portSpan(r.hostPort, r.n))
				}
				return nil
			}
			want, err := ports.ParseContainerPort(args[1])
			if err != nil {
				return err
			}
			found := false
			for _, p := range published {
				if p.ContainerPort == want.ContainerPort && p.Proto == want.Proto {
					fmt.Fprintf(out, "%s:%d\n", ports.HostAddrString(p.HostIP), p.HostPort)
					found = true
				}
			}
			if !found {
				return fmt.Errorf("no public port '%d/%s' published for %s", want.ContainerPort, want.Proto, args[0])
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&expand, "expand", false, "one line per port instead of one per range")
	return cmd
}
