package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/ebpfnet/ebpfnet/api"
	"github.com/ebpfnet/ebpfnet/datapath"
	"github.com/ebpfnet/ebpfnet/kubeproxy"
	"github.com/ebpfnet/ebpfnet/metrics"
	"github.com/ebpfnet/ebpfnet/overlay"
)

func newDaemonCmd(g *globals) *cobra.Command {
	var addr, apiSocket string
	var noAPI bool
	var host hostFlags
	var kp kubeProxyFlags
	o := datapath.ServeOptions{GCInterval: 10 * time.Second, Timeouts: datapath.DefaultTimeouts}
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Serve Prometheus metrics, expire conntrack entries, free endpoints whose namespace vanished",
		Long: `The daemon is optional for forwarding: the datapath is pinned and keeps
working while the daemon is stopped or restarting. It stops on SIGTERM or
SIGINT without detaching anything.

It serves the control API (attach, detach, list and inspect endpoints: HTTP
with JSON on a Unix socket, see package api) on --api-socket, by default
api.sock in the state directory, owner-only.

With --kube-proxy-replacement it also replaces kube-proxy on a Kubernetes
node (do not run kube-proxy beside it): it watches the cluster's Services,
EndpointSlices and Nodes with the credentials of --kubeconfig and keeps the
datapath's load-balanced services in step with them (ClusterIPs, external
and load balancer IPs, NodePorts, traffic policies, session affinity;
IPv4, TCP and UDP), as kube-proxy would program its rules for them.
--kubeconfig is required: the API server's address in it must not be a
Service's, since this is what makes Services work. --node-name is the
node's name as Kubernetes knows it (its Node object), by default the
hostname: endpoints on it are the local ones. The sync is retried while
the API server is unreachable; the datapath keeps what it last had.`,
		Args: cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error {
			// --node-name names the Kubernetes node too, which makes it
			// meaningful without --advertise-addr.
			checked := host
			if kp.enabled {
				checked.name = ""
			} else if host.name != "" && host.advertise == "" {
				return errors.New("--node-name needs --advertise-addr or --kube-proxy-replacement")
			}
			if err := checked.check(g); err != nil {
				return err
			}
			if err := kp.check(host.name); err != nil {
				return err
			}
			if o.GCInterval <= 0 {
				return fmt.Errorf("invalid --gc-interval %s: must be positive", o.GCInterval)
			}
			return datapath.CheckTimeouts(o.Timeouts)
		},
		RunE: g.withInstanceLog(slog.LevelInfo, func(cmd *cobra.Command, _ []string, inst *datapath.Instance) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			log := g.logger(slog.LevelInfo)
			// Every socket is bound before anything is served, so a bad
			// address fails the start with nothing half up.
			metricsLn, err := listenMetrics(addr)
			if err != nil {
				return err
			}
			// The overlay agent closes after the API (deferred first).
			agent := g.overlayAgentLog(inst, log)
			defer agent.Close()
			if !noAPI {
				if apiSocket == "" {
					apiSocket = filepath.Join(g.resolvedStateDir(), "api.sock")
				}
				// Listening comes first: the socket's umask must not
				// meet files other goroutines create.
				ln, err := api.Listen(apiSocket)
				if err != nil {
					if metricsLn != nil {
						metricsLn.Close()
					}
					return err
				}
				srv := &http.Server{Handler: api.Handler(daemonBackend{agent, inst, log}, log), ReadHeaderTimeout: 5 * time.Second}
				go srv.Serve(ln)
				defer srv.Close()
				log.Info("API listening", "socket", apiSocket)
			}
			return serveWithHost(ctx, stop, &host, agent, log, func(extra ...prometheus.Collector) error {
				return kp.serve(ctx, stop, inst, log, func() error {
					return serveControlPlane(ctx, inst, log, metricsLn, o, extra...)
				})
			})
		}),
	}
	cmd.Flags().StringVar(&addr, "metrics-addr", "127.0.0.1:9469", "address to serve /metrics on")
	cmd.Flags().StringVar(&apiSocket, "api-socket", "", "Unix socket of the control API (default: api.sock in the state directory)")
	cmd.Flags().BoolVar(&noAPI, "no-api", false, "serve no control API")
	cmd.Flags().DurationVar(&o.GCInterval, "gc-interval", o.GCInterval, "how often to expire conntrack entries and reconcile")
	timeoutFlags(cmd.Flags(), &o.Timeouts)
	resolverFlags(cmd.Flags(), &o)
	host.register(cmd)
	kp.register(cmd)
	return cmd
}

// serveWithHost runs serve (the process's work, with the overlay agent's
// metrics when it joins) and, with --advertise-addr, the overlay agent
// beside it: joined to the cluster and keeping the datapath in step until
// serve returns. stop ends ctx.
func serveWithHost(ctx context.Context, stop func(), host *hostFlags, agent *overlay.Agent, log *slog.Logger, serve func(extra ...prometheus.Collector) error) error {
	if !host.joins() {
		return serve()
	}
	agentDone := make(chan struct{})
	go func() { host.serveHost(ctx, agent, log); close(agentDone) }()
	err := serve(agent.Metrics())
	stop() // the overlay agent stops with the control plane
	<-agentDone
	return err
}

// daemonBackend serves the API as the CLI's attach and detach work: on an
// overlay network with an address from the cluster (--cluster-store).
type daemonBackend struct {
	agent *overlay.Agent
	inst  *datapath.Instance
	log   *slog.Logger
}

func (b daemonBackend) Attach(ctx context.Context, o datapath.AttachOptions) (datapath.Endpoint, error) {
	return b.agent.Attach(ctx, o)
}

func (b daemonBackend) Detach(ctx context.Context, target string) (datapath.Endpoint, error) {
	ep, err := b.agent.Detach(ctx, target)
	var notReleased *overlay.NotReleasedError
	if errors.As(err, &notReleased) {
		b.log.Warn(err.Error())
		err = nil
	}
	return ep, err
}

func (b daemonBackend) Endpoints() ([]datapath.Endpoint, error) { return b.inst.Endpoints() }

func (b daemonBackend) Inspect(target string) (datapath.EndpointDetail, error) {
	return b.inst.Inspect(target)
}

// listenMetrics binds the metrics address; none (nil) when addr is empty.
func listenMetrics(addr string) (net.Listener, error) {
	if addr == "" {
		return nil, nil
	}
	return net.Listen("tcp", addr)
}

// serveControlPlane is the daemon's work, shared with docker-plugin: metrics
// on ln (none when nil) and the instance's background loop (conntrack GC,
// reconcile) until ctx ends.
func serveControlPlane(ctx context.Context, inst *datapath.Instance, log *slog.Logger, ln net.Listener, o datapath.ServeOptions, extra ...prometheus.Collector) error {
	var srv *http.Server
	if ln != nil {
		reg := prometheus.NewRegistry()
		gcm := metrics.NewGCMetrics()
		reg.MustRegister(
			collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
			metrics.NewCollector(inst, log),
			gcm,
		)
		reg.MustRegister(extra...)
		o.OnGC = func(r datapath.GCResult) { gcm.Observe(r.Expired, r.Duration) }
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
		srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		log.Info("daemon running", "metrics", "http://"+ln.Addr().String()+"/metrics")
	}

	serveErr := inst.Serve(ctx, o)
	var err error
	if srv != nil {
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = srv.Shutdown(shutdown)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
	}
	log.Info("daemon stopped; the datapath keeps forwarding")
	return errors.Join(serveErr, err)
}

// kubeProxyFlags are the daemon's kube-proxy replacement: Services of a
// Kubernetes cluster balanced by the datapath (package kubeproxy).
type kubeProxyFlags struct {
	enabled    bool
	kubeconfig string
	// Set by check: the node's name and where its objects come from.
	node   string
	source kubeproxy.Source
}

func (k *kubeProxyFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&k.enabled, "kube-proxy-replacement", false, "replace kube-proxy: balance the Kubernetes cluster's Services in the datapath (needs --kubeconfig)")
	f.StringVar(&k.kubeconfig, "kubeconfig", "", "kubeconfig file reaching the API server, for --kube-proxy-replacement")
	// --node-name is hostFlags': one name for this host, in the cluster
	// store and in Kubernetes.
	f.Lookup("node-name").Usage = "name of this host: in the cluster of --cluster-store (default: the advertise address) and, with --kube-proxy-replacement, its Kubernetes Node (default: the hostname)"
}

// check validates the flags before anything starts: the kubeconfig must
// load into a client (certificates and keys read), and the node must have
// a name (name, --node-name, or else the hostname).
func (k *kubeProxyFlags) check(name string) error {
	if !k.enabled {
		if k.kubeconfig != "" {
			return errors.New("--kubeconfig needs --kube-proxy-replacement")
		}
		return nil
	}
	if k.kubeconfig == "" {
		// No in-cluster default: its API server address is the
		// kubernetes Service's, which only this proxy would make work.
		return errors.New("--kube-proxy-replacement needs --kubeconfig PATH")
	}
	if _, err := os.Stat(k.kubeconfig); err != nil {
		return fmt.Errorf("--kubeconfig: %w", err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", k.kubeconfig)
	if err != nil {
		return fmt.Errorf("--kubeconfig %s: %w", k.kubeconfig, err)
	}
	cfg.UserAgent = "ebpfnet-kube-proxy-replacement"
	if k.source, err = kubeproxy.NewSource(cfg); err != nil {
		return fmt.Errorf("--kubeconfig %s: %w", k.kubeconfig, err)
	}
	k.node = name
	if k.node == "" {
		// As kubelet names its Node by default: the hostname, lower case.
		host, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("--node-name not given and no hostname: %w", err)
		}
		k.node = strings.ToLower(strings.TrimSpace(host))
	}
	if k.node == "" {
		return errors.New("--kube-proxy-replacement needs the node's name: --node-name")
	}
	return nil
}

// serve runs serve (the daemon's work) and, with --kube-proxy-replacement,
// the proxy beside it, syncing the datapath's services until serve
// returns. stop ends ctx.
func (k *kubeProxyFlags) serve(ctx context.Context, stop func(), inst *datapath.Instance, log *slog.Logger, serve func() error) error {
	if !k.enabled {
		return serve()
	}
	// client-go logs through klog: into the daemon's log instead.
	klog.SetSlogLogger(log.With("component", "client-go"))
	p, err := kubeproxy.New(kubeproxy.Config{Source: k.source, Node: k.node, Sync: inst.SyncServices, Log: log})
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	err = serve()
	stop() // the proxy stops with the control plane
	return errors.Join(err, <-done)
}
