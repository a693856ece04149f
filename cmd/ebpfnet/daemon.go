package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/ebpfnet/ebpfnet/datapath"
	"github.com/ebpfnet/ebpfnet/maps"
	"github.com/ebpfnet/ebpfnet/metrics"
)

func newDaemonCmd(g *globals) *cobra.Command {
	var addr string
	var gcInterval time.Duration
	timeouts := maps.DefaultTimeouts
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Serve Prometheus metrics, expire conntrack entries, free endpoints whose namespace vanished",
		Long: `The daemon is optional for forwarding: the datapath is pinned and keeps
working while the daemon is stopped or restarting. It stops on SIGTERM or
SIGINT without detaching anything.`,
		Args: cobra.NoArgs,
		RunE: g.withInstance(func(cmd *cobra.Command, _ []string, inst *datapath.Instance) error {
			log := g.logger(slog.LevelInfo)
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()

			views, err := inst.Views()
			if err != nil {
				return err
			}
			if gone, err := inst.Reconcile(); err != nil {
				return err
			} else if len(gone) > 0 {
				log.Info("freed endpoints whose namespace vanished", "endpoints", gone)
			}

			reg := prometheus.NewRegistry()
			gcm := metrics.NewGCMetrics()
			reg.MustRegister(
				collectors.NewGoCollector(),
				collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
				metrics.NewCollector(views, inst, log),
				gcm,
			)
			gc := func() {
				r, err := inst.GC(timeouts)
				if err != nil {
					log.Warn("conntrack gc", "err", err)
					return
				}
				gcm.Observe(r.Expired, r.Duration)
				if r.Expired > 0 {
					log.Debug("conntrack gc", "expired", r.Expired, "took", r.Duration)
				}
			}
			// Only after state is restored (reconcile above): expire what
			// is expired, never wipe.
			gc()
			mux := http.NewServeMux()
			mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
			mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
			go srv.Serve(ln)
			log.Info("daemon running", "metrics", "http://"+ln.Addr().String()+"/metrics")

			tick := time.NewTicker(gcInterval)
			defer tick.Stop()
			// Allocations that needed half the retry budget mean the table
			// is crowded for some destination: collect early, as Cilium does.
			strain := time.NewTicker(time.Second)
			defer strain.Stop()
			var strained uint64
			if s, err := views.NATStats(); err == nil {
				strained = s.Strained()
			}
			for {
				select {
				case <-ctx.Done():
					shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					err := srv.Shutdown(shutdown)
					log.Info("daemon stopped; the datapath keeps forwarding")
					if errors.Is(err, http.ErrServerClosed) {
						err = nil
					}
					return errors.Join(err, inst.ReleaseIfUnused())
				case <-strain.C:
					if s, err := views.NATStats(); err == nil && s.Strained() > strained {
						strained = s.Strained()
						log.Info("NAT port allocation under strain: conntrack gc early")
						gc()
					}
				case <-tick.C:
					gc()
					if gone, err := inst.Reconcile(); err != nil {
						log.Warn("reconcile", "err", err)
					} else if len(gone) > 0 {
						log.Info("freed endpoints whose namespace vanished", "endpoints", gone)
					}
				}
			}
		}),
	}
	cmd.Flags().StringVar(&addr, "metrics-addr", "127.0.0.1:9469", "address to serve /metrics on")
	cmd.Flags().DurationVar(&gcInterval, "gc-interval", 10*time.Second, "how often to expire conntrack entries and reconcile")
	timeoutFlags(cmd.Flags(), &timeouts)
	return cmd
}
