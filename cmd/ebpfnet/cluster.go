package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebpfnet/ebpfnet/cluster"
	"github.com/ebpfnet/ebpfnet/datapath"
	"github.com/ebpfnet/ebpfnet/overlay"
)

// clusterFlags registers the global --cluster-store flag.
func clusterFlags(root *cobra.Command, g *globals) {
	root.PersistentFlags().StringVar(&g.clusterStore, "cluster-store", os.Getenv("EBPFNET_CLUSTER_STORE"),
		"cluster store for overlay networks: etcd://HOST:PORT[,HOST:PORT...] (env EBPFNET_CLUSTER_STORE)")
}

// stateDir is the instance's state directory, as open() resolves it.
func (g *globals) resolvedStateDir() string {
	if g.stateDir != "" {
		return g.stateDir
	}
	return datapath.DefaultConfig().StateDir
}

// overlayCreateOptions are the flags of network create that apply to an
// overlay network.
type overlayCreateOptions struct {
	vni uint32
}

func createOverlayNetwork(cmd *cobra.Command, g *globals, o datapath.NetworkOptions, ov overlayCreateOptions) error {
	for _, f := range []string{"uplink", "bridge", "ip-masquerade"} {
		if cmd.Flags().Changed(f) {
			return fmt.Errorf("--%s does not apply to --driver overlay", f)
		}
	}
	if g.clusterStore == "" {
		return errNeedsStore("--driver overlay")
	}
	agent := g.overlayAgent(nil)
	defer agent.Close()
	co := cluster.DefaultNetworkOptions(o.Name)
	co.Subnet, co.Gateway, co.VNI, co.ICC, co.Internal, co.MTU = o.Subnet, o.Gateway, ov.vni, o.ICC, o.Internal, o.MTU
	co.ServiceCIDRs = o.ServiceCIDRs
	co.IPv6, co.Subnet6, co.Gateway6 = o.IPv6, o.Subnet6, o.Gateway6
	n, err := agent.CreateNetwork(cmd.Context(), co)
	if err != nil {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), n.Name)
	return nil
}

// errNeedsStore is the error of what, a flag that needs --cluster-store.
func errNeedsStore(what string) error {
	return fmt.Errorf("%s needs a cluster store: --cluster-store etcd://HOST:PORT or EBPFNET_CLUSTER_STORE", what)
}

// networkRow is a line of network ls: a local bridge network, a
// predefined one (host, none) or, with a cluster store, an overlay network.
type networkRow struct {
	datapath.Network
	Driver string `json:"driver"`
	Scope  string `json:"scope"`
	VNI    uint32 `json:"vni,omitempty"`
	// predefined rows (host, none) have no subnet, bridge or settings.
	predefined bool
}

// cells are the row's table cells after NAME, DRIVER and SCOPE; "-" where a
// value does not apply.
func (r networkRow) cells() []string {
	if r.predefined {
		return []string{"-", "-", "-", "-", "-", "-"}
	}
	// Both families in one cell each, as one would pass them to --subnet;
	// an IPv6-only network has only its IPv6 ones.
	var subnets, gateways []string
	for _, p := range []netip.Prefix{r.Subnet, r.Subnet6} {
		if p.IsValid() {
			subnets = append(subnets, p.String())
		}
	}
	for _, a := range []netip.Addr{r.Gateway, r.Gateway6} {
		if a.IsValid() {
			gateways = append(gateways, a.String())
		}
	}
	subnet, gateway := dash(strings.Join(subnets, ",")), dash(strings.Join(gateways, ","))
	return []string{subnet, gateway, dash(r.Bridge), dash(r.Uplink), strconv.FormatBool(r.ICC), strconv.FormatBool(r.Internal)}
}

// networkRows are the local networks, the predefined ones and, with
// --cluster-store, the overlay networks of the store (with the store's
// error, if any), sorted by name as docker network ls sorts them.
func (g *globals) networkRows(ctx context.Context, local []datapath.Network) ([]networkRow, error) {
	rows, err := g.madeNetworkRows(ctx, local)
	rows = append(rows, predefinedRows()...)
	slices.SortFunc(rows, func(a, b networkRow) int { return strings.Compare(a.Name, b.Name) })
	return rows, err
}

// predefinedRows are the networks Docker lists although nobody made them:
// host (driver host) and none (driver null). Here they are modes (run
// --network host|none, attach --network none), with nothing stored.
func predefinedRows() []networkRow {
	return []networkRow{
		{Network: datapath.Network{Name: string(datapath.ModeHost)}, Driver: "host", Scope: "local", predefined: true},
		{Network: datapath.Network{Name: string(datapath.ModeNone)}, Driver: "null", Scope: "local", predefined: true},
	}
}

// madeNetworkRows are the networks something made: the local ones and the
// cluster's overlay networks.
func (g *globals) madeNetworkRows(ctx context.Context, local []datapath.Network) ([]networkRow, error) {
	var rows []networkRow
	seen := map[string]bool{}
	for _, n := range local {
		seen[n.Name] = true
		if n.VNI != 0 { // this host's part of an overlay network
			rows = append(rows, networkRow{Network: n, Driver: datapath.DriverOverlay, Scope: "global", VNI: n.VNI})
			continue
		}
		rows = append(rows, networkRow{Network: n, Driver: "bridge", Scope: "local"})
	}
	agent := g.overlayAgent(nil)
	defer agent.Close()
	nets, err := agent.Networks(ctx)
	for _, n := range nets {
		if seen[n.Name] {
			continue
		}
		rows = append(rows, networkRow{
			Network: datapath.Network{Name: n.Name, Subnet: n.Subnet, Gateway: n.Gateway, Subnet6: n.Subnet6, Gateway6: n.Gateway6,
				MTU: n.MTU, ICC: n.ICC, Internal: n.Internal, Created: n.Created},
			Driver: "overlay", Scope: "global", VNI: n.VNI,
		})
	}
	return rows, err
}

// hostFlags join the host to the cluster (daemon, docker-plugin): with
// --advertise-addr, the process serving the host runs the overlay agent.
type hostFlags struct {
	advertise string
	name      string
	ttl       time.Duration
}

func (a *hostFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&a.advertise, "advertise-addr", "", "join the cluster (--cluster-store) with this underlay address: other hosts tunnel overlay traffic to it")
	f.StringVar(&a.name, "node-name", "", "name of this host in the cluster (default: the advertise address)")
	f.DurationVar(&a.ttl, "lease-ttl", cluster.DefaultTTL, "how long the cluster keeps this host and its endpoints after the daemon stops renewing")
}

func (a *hostFlags) check(g *globals) error {
	if a.advertise == "" {
		if a.name != "" {
			return errors.New("--node-name needs --advertise-addr")
		}
		return nil
	}
	if ip, err := netip.ParseAddr(a.advertise); err != nil || !ip.Is4() {
		return fmt.Errorf("invalid --advertise-addr %q: want an IPv4 address of this host", a.advertise)
	}
	if g.clusterStore == "" {
		return errors.New("--advertise-addr needs --cluster-store etcd://HOST:PORT (or EBPFNET_CLUSTER_STORE)")
	}
	if a.ttl < 2*time.Second {
		return fmt.Errorf("invalid --lease-ttl %s: at least 2s", a.ttl)
	}
	_, err := cluster.ParseStoreURL(g.clusterStore)
	return err
}

// joins says whether the flags join the host to the cluster.
func (a *hostFlags) joins() bool { return a.advertise != "" }

// serveHost joins the cluster and keeps the datapath in step with it until
// ctx ends (agent.Join retries while the store is unreachable: the local
// datapath is served meanwhile). It never revokes the lease: a restart
// within the TTL is invisible to the other hosts.
func (a *hostFlags) serveHost(ctx context.Context, agent *overlay.Agent, log *slog.Logger) {
	o := overlay.HostOptions{Addr: netip.MustParseAddr(a.advertise), Name: a.name, TTL: a.ttl}
	if err := agent.Join(ctx, o); err != nil {
		if ctx.Err() == nil {
			log.Error("cluster", "err", err)
		}
		return
	}
	agent.Run(ctx)
}

// overlayNames says which of names are not local bridge networks but
// overlay networks of the store (none without --cluster-store).
func (g *globals) overlayNames(ctx context.Context, inst *datapath.Instance, names []string) (map[string]bool, error) {
	out := map[string]bool{}
	if g.clusterStore == "" {
		return out, nil
	}
	local, err := inst.Networks()
	if err != nil {
		return nil, err
	}
	isLocal := map[string]bool{}
	for _, n := range local {
		isLocal[n.Name] = n.VNI == 0
	}
	rows, err := g.networkRows(ctx, nil)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		if !isLocal[r.Name] {
			out[r.Name] = true
		}
	}
	return out, nil
}
