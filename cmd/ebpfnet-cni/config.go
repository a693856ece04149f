package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/ebpfnet/ebpfnet/cluster"
	"github.com/ebpfnet/ebpfnet/datapath"
	"github.com/ebpfnet/ebpfnet/datapath/ports"
)

// NetConf is the plugin's configuration: the standard keys plus ebpfnet's
// network settings and the runtimeConfig of the capabilities it declares.
type NetConf struct {
	types.PluginConf

	Subnet  string `json:"subnet,omitempty"`
	Gateway string `json:"gateway,omitempty"`
	// IPv6 makes the network dual stack: Subnet6 (default: a random unique
	// local /64) and Gateway6; with delegated IPAM, an IPv6 range of the
	// IPAM plugin does too.
	IPv6     bool   `json:"ipv6,omitempty"`
	Subnet6  string `json:"subnet6,omitempty"`
	Gateway6 string `json:"gateway6,omitempty"`
	// IPv4 false (with IPv6) makes an IPv6-only network; so does a
	// delegated IPAM plugin that returns only an IPv6 address.
	IPv4     *bool  `json:"ipv4,omitempty"`
	Bridge   string `json:"bridge,omitempty"`
	Uplink   string `json:"uplink,omitempty"`
	MTU      int    `json:"mtu,omitempty"`
	IPMasq   *bool  `json:"ipMasq,omitempty"` // default true, as Docker
	ICC      *bool  `json:"icc,omitempty"`    // default true
	Internal bool   `json:"internal,omitempty"`
	// RuntimeHoldsPorts: the runtime reserves each published host port
	// with a socket of its own after ADD (Podman does), so ebpfnet's guard
	// against host binds of published ports lets those binds through.
	RuntimeHoldsPorts bool `json:"runtimeHoldsPorts,omitempty"`
	// ServiceCIDRs (Kubernetes' service CIDR) go to the kernel's netfilter,
	// where kube-proxy translates them; the replies too.
	ServiceCIDRs []string `json:"serviceCIDRs,omitempty"`

	// Driver "overlay": the network is an overlay network of the cluster
	// in ClusterStore (etcd://HOST:PORT[,...]), made there on first use
	// with Subnet, Gateway, VNI, MTU, ICC and Internal (overlay.go).
	Driver       string `json:"driver,omitempty"`
	ClusterStore string `json:"clusterStore,omitempty"`
	VNI          uint32 `json:"vni,omitempty"`

	// StateDir and PinRoot select the ebpfnet instance; by default the one
	// named after the network namespace the plugin runs in, which is what
	// the ebpfnet CLI uses there too.
	StateDir string `json:"stateDir,omitempty"`
	PinRoot  string `json:"pinRoot,omitempty"`

	RuntimeConfig RuntimeConfig `json:"runtimeConfig"`
}

// RuntimeConfig carries the capabilities portMappings, ips and mac.
type RuntimeConfig struct {
	PortMappings []PortMapEntry `json:"portMappings,omitempty"`
	IPs          []string       `json:"ips,omitempty"`
	MAC          string         `json:"mac,omitempty"`
}

// PortMapEntry is one portMappings entry, as the portmap plugin takes it.
type PortMapEntry struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// request is a validated ADD: everything datapath needs, decided before
// anything is changed.
type request struct {
	conf    *NetConf
	network datapath.NetworkOptions
	ports   []ports.Mapping
	ip      string // from the ips capability (ebpfnet IPAM only)
	ip6     string // its IPv6 address, on a dual-stack network
	mac     string
}

// parseConf decodes and validates stdin.
func parseConf(stdin []byte) (*NetConf, error) {
	conf := &NetConf{}
	if err := json.Unmarshal(stdin, conf); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "failed to parse network configuration", err.Error())
	}
	if err := version.ParsePrevResult(&conf.PluginConf); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "failed to parse prevResult", err.Error())
	}
	if err := datapath.ValidName(conf.Name); err != nil {
		return nil, configError("network name: %v", err)
	}
	for _, d := range []struct{ key, dir string }{{"stateDir", conf.StateDir}, {"pinRoot", conf.PinRoot}} {
		if d.dir != "" && !filepath.IsAbs(d.dir) {
			return nil, configError("%s %q: must be an absolute path", d.key, d.dir)
		}
	}
	if conf.Subnet != "" {
		p, err := netip.ParsePrefix(conf.Subnet)
		if err != nil || !p.Addr().Is4() {
			return nil, configError("subnet %q: want an IPv4 CIDR such as 10.88.0.0/16", conf.Subnet)
		}
	}
	if conf.Gateway != "" {
		if a, err := netip.ParseAddr(conf.Gateway); err != nil || !a.Is4() {
			return nil, configError("gateway %q: want an IPv4 address", conf.Gateway)
		}
	}
	if conf.Subnet6 != "" {
		p, err := netip.ParsePrefix(conf.Subnet6)
		if err != nil || !p.Addr().Is6() || p.Addr().Is4In6() {
			return nil, configError("subnet6 %q: want an IPv6 CIDR such as fd00:88::/64", conf.Subnet6)
		}
	}
	if conf.Gateway6 != "" {
		if a, err := netip.ParseAddr(conf.Gateway6); err != nil || !a.Is6() || a.Is4In6() {
			return nil, configError("gateway6 %q: want an IPv6 address", conf.Gateway6)
		}
	}
	if (conf.Subnet6 != "" || conf.Gateway6 != "") && !conf.IPv6 {
		return nil, configError("subnet6 and gateway6 need \"ipv6\": true")
	}
	if conf.IPv4 != nil && !*conf.IPv4 {
		switch {
		case !conf.IPv6:
			return nil, configError("\"ipv4\": false needs \"ipv6\": true")
		case conf.Subnet != "" || conf.Gateway != "" || len(conf.ServiceCIDRs) > 0:
			return nil, configError("\"ipv4\": false: remove subnet, gateway and serviceCIDRs (IPv4)")
		case conf.Driver == driverOverlay:
			return nil, configError("\"ipv4\": false: driver overlay needs IPv4")
		}
	}
	for _, c := range conf.ServiceCIDRs {
		if p, err := netip.ParsePrefix(c); err != nil || !p.Addr().Is4() {
			return nil, configError("serviceCIDRs: %q is not an IPv4 CIDR such as 10.96.0.0/12", c)
		}
	}
	switch conf.Driver {
	case "", "bridge":
		if conf.VNI != 0 {
			return nil, configError("vni needs \"driver\": \"overlay\"")
		}
	case driverOverlay:
		if conf.ClusterStore == "" {
			return nil, configError("driver overlay needs clusterStore (etcd://HOST:PORT)")
		}
		if _, err := cluster.ParseStoreURL(conf.ClusterStore); err != nil {
			return nil, configError("clusterStore: %v", err)
		}
		if conf.hasIPAM() {
			return nil, configError("driver overlay takes its addresses from the cluster: remove ipam")
		}
	default:
		return nil, configError("driver %q: want bridge or overlay", conf.Driver)
	}
	if conf.MTU < 0 {
		return nil, configError("mtu %d: must be positive", conf.MTU)
	}
	return conf, nil
}

// networkOptions are the network the config names, with Docker's defaults.
func (c *NetConf) networkOptions() datapath.NetworkOptions {
	o := datapath.DefaultNetworkOptions(c.Name)
	o.Subnet, o.Gateway, o.Bridge, o.Uplink, o.MTU, o.Internal = c.Subnet, c.Gateway, c.Bridge, c.Uplink, c.MTU, c.Internal
	o.ServiceCIDRs = c.ServiceCIDRs
	o.IPv6, o.Subnet6, o.Gateway6 = c.IPv6, c.Subnet6, c.Gateway6
	o.NoIPv4 = c.IPv4 != nil && !*c.IPv4
	if c.IPMasq != nil {
		o.Masquerade = *c.IPMasq
	}
	if c.ICC != nil {
		o.ICC = *c.ICC
	}
	if o.Internal {
		o.Masquerade = false
	}
	return o
}

// instanceConfig selects the ebpfnet instance.
func (c *NetConf) instanceConfig() datapath.Config {
	cfg := datapath.DefaultConfig()
	if c.StateDir != "" {
		cfg.StateDir = c.StateDir
	}
	if c.PinRoot != "" {
		cfg.PinRoot = c.PinRoot
	}
	return cfg
}

func (c *NetConf) hasIPAM() bool { return c.IPAM.Type != "" }

// parseAdd validates an ADD's config and runtimeConfig.
func parseAdd(stdin []byte) (*request, error) {
	conf, err := parseConf(stdin)
	if err != nil {
		return nil, err
	}
	r := &request{conf: conf, network: conf.networkOptions(), mac: conf.RuntimeConfig.MAC}
	if r.ports, err = portMappings(conf.RuntimeConfig.PortMappings, conf.RuntimeHoldsPorts); err != nil {
		return nil, err
	}
	if len(r.ports) > 0 && conf.Internal {
		return nil, configError("network %s is internal: it cannot publish ports", conf.Name)
	}
	if !conf.hasIPAM() {
		// With delegated IPAM the IPAM plugin reads the ips capability.
		if r.ip, r.ip6, err = requestedIPs(conf.RuntimeConfig.IPs); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// portMappings turns the portMappings capability into datapath mappings.
func portMappings(in []PortMapEntry, runtimeHeld bool) ([]ports.Mapping, error) {
	var out []ports.Mapping
	for _, e := range in {
		proto, err := ports.ParseProtocol(cmpOr(e.Protocol, "tcp"))
		if err != nil {
			return nil, configError("portMappings: %v", err)
		}
		for _, p := range []struct {
			what string
			n    int
		}{{"hostPort", e.HostPort}, {"containerPort", e.ContainerPort}} {
			if p.n < 1 || p.n > 65535 {
				return nil, configError("portMappings: %s %d is not a port number (1-65535)", p.what, p.n)
			}
		}
		m := ports.Mapping{Proto: proto, HostPort: uint16(e.HostPort), ContainerPort: uint16(e.ContainerPort), RuntimeHeld: runtimeHeld}
		if e.HostIP != "" {
			a, err := netip.ParseAddr(e.HostIP)
			if err != nil {
				return nil, configError("portMappings: hostIP %q is not an IP address", e.HostIP)
			}
			// Docker 28's rules: 0.0.0.0 IPv4 only, :: IPv6 only, an
			// IPv6 address that address.
			m.HostIP = a.Unmap()
		}
		out = append(out, m)
	}
	checked, err := ports.Check(out)
	if err != nil {
		return nil, configError("portMappings: %v", err)
	}
	// A runtime sends a port for both families as an entry per family
	// (0.0.0.0 or none, and ::): one binding on every address.
	reqs, _ := ports.MergeFamilies(ports.Requests(checked))
	out = out[:0]
	for _, r := range reqs {
		out = append(out, r.Mapping)
	}
	return out, nil
}

// forFamilies drops the IPv6 mappings of an endpoint of a network without
// IPv6 (runtimes send every port for both families): the datapath would
// refuse them. Twins merged on every address stay, and answer IPv6
// clients through NAT64.
func forFamilies(ms []ports.Mapping, ipv6 bool) []ports.Mapping {
	if ipv6 {
		return ms
	}
	return slices.DeleteFunc(slices.Clone(ms), ports.Mapping.IPv6)
}

// requestedIPs reads the ips capability: at most one IPv4 and one IPv6
// address, with or without a prefix length.
func requestedIPs(ips []string) (v4, v6 string, err error) {
	for _, s := range ips {
		addr := s
		if p, err := netip.ParsePrefix(s); err == nil {
			addr = p.Addr().String()
		}
		a, err := netip.ParseAddr(addr)
		if err != nil || a.Zone() != "" {
			return "", "", configError("ips: %q is not an IP address", s)
		}
		a = a.Unmap()
		slot := &v4
		if a.Is6() {
			slot = &v6
		}
		if *slot != "" {
			return "", "", configError("ips: one address per family and interface, got %s and %s", *slot, a)
		}
		*slot = a.String()
	}
	return v4, v6, nil
}

func configError(format string, args ...any) *types.Error {
	return types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf(format, args...), "")
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
