package main

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"

	"github.com/spf13/cobra"

	"github.com/ebpfnet/ebpfnet/datapath"
)

// Docker's exit codes for `run` when the command's own status is not there.
const (
	exitRunFailed     = 125 // ebpfnet itself failed
	exitCannotExecute = 126 // CMD exists but cannot be executed
	exitNotFound      = 127 // CMD was not found
)

func newRunCmd(g *globals) *cobra.Command {
	var o datapath.RunOptions
	var network networkFlag
	var ports []string
	cmd := &cobra.Command{
		Use:   "run [flags] -- CMD [ARG...]",
		Short: "Run a command with a Docker network mode",
		Long: `Run CMD in the network --network gives it, as docker run does:
  --network=bridge          a new named netns (see ip netns) on the default network
  --network=NETWORK         the same on a network made with ebpfnet network create
  --network=none            a new named netns with only lo
  --network=host            the host's namespace (the one ebpfnet runs in)
  --network=container:NAME  the namespace of endpoint NAME

With --rm, a namespace made for CMD is detached and deleted when CMD exits.
The exit status is CMD's; as with docker run, 125 means ebpfnet failed, 126
that CMD cannot be executed and 127 that it was not found.`,
		Example: `  ebpfnet run --network backend --name web --rm -p 8080:80 -- python3 -m http.server 80
  ebpfnet run --network container:web -- ss -ltn`,
		Args: func(cmd *cobra.Command, args []string) error {
			if err := cobra.MinimumNArgs(1)(cmd, args); err != nil {
				return runFailed(err)
			}
			return nil
		},
		RunE: g.withInstance(func(cmd *cobra.Command, args []string, inst *datapath.Instance) error {
			m, err := network.mode()
			if err != nil {
				return runFailed(err)
			}
			o.Mode, o.Network, o.Container = m.Mode, m.Network, m.Container
			if o.Ports, err = datapath.ParsePortSpecs(ports); err != nil {
				return runFailed(err)
			}
			o.Cmd = args
			o.Stdin, o.Stdout, o.Stderr = os.Stdin, cmd.OutOrStdout(), cmd.ErrOrStderr()
			code, err := inst.Run(cmd.Context(), o)
			var start *datapath.StartError
			switch {
			case errors.As(err, &start) && (errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist)):
				return exitError{code: exitNotFound, err: err}
			case errors.As(err, &start):
				return exitError{code: exitCannotExecute, err: err}
			case err != nil:
				return runFailed(err)
			case code != 0:
				return exitError{code: code}
			}
			return nil
		}),
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return runFailed(err) })
	f := cmd.Flags()
	network.register(f, "bridge, host, none, container:NAME or a network's name (alias --net)")
	f.StringVar(&o.Name, "name", "", "name of the netns and endpoint (default: generated)")
	f.BoolVar(&o.Rm, "rm", false, "detach and delete the namespace when CMD exits")
	f.StringVar(&o.IP, "ip", "", "IPv4 address")
	publishFlag(f, &ports)
	return cmd
}

func runFailed(err error) error { return exitError{code: exitRunFailed, err: err} }
