package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ebpfnet/ebpfnet/datapath"
	"github.com/ebpfnet/ebpfnet/datapath/ports"
)

// group makes cmd a parent of subcommands that refuses to run by itself:
// cobra would print help and exit 0 for "ebpfnet ct" or "ebpfnet network
// prune", and a script would take that for success.
func group(cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return fmt.Errorf("%s needs a subcommand: %s", cmd.CommandPath(), strings.Join(subcommandNames(cmd), ", "))
		}
		return fmt.Errorf("unknown command %q for %q (want one of: %s)", args[0], cmd.CommandPath(), strings.Join(subcommandNames(cmd), ", "))
	}
	return cmd
}

func subcommandNames(cmd *cobra.Command) []string {
	var out []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			out = append(out, c.Name())
		}
	}
	return out
}

// outputFlag is an -o/--output value that refuses formats a command does
// not have, when the flag is parsed.
type outputFlag struct {
	value   string
	allowed []string
}

func newOutputFlag(def string, others ...string) *outputFlag {
	return &outputFlag{value: def, allowed: append([]string{def}, others...)}
}

func (o *outputFlag) String() string { return o.value }
func (o *outputFlag) Type() string   { return "format" }

func (o *outputFlag) Set(s string) error {
	if !slices.Contains(o.allowed, s) {
		return fmt.Errorf("want %s", strings.Join(o.allowed, " or "))
	}
	o.value = s
	return nil
}

func (o *outputFlag) register(f *pflag.FlagSet, usage string) {
	f.VarP(o, "output", "o", usage+": "+strings.Join(o.allowed, " or "))
}

// publishFlags are Docker's -p/--publish, -P/--publish-all and --expose.
type publishFlags struct {
	specs, expose []string
	all           bool
}

func (p *publishFlags) register(f *pflag.FlagSet) {
	f.StringArrayVarP(&p.specs, "publish", "p", nil, "publish a port: [hostIP:][hostPort[-end]:]containerPort[-end][/tcp|/udp], an IPv6 hostIP in brackets ([::1]:8080:80); no hostIP: both families, 0.0.0.0: IPv4 only, [::]: IPv6 only; a host port range with one container port takes one free port of the range")
	f.BoolVarP(&p.all, "publish-all", "P", false, "publish every --expose'd port on an ephemeral host port")
	f.StringArrayVar(&p.expose, "expose", nil, "expose a port or range, PORT[-END][/PROTO] (published by -P)")
}

// requests are the ports to publish. --expose is checked with or without -P.
func (p *publishFlags) requests() ([]ports.Request, error) {
	reqs, err := ports.ParseSpecs(p.specs)
	if err != nil {
		return nil, err
	}
	all, err := ports.PublishAll(p.expose, reqs)
	if err != nil || !p.all {
		return reqs, err
	}
	return all, nil
}

// args gives the flags back as a command line (run -d's child).
func (p *publishFlags) args() []string {
	var out []string
	for _, s := range p.specs {
		out = append(out, "--publish", s)
	}
	for _, s := range p.expose {
		out = append(out, "--expose", s)
	}
	if p.all {
		out = append(out, "--publish-all")
	}
	return out
}

// networkFlag is Docker's --network, with --net as its alias. Given twice,
// the values must agree, except that the mode "bridge" and a network's name
// make bridge mode on that network (the older `--net=bridge --network NAME`).
type networkFlag struct{ values []string }

func (n *networkFlag) String() string { return strings.Join(n.values, ",") }
func (n *networkFlag) Type() string   { return "network" }

func (n *networkFlag) Set(s string) error {
	if _, err := datapath.ParseNetworkMode(s); err != nil {
		return err
	}
	n.values = append(n.values, s)
	return nil
}

// mode resolves the flag; without it, bridge mode on the default network.
func (n *networkFlag) mode() (datapath.NetworkMode, error) {
	out := datapath.NetworkMode{Mode: datapath.ModeBridge}
	for i, v := range n.values {
		m, err := datapath.ParseNetworkMode(v)
		if err != nil {
			return out, err
		}
		switch {
		case i == 0 || m == out:
			out = m
		case m.Mode == datapath.ModeBridge && out.Mode == datapath.ModeBridge && (m.Network == "" || out.Network == ""):
			out.Network = max(m.Network, out.Network)
		default:
			return out, fmt.Errorf("conflicting options: --network=%s and --network=%s", n.values[0], v)
		}
	}
	return out, nil
}

func (n *networkFlag) register(f *pflag.FlagSet, usage string) {
	f.Var(n, "network", usage)
	f.SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if name == "net" {
			name = "network"
		}
		return pflag.NormalizedName(name)
	})
}
