package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ebpfnet/ebpfnet/datapath"
)

// timeoutFlags binds conntrack timeout flags to t; each must be positive.
func timeoutFlags(f *pflag.FlagSet, t *datapath.Timeouts) {
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
	cmd := group(&cobra.Command{Use: "ct", Short: "Inspect and expire the datapath's connection tracking"})
	var out *listFlags
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List conntrack entries (one per direction), half-open inbound TCP flows (STATE ...,embryonic) and inbound datagram flows (inbound) included",
		Args:  cobra.NoArgs,
		RunE: g.withInstance(func(cmd *cobra.Command, _ []string, inst *datapath.Instance) error {
			flows, err := inst.Flows()
			if err != nil {
				return err
			}
			now := datapath.Now()
			return printList(cmd, out, flows, func(f datapath.Flow) string { return f.Tuple.String() }, func(w io.Writer) {
				fmt.Fprintln(w, "KIND\tDIR\tTUPLE\tTRANSLATED\tSTATE\tAGE\tIDLE")
				for _, f := range flows {
					dir := "orig"
					if f.Reply {
						dir = "reply"
					}
					state := f.State.String()
					switch {
					case f.Embryonic:
						state += ",embryonic"
					case f.Inbound: // a datagram flow from outside: no state bits
						state = strings.TrimPrefix(state+",inbound", "-,")
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Kind, dir, f.Tuple, f.Translated, state,
						f.Age(now).Truncate(time.Second), f.Idle(now).Truncate(time.Second))
				}
			})
		}),
	}
	out = newListFlags(ls.Flags(), true)
	t := datapath.DefaultTimeouts
	gc := &cobra.Command{
		Use:   "gc",
		Short: "Expire idle conntrack entries once (the daemon does this periodically)",
		Args:  cobra.NoArgs,
		// Refuse bad timeouts before opening anything.
		PreRunE: func(*cobra.Command, []string) error { return datapath.CheckTimeouts(t) },
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
