package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ebpfnet/ebpfnet/datapath"
	"github.com/ebpfnet/ebpfnet/maps"
)

func newPortCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "port TARGET",
		Short: "List an endpoint's published ports (like docker port)",
		Args:  cobra.ExactArgs(1),
		RunE: g.withInstance(func(cmd *cobra.Command, args []string, inst *datapath.Instance) error {
			ports, err := inst.Ports(args[0])
			if err != nil {
				return err
			}
			for _, p := range ports {
				fmt.Fprintln(cmd.OutOrStdout(), p)
			}
			return nil
		}),
	}
}

// timeoutFlags binds conntrack timeout flags to t; each must be positive.
func timeoutFlags(f *pflag.FlagSet, t *maps.Timeouts) {
	f.Var(positiveDuration{&t.TCPSyn}, "ct-timeout-tcp-syn", "idle timeout of TCP flows not yet established")
	f.Var(positiveDuration{&t.TCPEstablished}, "ct-timeout-tcp-established", "idle timeout of established TCP flows")
	f.Var(positiveDuration{&t.TCPClosing}, "ct-timeout-tcp-closing", "idle timeout of TCP flows after FIN or RST")
	f.Var(positiveDuration{&t.UDP}, "ct-timeout-udp", "idle timeout of UDP flows")
	f.Var(positiveDuration{&t.ICMP}, "ct-timeout-icmp", "idle timeout of ICMP echo flows")
}

// positiveDuration is a duration flag that refuses zero and negative values
// (a timeout of -5s would expire every live flow).
type positiveDuration struct{ d *time.Duration }

func (p positiveDuration) String() string {
	if p.d == nil {
		return "0s"
	}
	return p.d.String()
}
func (p positiveDuration) Type() string { return "duration" }
func (p positiveDuration) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	if d <= 0 {
		return fmt.Errorf("must be positive")
	}
	*p.d = d
	return nil
}

func newCTCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "ct", Short: "Inspect and expire the datapath's connection tracking"}
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List conntrack entries (one per direction)",
		Args:  cobra.NoArgs,
		RunE: g.withInstance(func(cmd *cobra.Command, _ []string, inst *datapath.Instance) error {
			flows, err := inst.Flows()
			if err != nil {
				return err
			}
			now := maps.Monotonic()
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "KIND\tDIR\tTUPLE\tTRANSLATED\tSTATE\tAGE\tIDLE")
			for _, f := range flows {
				dir := "orig"
				if f.Reply {
					dir = "reply"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Kind, dir, f.Tuple, f.Translated, f.State,
					f.Age(now).Truncate(time.Second), f.Idle(now).Truncate(time.Second))
			}
			return w.Flush()
		}),
	}
	t := maps.DefaultTimeouts
	gc := &cobra.Command{
		Use:   "gc",
		Short: "Expire idle conntrack entries once (the daemon does this periodically)",
		Args:  cobra.NoArgs,
		RunE: g.withInstance(func(cmd *cobra.Command, _ []string, inst *datapath.Instance) error {
			r, err := inst.GC(t)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "expired %d flows in %s\n", r.Expired, r.Duration.Round(time.Microsecond))
			return nil
		}),
	}
	timeoutFlags(gc.Flags(), &t)
	cmd.AddCommand(ls, gc)
	return cmd
}

func newNATCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "nat", Short: "Inspect address translations"}
	cmd.AddCommand(&cobra.Command{
		Use:   "ls",
		Short: "List published ports and active translations",
		Args:  cobra.NoArgs,
		RunE: g.withInstance(func(cmd *cobra.Command, _ []string, inst *datapath.Instance) error {
			views, err := inst.Views()
			if err != nil {
				return err
			}
			bindings, err := views.PortBindings()
			if err != nil {
				return err
			}
			flows, err := inst.Flows()
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "PUBLISHED\tTO")
			for _, b := range bindings {
				host := "0.0.0.0"
				if b.HostIP.IsValid() {
					host = b.HostIP.String()
				}
				proto := map[uint8]string{maps.ProtoTCP: "tcp", maps.ProtoUDP: "udp"}[b.Proto]
				fmt.Fprintf(w, "%s:%d/%s\t%s:%d\n", host, b.HostPort, proto, b.ContainerIP, b.ContainerPort)
			}
			fmt.Fprintln(w, "\t")
			fmt.Fprintln(w, "KIND\tFROM\tTO")
			for _, f := range flows {
				if !f.Reply {
					fmt.Fprintf(w, "%s\t%s\t%s\n", f.Kind, f.Tuple, f.Translated)
				}
			}
			return w.Flush()
		}),
	})
	return cmd
}
