package main

import (
	"encoding/json"
	"fmt"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebpfnet/ebpfnet/datapath"
)

func newMonitorCmd(g *globals) *cobra.Command {
	var rate uint32
	output := newOutputFlag("text", "json")
	cmd := &cobra.Command{
		Use:   "monitor",
		Short: "Stream datapath events (drops with reason, interface and 5-tuple) until interrupted",
		Long: `Like cilium monitor: the datapath emits events into a ring buffer only while a
monitor runs (it renews a short lease every second), rate limited per CPU.
One monitor at a time per instance: a second one is refused.`,
		Args: cobra.NoArgs,
		RunE: g.withInstance(func(cmd *cobra.Command, _ []string, inst *datapath.Instance) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			enc := json.NewEncoder(cmd.OutOrStdout())
			return inst.Monitor(ctx, rate, func(ev datapath.MonitorEvent) error {
				iface := ev.Interface
				if ev.Endpoint != "" {
					iface += " endpoint " + ev.Endpoint
				}
				if output.value == "json" {
					return enc.Encode(jsonEvent{
						Type: ev.Type, Reason: ev.Reason, Direction: ev.Direction, Interface: iface,
						Len: ev.Len, Tuple: ev.Tuple.String(),
					})
				}
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "%s %s (%s)\n", time.Now().Format("15:04:05.000"), ev.Event, iface)
				return err
			})
		}),
	}
	cmd.Flags().Uint32Var(&rate, "rate", 1000, "most events per second per CPU")
	output.register(cmd.Flags(), "output format")
	return cmd
}

type jsonEvent struct {
	Type      string `json:"type"`
	Reason    string `json:"reason,omitempty"`
	Direction string `json:"direction"`
	Interface string `json:"interface"`
	Len       int    `json:"len"`
	Tuple     string `json:"tuple,omitempty"`
}
