package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/ebpfnet/ebpfnet/datapath"
)

func newRunCmd(g *globals) *cobra.Command {
	var o datapath.RunOptions
	var mode string
	var ports []string
	cmd := &cobra.Command{
		Use:   "run [flags] -- CMD [ARG...]",
		Short: "Run a command with a Docker network mode",
		Long: `Run CMD in the network the mode gives it:
  --net=bridge          a new named netns (see ip netns), attached to a bridge network
  --net=none            a new named netns with only lo
  --net=host            the host's namespace (the one ebpfnet runs in)
  --net=container:NAME  the namespace of endpoint NAME

With --rm, a namespace made for CMD is detached and deleted when CMD exits.
The exit status is CMD's.`,
		Example: `  ebpfnet run --net=bridge --name web --rm -- python3 -m http.server 80
  ebpfnet run --net=container:web -- ss -ltn`,
		Args: cobra.MinimumNArgs(1),
		RunE: g.withInstance(func(cmd *cobra.Command, args []string, inst *datapath.Instance) error {
			var err error
			if o.Mode, o.Container, err = datapath.ParseMode(mode); err != nil {
				return err
			}
			if o.Ports, err = datapath.ParsePortSpecs(ports); err != nil {
				return err
			}
			o.Cmd = args
			o.Stdin, o.Stdout, o.Stderr = os.Stdin, cmd.OutOrStdout(), cmd.ErrOrStderr()
			code, err := inst.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			if code != 0 {
				return exitError{code}
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&mode, "net", "bridge", "network mode: bridge, host, none or container:NAME")
	f.StringVar(&o.Name, "name", "", "name of the netns and endpoint (default: generated)")
	f.BoolVar(&o.Rm, "rm", false, "detach and delete the namespace when CMD exits")
	f.StringVar(&o.Network, "network", "", "bridge network to join")
	f.StringVar(&o.IP, "ip", "", "IPv4 address")
	publishFlag(f, &ports)
	return cmd
}
