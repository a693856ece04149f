package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/ebpfnet/ebpfnet/datapath"
	"github.com/ebpfnet/ebpfnet/overlay"
)

// overlayAgent is the host's part in the cluster of --cluster-store, for
// one command (inst may be nil for commands without an instance), logging
// warnings. Close it when done.
func (g *globals) overlayAgent(inst *datapath.Instance) *overlay.Agent {
	return g.overlayAgentLog(inst, g.logger(slog.LevelWarn))
}

// overlayAgentLog is overlayAgent logging to log (the daemon's).
func (g *globals) overlayAgentLog(inst *datapath.Instance, log *slog.Logger) *overlay.Agent {
	return overlay.New(inst, overlay.Config{Store: g.clusterStore, StateDir: g.resolvedStateDir(), Log: log})
}

func newOverlayCmd(g *globals) *cobra.Command {
	cmd := group(&cobra.Command{Use: "overlay", Short: "Inspect what the datapath knows of overlay networks' other hosts"})
	var lsOut, peersOut *listFlags
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the remote endpoints (containers on other hosts) the datapath tunnels to",
		Args:  cobra.NoArgs,
		RunE: g.withInstance(func(cmd *cobra.Command, _ []string, inst *datapath.Instance) error {
			rs, err := inst.RemoteEndpoints()
			if err != nil {
				return err
			}
			return printList(cmd, lsOut, rs, func(r datapath.RemoteEndpoint) string { return r.IP.String() }, func(w io.Writer) {
				fmt.Fprintln(w, "NETWORK\tIP\tMAC\tHOST")
				for _, r := range rs {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", dash(r.Network), r.IP, r.MAC, r.Host)
				}
			})
		}),
	}
	lsOut = newListFlags(ls.Flags(), true)
	peers := &cobra.Command{
		Use:   "peers",
		Short: "List the peer hosts and the overlay traffic with each (tx: encapsulated to it, rx: from it)",
		Args:  cobra.NoArgs,
		RunE: g.withInstance(func(cmd *cobra.Command, _ []string, inst *datapath.Instance) error {
			ps, err := inst.OverlayPeers()
			if err != nil {
				return err
			}
			return printList(cmd, peersOut, ps, func(p datapath.OverlayPeer) string { return p.Host.String() }, func(w io.Writer) {
				fmt.Fprintln(w, "HOST\tTX_PACKETS\tTX_BYTES\tRX_PACKETS\tRX_BYTES")
				for _, p := range ps {
					fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\n", p.Host, p.TxPackets, p.TxBytes, p.RxPackets, p.RxBytes)
				}
			})
		}),
	}
	peersOut = newListFlags(peers.Flags(), true)
	cmd.AddCommand(ls, peers)
	return cmd
}
