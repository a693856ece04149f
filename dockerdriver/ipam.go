package dockerdriver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ebpfnet/ebpfnet/cluster"
	"github.com/ebpfnet/ebpfnet/overlay"
)

// Overlay networks for Docker: `--scope global` needs swarm, so a Docker
// network is put on one of ebpfnet's overlay networks through the plugin's
// IPAM driver, which hands out the cluster's addresses:
//
//	docker network create -d ebpfnet --ipam-driver ebpfnet --ipam-opt ebpfnet.overlay=ov1 NAME
//
// on every host whose containers join ov1. The pool is ov1's subnet, each
// address is allocated in the cluster under the host's lease (the plugin
// must run with --cluster-store and --advertise-addr), and the network
// driver, seeing a pool of ebpfnet's address space, attaches the endpoints
// to this host's part of ov1.

// Address spaces of the IPAM driver: only overlay pools live in them.
const (
	ipamLocalSpace  = "ebpfnet-local"
	ipamGlobalSpace = "ebpfnet-global"
	optOverlay      = "ebpfnet.overlay"
	poolPrefix      = "ebpfnet-overlay/"
	gatewayOption   = "com.docker.network.gateway"
	addressType     = "RequestAddressType"
)

// WithOverlay gives the driver the host's part in the cluster: its IPAM
// then serves overlay networks.
func (d *Driver) WithOverlay(a *overlay.Agent) *Driver {
	d.overlay = a
	return d
}

func (d *Driver) ipamRoutes() map[string]handler {
	return map[string]handler{
		"/IpamDriver.GetCapabilities": func([]byte) (any, error) {
			return map[string]bool{"RequiresMACAddress": false}, nil
		},
		"/IpamDriver.GetDefaultAddressSpaces": func([]byte) (any, error) {
			return map[string]string{"LocalDefaultAddressSpace": ipamLocalSpace, "GlobalDefaultAddressSpace": ipamGlobalSpace}, nil
		},
		"/IpamDriver.RequestPool":    d.requestPool,
		"/IpamDriver.ReleasePool":    func([]byte) (any, error) { return struct{}{}, nil },
		"/IpamDriver.RequestAddress": d.requestAddress,
		"/IpamDriver.ReleaseAddress": d.releaseAddress,
	}
}

func (d *Driver) agent() (*overlay.Agent, error) {
	if d.overlay == nil || !d.overlay.HasStore() {
		return nil, badRequest("ebpfnet's IPAM serves overlay networks: run docker-plugin with --cluster-store and --advertise-addr")
	}
	return d.overlay, nil
}

type requestPoolRequest struct {
	AddressSpace string
	Pool         string
	SubPool      string
	Options      map[string]string
	V6           bool
}

func (d *Driver) requestPool(body []byte) (any, error) {
	var req requestPoolRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if req.V6 {
		// Its pools are overlay networks', and those are IPv4-only for now;
		// a local dual-stack network takes its pools from Docker's IPAM.
		return nil, badRequest("ebpfnet's IPAM serves overlay networks, which are IPv4-only for now: create a dual-stack network with Docker's default IPAM (--ipv6 without --ipam-driver)")
	}
	name := req.Options[optOverlay]
	if name == "" {
		return nil, badRequest("ebpfnet's IPAM serves overlay networks: give one with --ipam-opt %s=NAME", optOverlay)
	}
	a, err := d.agent()
	if err != nil {
		return nil, err
	}
	n, err := a.ClusterNetwork(context.Background(), name)
	if errors.Is(err, cluster.ErrNotFound) {
		return nil, badRequest("no overlay network %s in the cluster: ebpfnet network create --driver overlay %s --subnet CIDR", name, name)
	}
	if err != nil {
		return nil, err
	}
	if req.Pool != "" && req.Pool != n.Subnet.String() {
		return nil, badRequest("overlay network %s has subnet %s, not %s: leave --subnet out", name, n.Subnet, req.Pool)
	}
	if req.SubPool != "" {
		return nil, badRequest("--ip-range is not supported on overlay networks: the cluster allocates")
	}
	gw := netip.PrefixFrom(n.Gateway, n.Subnet.Bits()).String()
	return map[string]any{"PoolID": poolPrefix + n.Name, "Pool": n.Subnet.String(), "Data": map[string]string{gatewayOption: gw}}, nil
}

type requestAddressRequest struct {
	PoolID  string
	Address string
	Options map[string]string
}

func overlayOfPool(poolID string) (string, error) {
	name, ok := strings.CutPrefix(poolID, poolPrefix)
	if !ok || name == "" {
		return "", badRequest("unknown pool %q", poolID)
	}
	return name, nil
}

func (d *Driver) requestAddress(body []byte) (any, error) {
	var req requestAddressRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	name, err := overlayOfPool(req.PoolID)
	if err != nil {
		return nil, err
	}
	a, err := d.agent()
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	n, err := a.ClusterNetwork(ctx, name)
	if err != nil {
		return nil, err
	}
	if req.Options[addressType] == gatewayOption {
		return map[string]any{"Address": netip.PrefixFrom(n.Gateway, n.Subnet.Bits()).String()}, nil
	}
	ad, err := a.Allocate(ctx, overlay.AddressRequest{Network: name, IP: req.Address})
	if err != nil {
		return nil, err
	}
	if ad == nil {
		return nil, fmt.Errorf("overlay network %s: no address from the cluster", name)
	}
	return map[string]any{"Address": netip.PrefixFrom(ad.IP, n.Subnet.Bits()).String()}, nil
}

func (d *Driver) releaseAddress(body []byte) (any, error) {
	var req struct{ PoolID, Address string }
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	name, err := overlayOfPool(req.PoolID)
	if err != nil {
		return nil, err
	}
	a, err := d.agent()
	if err != nil {
		return nil, err
	}
	ip, err := netip.ParseAddr(strings.Split(req.Address, "/")[0])
	if err != nil {
		return nil, badRequest("invalid address %q", req.Address)
	}
	if n, err := a.ClusterNetwork(context.Background(), name); err == nil && n.Gateway == ip {
		return struct{}{}, nil // the gateway is no allocation
	}
	if err := a.ReleaseAddress(context.Background(), name, ip); err != nil && !errors.Is(err, cluster.ErrNotFound) {
		return nil, err
	}
	return struct{}{}, nil
}

// overlayFor is the overlay network a CreateNetwork request's pool comes
// from ("" if the pool is not from ebpfnet's IPAM).
func (d *Driver) overlayFor(v4 []ipamData) (string, error) {
	if len(v4) != 1 || (v4[0].AddressSpace != ipamLocalSpace && v4[0].AddressSpace != ipamGlobalSpace) {
		return "", nil
	}
	a, err := d.agent()
	if err != nil {
		return "", err
	}
	nets, err := a.Networks(context.Background())
	if err != nil {
		return "", err
	}
	i := slices.IndexFunc(nets, func(n cluster.Network) bool { return n.Subnet.String() == v4[0].Pool })
	if i < 0 {
		return "", badRequest("no overlay network has subnet %s", v4[0].Pool)
	}
	return nets[i].Name, nil
}

// The Docker networks on overlay networks, by Docker network ID: Docker
// names only its ID in later requests.
func (d *Driver) overlayLinkPath(networkID string) string {
	return filepath.Join(d.inst.StateDir(), "docker-overlay", filepath.Base(networkID))
}

func (d *Driver) linkOverlay(networkID, name string) error {
	p := d.overlayLinkPath(networkID)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(name), 0o600)
}

// networkOf is the ebpfnet network of a Docker network: the overlay network
// it was put on, else its own (NetworkName).
func (d *Driver) networkOf(networkID string) string {
	if b, err := os.ReadFile(d.overlayLinkPath(networkID)); err == nil && len(b) > 0 {
		return string(b)
	}
	return NetworkName(networkID)
}
