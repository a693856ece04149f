package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
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

// publishFlag binds Docker's -p/--publish; datapath.ParsePortSpecs reads it.
func publishFlag(f *pflag.FlagSet, specs *[]string) {
	f.StringArrayVarP(specs, "publish", "p", nil, "publish a port: [hostIP:][hostPort[-end]:]containerPort[-end][/tcp|/udp]")
}
