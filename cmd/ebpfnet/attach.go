package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ebpfnet/ebpfnet/datapath"
)

func newAttachCmd(g *globals) *cobra.Command {
	var o datapath.AttachOptions
	var network networkFlag
	var ports publishFlags
	var dns dnsFlags
	cmd := &cobra.Command{
		Use:   "attach [--network bridge|none|NETWORK] [flags] TARGET",
		Short: "Connect a network namespace (name, netns path or PID)",
		Example: `  ip netns add web && ebpfnet attach web          # bridge mode, default network "bridge"
  ebpfnet attach --network backend --ip 172.30.0.10 -p 8080:80 /run/netns/db
  ebpfnet attach --network none 4242`,
		Args: cobra.ExactArgs(1),
		RunE: g.withInstance(func(cmd *cobra.Command, args []string, inst *datapath.Instance) error {
			m, err := network.mode()
			if err != nil {
				return err
			}
			if o.PortRequests, err = ports.requests(); err != nil {
				return err
			}
			if o.DNSOptions, err = dns.options(); err != nil {
				return err
			}
			o.Mode, o.Network, o.Target = m.Mode, m.Network, args[0]
			if err := checkMACFlag(o.Mode, o.MAC); err != nil {
				return err
			}
			agent := g.overlayAgent(inst)
			defer agent.Close()
			ep, err := agent.Attach(cmd.Context(), o)
			if err != nil {
				return err
			}
			if ep.Mode == datapath.ModeBridge {
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s %s\n", ep.Name, ep.Network, strings.ReplaceAll(addrString(ep), ",", " "))
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", ep.Name, ep.Mode)
			}
			return nil
		}),
	}
	f := cmd.Flags()
	network.register(f, "bridge (the default network, created on first use), none, or a network's name (alias --net)")
	f.StringVar(&o.IP, "ip", "", "IPv4 address (default: the next free one)")
	f.StringVar(&o.IP6, "ip6", "", "IPv6 address on a dual-stack network (default: the next free one)")
	macAddressFlag(f, &o.MAC)
	ports.register(f)
	f.StringVar(&o.Name, "name", "", "endpoint name (default: derived from TARGET)")
	dns.register(f)
	return cmd
}
