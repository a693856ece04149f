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
		Short: "Stream datapath events (drops with reason, interface and 5-tuple, IPv4 or IPv6) until interrupted",
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
					return enc.Encode(newJSONEvent(time.Now(), ev))
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

// jsonEvent is one line of `monitor -o json`: every field on its own, so
// jq and log pipelines need not parse strings.
type jsonEvent struct {
	Time      time.Time `json:"time"`
	Type      string    `json:"type"` // drop or new_flow
	Reason    string    `json:"reason,omitempty"`
	Direction string    `json:"direction"`
	Interface string    `json:"interface"`
	Ifindex   int       `json:"ifindex"`
	Endpoint  string    `json:"endpoint,omitempty"`
	Len       int       `json:"len"`
	Protocol  string    `json:"protocol,omitempty"`
	Src       string    `json:"src,omitempty"`
	SrcPort   uint16    `json:"src_port,omitempty"`
	Dst       string    `json:"dst,omitempty"`
	DstPort   uint16    `json:"dst_port,omitempty"`
	// New flows: the tuple after translation.
	TranslatedSrc     string `json:"translated_src,omitempty"`
	TranslatedSrcPort uint16 `json:"translated_src_port,omitempty"`
	TranslatedDst     string `json:"translated_dst,omitempty"`
	TranslatedDstPort uint16 `json:"translated_dst_port,omitempty"`
}

func newJSONEvent(now time.Time, ev datapath.MonitorEvent) jsonEvent {
	j := jsonEvent{
		Time: now.UTC(), Type: ev.Type, Reason: ev.Reason, Direction: ev.Direction,
		Interface: ev.Interface, Ifindex: ev.Ifindex, Endpoint: ev.Endpoint, Len: ev.Len,
	}
	if t := ev.Tuple; t.Src.Addr().IsValid() {
		j.Protocol = datapath.ProtocolName(t.Proto)
		j.Src, j.SrcPort = t.Src.Addr().String(), t.Src.Port()
		j.Dst, j.DstPort = t.Dst.Addr().String(), t.Dst.Port()
	}
	if t := ev.Translated; t.Proto != 0 {
		j.TranslatedSrc, j.TranslatedSrcPort = t.Src.Addr().String(), t.Src.Port()
		j.TranslatedDst, j.TranslatedDstPort = t.Dst.Addr().String(), t.Dst.Port()
	}
	return j
}
