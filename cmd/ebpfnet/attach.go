package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ebpfnet/ebpfnet/datapath"
)

func newAttachCmd(g *globals) *cobra.Command {
	var o datapath.AttachOptions
	var mode string
	var ports []string
	cmd := &cobra.Command{
		Use:   "attach --net=bridge|none [flags] TARGET",
		Short: "Connect a network namespace (name, netns path or PID)",
		Example: `  ip netns add web && ebpfnet attach --net=bridge web
  ebpfnet attach --net=bridge --network backend --ip 172.30.0.10 /run/netns/db
  ebpfnet attach --net=none 4242`,
		Args: cobra.ExactArgs(1),
		RunE: g.withInstance(func(cmd *cobra.Command, args []string, inst *datapath.Instance) error {
			m, _, err := datapath.ParseMode(mode)
			if err != nil {
				return err
			}
			if o.Ports, err = datapath.ParsePortSpecs(ports); err != nil {
				return err
			}
			o.Mode, o.Target = m, args[0]
			ep, err := inst.Attach(o)
			if err != nil {
				return err
			}
			if ep.Mode == datapath.ModeBridge {
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s %s\n", ep.Name, ep.Network, ep.IP)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", ep.Name, ep.Mode)
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&mode, "net", "bridge", "network mode: bridge or none")
	f.StringVar(&o.Network, "network", "", "network to join (default: "+datapath.DefaultNetwork+", created on first use)")
	f.StringVar(&o.IP, "ip", "", "IPv4 address (default: the next free one)")
	publishFlag(f, &ports)
	f.StringVar(&o.Name, "name", "", "endpoint name (default: derived from TARGET)")
	return cmd
}
