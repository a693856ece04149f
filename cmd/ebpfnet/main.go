// Command ebpfnet is a Docker-style container network datapath in eBPF.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebpfnet/ebpfnet/datapath"
	"github.com/ebpfnet/ebpfnet/metrics"
)

// exitError carries an exit code other than 1 (ebpfnet run returns CMD's)
// and, if ebpfnet has something to say, the error.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string {
	if e.err != nil {
		return e.err.Error()
	}
	return fmt.Sprintf("exit status %d", e.code)
}

func (e exitError) Unwrap() error { return e.err }

func main() {
	// Where a command's time goes: EBPFNET_CPUPROFILE=FILE, then go tool
	// pprof bin/ebpfnet FILE.
	if path := os.Getenv("EBPFNET_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	entered := time.Now()
	err := newRootCmd().ExecuteContext(context.Background())
	printStepTimes(entered)
	if err != nil {
		code := 1
		var exit exitError
		if errors.As(err, &exit) {
			code = exit.code
			err = exit.err
		}
		if err != nil {
			// One line per error: a command on several names reports each.
			for _, line := range strings.Split(err.Error(), "\n") {
				fmt.Fprintln(os.Stderr, "ebpfnet:", line)
			}
		}
		pprof.StopCPUProfile() // os.Exit skips the deferred stop
		os.Exit(code)
	}
}

// globals are the flags every command shares.
type globals struct {
	stateDir  string
	pinRoot   string
	ctMapSize int
	verbose   bool
	// clusterStore is --cluster-store (overlay networks; cluster.go).
	clusterStore string
}

func (g *globals) open(level slog.Level) (*datapath.Instance, error) {
	cfg := datapath.DefaultConfig()
	if g.stateDir != "" {
		cfg.StateDir, cfg.DerivedPaths = g.stateDir, false
	}
	if g.pinRoot != "" {
		cfg.PinRoot, cfg.DerivedPaths = g.pinRoot, false
	}
	cfg.CTMapSize = g.ctMapSize
	cfg.Log = g.logger(level)
	return datapath.Open(cfg)
}

// logger logs to stderr at level, or at info with --verbose.
func (g *globals) logger(level slog.Level) *slog.Logger {
	if g.verbose {
		level = min(level, slog.LevelInfo)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// withInstance adapts a command body that needs an open instance; the
// instance logs warnings and errors (everything with --verbose).
func (g *globals) withInstance(fn func(cmd *cobra.Command, args []string, inst *datapath.Instance) error) func(*cobra.Command, []string) error {
	return g.withInstanceLog(slog.LevelWarn, fn)
}

// withInstanceLog is withInstance for an instance logging from level up.
func (g *globals) withInstanceLog(level slog.Level, fn func(cmd *cobra.Command, args []string, inst *datapath.Instance) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		inst, err := g.open(level)
		if err != nil {
			return err
		}
		defer inst.Close()
		if err := fn(cmd, args, inst); err != nil {
			return err
		}
		// A read-only command on an instance without networks must not
		// leave a freshly loaded datapath pinned behind.
		return inst.ReleaseIfUnused()
	}
}

func envInt(name string) int {
	n, _ := strconv.Atoi(os.Getenv(name))
	return n
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "ebpfnet",
		Short: "Docker-style container networking with an eBPF datapath",
		Long: `ebpfnet gives network namespaces Docker's network modes (bridge, host,
container:NAME, none). Bridge-mode forwarding, masquerade and published ports
run in eBPF programs on each container's veth and on the uplink, with their
own conntrack, instead of the Linux bridge, iptables and netfilter.

Everything is relative to the network namespace ebpfnet runs in; state and
pins are per instance (see --state-dir and --pin-root).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	def := datapath.DefaultConfig()
	root.PersistentFlags().StringVar(&g.stateDir, "state-dir", os.Getenv("EBPFNET_STATE_DIR"), "state directory (env EBPFNET_STATE_DIR; default "+def.StateDir+")")
	root.PersistentFlags().StringVar(&g.pinRoot, "pin-root", os.Getenv("EBPFNET_PIN_ROOT"), "bpffs directory for pinned maps, programs and links (env EBPFNET_PIN_ROOT; default "+def.PinRoot+")")
	root.PersistentFlags().IntVar(&g.ctMapSize, "ct-map-size", envInt("EBPFNET_CT_MAP_SIZE"), fmt.Sprintf("conntrack entries, two per flow (env EBPFNET_CT_MAP_SIZE; default %d); fixed while the datapath is pinned", datapath.DefaultCTMapSize))
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "log what is done")
	clusterFlags(root, g)
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		tuneGC(cmd)
		return checkCTMapSizeFlag(cmd)
	}
	root.AddCommand(
		newNetworkCmd(g),
		newAttachCmd(g),
		newDetachCmd(g),
		newLsCmd(g),
		newInspectCmd(g),
		newRunCmd(g),
		newStatsCmd(g),
		newDaemonCmd(g),
		newDockerPluginCmd(g),
		newPortCmd(g),
		newCTCmd(g),
		newNATCmd(g),
		newFirewallCmd(g),
		newServiceCmd(g),
		newOverlayCmd(g),
		newMonitorCmd(g),
		newRmCmd(g),
		newPruneCmd(g),
		newLogsCmd(g),
		newVersionCmd(),
	)
	root.Version = metrics.Version()
	root.SetVersionTemplate(versionLine() + "\n")
	return root
}
