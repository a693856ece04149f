package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/ebpfnet/ebpfnet/datapath"
	"github.com/ebpfnet/ebpfnet/dockerdriver"
	"github.com/ebpfnet/ebpfnet/internal/unixsock"
)

// dockerPluginDir is where dockerd looks for legacy plugins' sockets.
const dockerPluginDir = "/run/docker/plugins"

func newDockerPluginCmd(g *globals) *cobra.Command {
	var name, socket, addr, dockerHost string
	var host hostFlags
	o := datapath.ServeOptions{GCInterval: 10 * time.Second, Timeouts: datapath.DefaultTimeouts}
	cmd := &cobra.Command{
		Use:   "docker-plugin",
		Short: "Serve Docker's remote network driver protocol (docker network create -d ebpfnet)",
		Long: `docker-plugin serves Docker's network plugin protocol on
/run/docker/plugins/NAME.sock (NAME from --name, default ebpfnet), so
"docker network create -d NAME" makes ebpfnet networks and containers on them
get ebpfnet endpoints and published ports. It also does the daemon's work
(conntrack GC, reconcile, metrics with --metrics-addr). Run it in the
namespace dockerd runs in, before dockerd uses the driver. Stopping it stops
nothing: the datapath is pinned and the store keeps the endpoints.

Docker tells a driver endpoint IDs only: the plugin asks dockerd's API
(--docker-host) which container owns each endpoint, after it joins and at
start, so ls, errors and metrics show container names as docker ps does.
Without the API they show the endpoints' short IDs.

With --advertise-addr (and --cluster-store) it joins the cluster as the
daemon does and keeps the datapath in step with the overlay networks; run
either the daemon or the plugin with it on a host, not both.`,
		Args: cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := host.check(g); err != nil {
				return err
			}
			if err := datapath.ValidName(name); err != nil {
				return fmt.Errorf("--name: %w", err)
			}
			// Only a host given on the command line is checked: a
			// DOCKER_HOST this plugin cannot use (ssh://) costs names only.
			if cmd.Flags().Changed("docker-host") && dockerHost != "" {
				if _, err := dockerdriver.NewDockerAPI(dockerHost); err != nil {
					return fmt.Errorf("--docker-host: %w", err)
				}
			}
			return datapath.CheckTimeouts(o.Timeouts)
		},
		RunE: g.withInstanceLog(slog.LevelInfo, func(cmd *cobra.Command, _ []string, inst *datapath.Instance) error {
			log := g.logger(slog.LevelInfo)
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if socket == "" {
				socket = filepath.Join(dockerPluginDir, name+".sock")
			}
			if err := inst.Ready(); err != nil {
				return err
			}
			metricsLn, err := listenMetrics(addr)
			if err != nil {
				return err
			}
			ln, err := unixsock.Listen(socket)
			if errors.Is(err, unixsock.ErrInUse) {
				err = fmt.Errorf("%s is served by another process: is a docker-plugin with this --name running?", socket)
			}
			if err != nil {
				if metricsLn != nil {
					metricsLn.Close()
				}
				return err
			}
			defer os.Remove(socket)
			agent := g.overlayAgentLog(inst, log)
			defer agent.Close()
			drv := dockerdriver.New(inst, log).WithOverlay(agent)
			if api := dockerAPI(log, dockerHost); api != nil {
				// Deferred before the instance closes (withInstanceLog).
				defer drv.LookUpNames(ctx, api)()
			}
			srv := &http.Server{Handler: drv.Handler(), ReadHeaderTimeout: 10 * time.Second}
			go srv.Serve(ln)
			log.Info("docker network plugin serving", "name", name, "socket", socket)
			err = serveWithHost(ctx, stop, &host, agent, log, func(extra ...prometheus.Collector) error {
				return serveControlPlane(ctx, inst, log, metricsLn, o, extra...)
			})
			shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return errors.Join(err, srv.Shutdown(shutdown))
		}),
	}
	cmd.Flags().StringVar(&name, "name", "ebpfnet", "driver name: docker network create -d NAME; the socket is /run/docker/plugins/NAME.sock")
	cmd.Flags().StringVar(&socket, "socket", "", "listen on this unix socket instead (point dockerd at it with /etc/docker/plugins/NAME.spec)")
	cmd.Flags().StringVar(&addr, "metrics-addr", "", "address to serve /metrics on (none by default)")
	cmd.Flags().StringVar(&dockerHost, "docker-host", dockerdriver.DefaultDockerHost(), "dockerd's API, to learn container names: unix:///PATH or tcp://HOST:PORT, as $DOCKER_HOST, which sets the default (empty: do not ask)")
	cmd.Flags().DurationVar(&o.GCInterval, "gc-interval", o.GCInterval, "how often to expire conntrack entries and reconcile")
	timeoutFlags(cmd.Flags(), &o.Timeouts)
	host.register(cmd)
	return cmd
}

// dockerAPI is the client of the dockerd at host, or nil when there is none
// to ask (host empty or unusable): then endpoints keep their short IDs.
func dockerAPI(log *slog.Logger, host string) *dockerdriver.DockerAPI {
	if host == "" {
		return nil
	}
	api, err := dockerdriver.NewDockerAPI(host)
	if err != nil {
		log.Warn("container names off", "err", err)
		return nil
	}
	log.Info("container names from docker API", "host", host)
	return api
}
