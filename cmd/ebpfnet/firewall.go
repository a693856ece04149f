package main

import (
	"fmt"
	"io"
	"slices"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ebpfnet/ebpfnet/datapath"
)

// firewallScope is the scope flags rule commands share: --port or
// --network, neither for every published port.
type firewallScope struct{ port, network string }

func (s *firewallScope) register(f *pflag.FlagSet) {
	f.StringVar(&s.port, "port", "", "scope: one published host port, PORT[/PROTO] (tcp by default)")
	f.StringVar(&s.network, "network", "", "scope: the published ports of one network's containers")
}

func (s *firewallScope) rule() (datapath.FirewallRule, error) {
	var r datapath.FirewallRule
	if s.port != "" && s.network != "" {
		return r, fmt.Errorf("--port and --network: a rule has one scope")
	}
	if s.port != "" {
		var err error
		if r.Port, r.Protocol, err = datapath.ParseFirewallPort(s.port); err != nil {
			return r, err
		}
	}
	r.Network = s.network
	return r, nil
}

func newFirewallCmd(g *globals) *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "firewall",
		Short: "Restrict who may reach published ports (ebpfnet's DOCKER-USER)",
		Long: `Source allow/deny lists for new connections from outside to published ports.

ebpfnet translates published ports at TC, before the host's netfilter, so
iptables, ufw and a DOCKER-USER chain never see that traffic: these rules
are where to restrict it. A new flow is judged by the most specific scope
that has rules (its published port, then its container's network, then
every published port); within a scope the longest matching source prefix
decides, and a scope with an allow rule denies every source it does not
allow. Sources are IPv4 or IPv6 prefixes, each family judged by its own:
an allow list refuses the sources it does not name of both families (one
naming IPv4 prefixes only refuses every IPv6 client; allow ::/0 to open
the scope to IPv6), and --source any is 0.0.0.0/0 and ::/0 together.
Flows already open and replies are not judged again. On a
nat-unprotected network the network and global scopes also judge flows
routed to the containers' own addresses.`,
	})
	var scope firewallScope
	var source, action string
	add := &cobra.Command{
		Use:   "add --source PREFIX [--action allow|deny] [--port PORT[/PROTO] | --network NAME]",
		Short: "Allow or deny a source; a rule with the same scope and source is replaced",
		Example: `  ebpfnet firewall add --port 8080/tcp --source 198.18.0.0/24            # only that prefix reaches 8080/tcp
  ebpfnet firewall add --source 203.0.113.7 --action deny                 # nobody at that address reaches any port
  ebpfnet firewall add --network web --source 10.0.0.0/8
  ebpfnet firewall add --port 8080/tcp --source 2001:db8::/32             # IPv6 clients: the same scopes, lists per family`,
		Args: cobra.NoArgs,
		RunE: g.withInstance(func(cmd *cobra.Command, _ []string, inst *datapath.Instance) error {
			r, err := scope.rule()
			if err != nil {
				return err
			}
			if source == "" {
				return fmt.Errorf("--source is required (an IPv4 or IPv6 address or prefix, or any)")
			}
			r.Action = datapath.FirewallAction(action)
			rules, err := withSources(r, source)
			if err != nil {
				return err
			}
			return inst.FirewallAdd(rules...)
		}),
	}
	scope.register(add.Flags())
	add.Flags().StringVar(&source, "source", "", "IPv4 or IPv6 address or prefix of the clients, or any (both families)")
	add.Flags().StringVar(&action, "action", string(datapath.FirewallAllow), "allow or deny")

	var rmScope firewallScope
	var rmSource string
	rm := &cobra.Command{
		Use:   "rm --source PREFIX [--port PORT[/PROTO] | --network NAME]",
		Short: "Remove the rule with that scope and source",
		Args:  cobra.NoArgs,
		RunE: g.withInstance(func(cmd *cobra.Command, _ []string, inst *datapath.Instance) error {
			r, err := rmScope.rule()
			if err != nil {
				return err
			}
			if rmSource == "" {
				return fmt.Errorf("--source is required")
			}
			rules, err := withSources(r, rmSource)
			if err != nil {
				return err
			}
			return inst.FirewallRemove(rules...)
		}),
	}
	rmScope.register(rm.Flags())
	rm.Flags().StringVar(&rmSource, "source", "", "the rule's source")

	var flushScope firewallScope
	flush := &cobra.Command{
		Use:   "flush [--port PORT[/PROTO] | --network NAME]",
		Short: "Remove every rule, or every rule of one scope",
		Args:  cobra.NoArgs,
		RunE: g.withInstance(func(cmd *cobra.Command, _ []string, inst *datapath.Instance) error {
			var scoped *datapath.FirewallRule
			if cmd.Flags().Changed("port") || cmd.Flags().Changed("network") {
				r, err := flushScope.rule()
				if err != nil {
					return err
				}
				scoped = &r
			}
			n, err := inst.FirewallFlush(scoped)
			if err == nil {
				fmt.Fprintf(cmd.OutOrStdout(), "%d rule(s) removed\n", n)
			}
			return err
		}),
	}
	flushScope.register(flush.Flags())

	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the rules, each scope's implied deny included",
		Args:  cobra.NoArgs,
	}
	lf := newListFlags(ls.Flags(), true)
	// A rule has no name: -q prints the flags that name it, for scripts
	// (ebpfnet firewall ls -q | xargs -L1 ebpfnet firewall rm).
	ls.Flags().Lookup("quiet").Usage = "print each rule as the --port/--network and --source flags that name it (implied denies left out)"
	ls.RunE = g.withInstance(func(cmd *cobra.Command, _ []string, inst *datapath.Instance) error {
		rules, err := inst.FirewallRules()
		if err != nil {
			return err
		}
		if lf.quiet {
			rules = slices.DeleteFunc(rules, func(r datapath.FirewallRule) bool { return r.Implied })
		}
		return printList(cmd, lf, rules, firewallRuleFlags, func(w io.Writer) {
			fmt.Fprintln(w, "SCOPE\tSOURCE\tACTION")
			for _, r := range rules {
				act := string(r.Action)
				if r.Implied {
					act += " (implied)"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\n", r.Scope(), r.Source, act)
			}
		})
	})
	cmd.AddCommand(add, rm, flush, ls)
	return cmd
}

// withSources is r once per prefix source names ("any": one per family).
func withSources(r datapath.FirewallRule, source string) ([]datapath.FirewallRule, error) {
	prefixes, err := datapath.ParseFirewallSources(source)
	if err != nil {
		return nil, err
	}
	rules := make([]datapath.FirewallRule, len(prefixes))
	for j, p := range prefixes {
		rules[j] = r
		rules[j].Source = p
	}
	return rules, nil
}

// firewallRuleFlags is the command line that names r in firewall rm.
func firewallRuleFlags(r datapath.FirewallRule) string {
	switch {
	case r.Port != 0:
		return fmt.Sprintf("--port %d/%s --source %v", r.Port, r.Protocol, r.Source)
	case r.Network != "":
		return fmt.Sprintf("--network %s --source %v", r.Network, r.Source)
	}
	return fmt.Sprintf("--source %v", r.Source)
}
