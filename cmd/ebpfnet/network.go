package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ebpfnet/ebpfnet/datapath"
)

func newNetworkCmd(g *globals) *cobra.Command {
	cmd := group(&cobra.Command{Use: "network", Short: "Manage bridge and overlay networks"})
	cmd.AddCommand(newNetworkCreateCmd(g), newNetworkLsCmd(g), newNetworkInspectCmd(g), newNetworkRmCmd(g), newNetworkPruneCmd(g), newNetworkConnectCmd(g), newNetworkDisconnectCmd(g))
	return cmd
}

func newNetworkCreateCmd(g *globals) *cobra.Command {
	o := datapath.DefaultNetworkOptions("")
	var driver string
	var subnets, gateways []string
	ipv4 := true
	var ov overlayCreateOptions
	createBridge := g.withInstance(func(cmd *cobra.Command, args []string, inst *datapath.Instance) error {
		o.Name = args[0]
		n, err := inst.CreateNetwork(o)
		if err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), n.Name)
		return nil
	})
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a bridge network, or an overlay network spanning the cluster's hosts",
		Example: `  ebpfnet network create backend --subnet 172.30.0.0/16
  ebpfnet network create dual --ipv6 --subnet 172.31.0.0/24 --subnet fd00:31::/64
  ebpfnet network create v6only --ipv4=false --ipv6 --subnet fd00:32::/64
  ebpfnet network create isolated --subnet 10.77.0.0/24 --icc=false
  ebpfnet --cluster-store etcd://10.0.0.5:2379 network create --driver overlay ov1 --subnet 10.200.0.0/16`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			if o.Subnet, o.Subnet6, err = byFamily("--subnet", subnets); err != nil {
				return err
			}
			if o.Gateway, o.Gateway6, err = byFamily("--gateway", gateways); err != nil {
				return err
			}
			if (o.Subnet6 != "" || o.Gateway6 != "") && !o.IPv6 {
				return fmt.Errorf("an IPv6 --subnet or --gateway needs --ipv6")
			}
			o.NoIPv4 = !ipv4
			if o.NoIPv4 && driver == "overlay" {
				return fmt.Errorf("--ipv4=false: overlay networks need IPv4")
			}
			switch driver {
			case "bridge":
				if cmd.Flags().Changed("vni") {
					return fmt.Errorf("--vni needs --driver overlay")
				}
				return createBridge(cmd, args)
			case "overlay":
				o.Name = args[0]
				return createOverlayNetwork(cmd, g, o, ov)
			}
			return fmt.Errorf("unknown --driver %q: want bridge or overlay", driver)
		},
	}
	f := cmd.Flags()
	f.StringVar(&driver, "driver", "bridge", "bridge (this host) or overlay (every host of the cluster store)")
	f.Uint32Var(&ov.vni, "vni", 0, "VXLAN network identifier of an overlay network (default: the lowest free from 4096)")
	f.StringSliceVar(&subnets, "subnet", nil, "subnet in CIDR form, one IPv4 and with --ipv6 one IPv6 (default: a free /16 from 172.17-31.0.0 and a random unique local /64)")
	f.StringSliceVar(&gateways, "gateway", nil, "gateway address on the bridge, one per family (default: the first address of each subnet)")
	f.BoolVar(&o.IPv6, "ipv6", false, "dual stack: give the network and its containers IPv6 addresses too")
	f.BoolVar(&ipv4, "ipv4", true, "give the network and its containers IPv4 addresses (--ipv4=false --ipv6: an IPv6-only network)")
	f.StringVar(&o.Uplink, "uplink", "", "interface towards the outside (default: the default route's)")
	f.StringVar(&o.Bridge, "bridge", "", "bridge interface name (default: ebpfnet<ID>)")
	f.IntVar(&o.MTU, "mtu", 0, "MTU of the bridge and container interfaces (default: the uplink's)")
	f.BoolVar(&o.ICC, "icc", true, "allow container-to-container traffic")
	f.BoolVar(&o.Masquerade, "ip-masquerade", true, "masquerade traffic leaving for the outside")
	f.BoolVar(&o.Internal, "internal", false, "no access to or from the outside")
	f.StringSliceVar(&o.ServiceCIDRs, "service-cidr", nil, "hand this prefix (e.g. Kubernetes' service CIDR) to the kernel's netfilter, where kube-proxy translates it, with the replies of the flows it translates (repeatable)")
	f.StringVar(&o.GatewayMode, "gateway-mode", "nat", "nat: from outside only published ports and replies reach containers; nat-unprotected: direct routing to every container port")
	return cmd
}

func newNetworkLsCmd(g *globals) *cobra.Command {
	var out *listFlags
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List networks",
		Args:    cobra.NoArgs,
		RunE: g.withInstance(func(cmd *cobra.Command, _ []string, inst *datapath.Instance) error {
			nets, err := inst.Networks()
			if err != nil {
				return err
			}
			// With a cluster store, overlay networks too; when the store
			// does not answer, the local ones are listed and the error told.
			rows, ovErr := g.networkRows(cmd.Context(), nets)
			return errors.Join(printList(cmd, out, rows, func(n networkRow) string { return n.Name }, func(w io.Writer) {
				fmt.Fprintln(w, "NAME\tDRIVER\tSCOPE\tSUBNET\tGATEWAY\tBRIDGE\tUPLINK\tICC\tINTERNAL")
				for _, n := range rows {
					fmt.Fprintln(w, strings.Join(append([]string{n.Name, n.Driver, n.Scope}, n.cells()...), "\t"))
				}
			}), ovErr)
		}),
	}
	out = newListFlags(cmd.Flags(), true)
	return cmd
}

func newNetworkInspectCmd(g *globals) *cobra.Command {
	var out *listFlags
	cmd := &cobra.Command{
		Use:   "inspect NAME...",
		Short: "Show networks and their endpoints as a JSON array",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withInstance(func(cmd *cobra.Command, args []string, inst *datapath.Instance) error {
			var found []datapath.NetworkDetail
			var errs []error
			for _, name := range args {
				d, err := inst.InspectNetwork(name)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				found = append(found, d)
			}
			if len(found) > 0 || len(errs) == 0 {
				if err := printInspected(cmd, out, found, func(d datapath.NetworkDetail) string { return d.Name }); err != nil {
					return err
				}
			}
			return errors.Join(errs...)
		}),
	}
	out = newInspectFlags(cmd)
	return cmd
}

func newNetworkRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME...",
		Aliases: []string{"remove"},
		Short:   "Remove networks (refused while endpoints are attached); removes what it can",
		Args:    cobra.MinimumNArgs(1),
		RunE: g.withInstance(func(cmd *cobra.Command, args []string, inst *datapath.Instance) error {
			var errs []error
			overlays, err := g.overlayNames(cmd.Context(), inst, args)
			if err != nil {
				return err
			}
			agent := g.overlayAgent(inst)
			defer agent.Close()
			for _, name := range args {
				if isPredefined(name) {
					errs = append(errs, fmt.Errorf("%s is a pre-defined network and cannot be removed", name))
					continue
				}
				if overlays[name] {
					if err := agent.RemoveNetwork(cmd.Context(), name); err != nil {
						errs = append(errs, err)
						continue
					}
					fmt.Fprintln(cmd.OutOrStdout(), name)
					continue
				}
				if err := inst.RemoveNetwork(name); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(cmd.OutOrStdout(), name)
			}
			return errors.Join(errs...)
		}),
	}
}

func newNetworkConnectCmd(g *globals) *cobra.Command {
	var o datapath.ConnectOptions
	cmd := &cobra.Command{
		Use:     "connect [--ip IP] NETWORK ENDPOINT",
		Short:   "Connect an endpoint's namespace to one more network (the next ethN)",
		Example: `  ebpfnet network connect backend web     # web gets eth1 on backend, endpoint web.backend`,
		Args:    cobra.ExactArgs(2),
		RunE: g.withInstance(func(cmd *cobra.Command, args []string, inst *datapath.Instance) error {
			o.Network, o.Target = args[0], args[1]
			ep, err := inst.Connect(o)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s %s %s\n", ep.Name, ep.Network, ep.Interface(), strings.ReplaceAll(addrString(ep), ",", " "))
			return nil
		}),
	}
	cmd.Flags().StringVar(&o.IP, "ip", "", "IPv4 address on the network (default: the next free one)")
	cmd.Flags().StringVar(&o.IP6, "ip6", "", "IPv6 address on a dual-stack network (default: the next free one)")
	cmd.Flags().StringArrayVar(&o.Aliases, "alias", nil, "another name the endpoint has on this network")
	aliasFlag(cmd.Flags())
	return cmd
}

func newNetworkDisconnectCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "disconnect NETWORK ENDPOINT",
		Short: "Remove an endpoint's namespace's interface on a network",
		Args:  cobra.ExactArgs(2),
		RunE: g.withInstance(func(cmd *cobra.Command, args []string, inst *datapath.Instance) error {
			ep, err := inst.Disconnect(args[0], args[1])
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), ep.Name)
			return nil
		}),
	}
}

// byFamily sorts a flag's values (--subnet, --gateway) into its one IPv4
// and one IPv6 value, as Docker takes them.
func byFamily(flag string, values []string) (v4, v6 string, err error) {
	for _, v := range values {
		slot := &v4
		if strings.Contains(v, ":") {
			slot = &v6
		}
		if *slot != "" {
			return "", "", fmt.Errorf("%s %s and %s: at most one per address family", flag, *slot, v)
		}
		*slot = v
	}
	return v4, v6, nil
}
