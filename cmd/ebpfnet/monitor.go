package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebpfnet/ebpfnet/datapath"
	"github.com/ebpfnet/ebpfnet/maps"
)

func newMonitorCmd(g *globals) *cobra.Command {
	var rate uint32
	var output string
	cmd := &cobra.Command{
		Use:   "monitor",
		Short: "Stream datapath events (drops with reason, interface and 5-tuple) until interrupted",
		Long: `Like cilium monitor: the datapath emits events into a ring buffer only while a
monitor runs (it renews a short lease every second), rate limited per CPU.
One monitor at a time: two would share the events between them.`,
		Args: cobra.NoArgs,
		RunE: g.withInstance(func(cmd *cobra.Command, _ []string, inst *datapath.Instance) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("invalid -o %q: want text or json", output)
			}
			views, err := inst.Views()
			if err != nil {
				return err
			}
			rd, err := views.OpenMonitor()
			if err != nil {
				return err
			}
			defer rd.Close()
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			lease := func() error { return views.EnableMonitor(maps.Monotonic()+3*time.Second, rate) }
			if err := lease(); err != nil {
				return err
			}
			defer views.DisableMonitor()
			go func() {
				t := time.NewTicker(time.Second)
				defer t.Stop()
				for {
					select {
					case <-ctx.Done():
						rd.Close()
						return
					case <-t.C:
						lease()
					}
				}
			}()
			names := endpointNames(inst)
			enc := json.NewEncoder(cmd.OutOrStdout())
			for {
				ev, err := rd.Read()
				if errors.Is(err, maps.ErrClosed) {
					return nil
				}
				if err != nil {
					return err
				}
				iface := ifaceName(ev.Ifindex, names)
				if output == "json" {
					enc.Encode(jsonEvent{
						Type: ev.Type, Reason: ev.Reason, Direction: ev.Direction, Interface: iface,
						Len: ev.Len, Tuple: ev.Tuple.String(),
					})
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s (%s)\n", time.Now().Format("15:04:05.000"), ev, iface)
			}
		}),
	}
	cmd.Flags().Uint32Var(&rate, "rate", 1000, "most events per second per CPU")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func endpointNames(inst *datapath.Instance) map[int]string {
	out := map[int]string{}
	refs, _ := inst.EndpointRefs()
	for _, r := range refs {
		out[r.Ifindex] = r.Name
	}
	return out
}

func ifaceName(ifindex int, endpoints map[int]string) string {
	name := fmt.Sprint(ifindex)
	if i, err := net.InterfaceByIndex(ifindex); err == nil {
		name = i.Name
	}
	if ep, ok := endpoints[ifindex]; ok {
		name += " endpoint " + ep
	}
	return name
}

type jsonEvent struct {
	Type      string `json:"type"`
	Reason    string `json:"reason,omitempty"`
	Direction string `json:"direction"`
	Interface string `json:"interface"`
	Len       int    `json:"len"`
	Tuple     string `json:"tuple,omitempty"`
}
