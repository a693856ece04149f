package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/ebpfnet/ebpfnet/datapath"
)

// cmdAdd attaches the container in bridge mode. Everything is validated
// first; a failure after delegated IPAM gave an address hands it back, and
// datapath rolls back its own half-made attach.
func cmdAdd(args *skel.CmdArgs) (err error) {
	req, err := parseAdd(args.StdinData)
	if err != nil {
		return err
	}
	conf := req.conf
	inst, err := open(conf)
	if err != nil {
		return err
	}
	defer inst.Close()
	if _, found, err := inst.EndpointFor(args.ContainerID, args.IfName); err != nil {
		return refused("look up endpoint", err)
	} else if found {
		return types.NewError(codeRefused, fmt.Sprintf("container %s already has interface %s on ebpfnet", args.ContainerID, args.IfName), "")
	}

	ip, ip6, gateway := req.ip, req.ip6, ""
	var ipamResult *current.Result
	if conf.hasIPAM() {
		if ipamResult, err = delegateIPAM(conf, args.StdinData); err != nil {
			return err
		}
		defer func() {
			if err != nil {
				invoke.DelegateDel(context.TODO(), conf.IPAM.Type, args.StdinData, nil)
			}
		}()
		addr, gw, has4 := ipOf(ipamResult, true)
		addr6, gw6, has6 := ipOf(ipamResult, false)
		switch {
		case !has4 && !has6:
			return types.NewError(codeRefused, "ipam returned no address", "")
		case !has4 && !req.network.NoIPv4:
			// Only IPv6 ranges: an IPv6-only network, as the CNI bridge
			// plugin's would be. Refused on one made with IPv4.
			req.network.NoIPv4 = true
		case has4 && req.network.NoIPv4:
			return types.NewError(codeRefused, "ipam returned an IPv4 address for an IPv6-only network (\"ipv4\": false)", "")
		}
		// An IPv6 range makes the network dual stack, with the IPAM
		// plugin's IPv6 subnet and gateway unless the config names them.
		if has6 {
			ip6 = addr6.Addr().String()
			req.network.IPv6 = true
			if req.network.Subnet6 == "" {
				req.network.Subnet6 = addr6.Masked().String()
			}
			if req.network.Gateway6 == "" && gw6.IsValid() {
				req.network.Gateway6 = gw6.String()
			}
		}
		if has4 {
			ip = addr.Addr().String()
			if gw.IsValid() {
				gateway = gw.String()
			}
			// A network made on first use takes the IPAM plugin's subnet
			// and gateway unless the config names them.
			if req.network.Subnet == "" {
				req.network.Subnet = addr.Masked().String()
			}
			if req.network.Gateway == "" {
				req.network.Gateway = gateway
			}
		}
	}

	attach := datapath.AttachOptions{
		Mode: datapath.ModeBridge, Network: conf.Name, IP: ip, IP6: ip6, Gateway: gateway, MAC: req.mac,
		Ports: req.ports, Target: args.Netns, IfName: args.IfName, ContainerID: args.ContainerID,
		ContainerName: podName(args.Args),
		// Plugins chained after ebpfnet may add qdiscs to the host veth
		// (bandwidth adds an ingress qdisc, which a clsact qdisc would
		// refuse): the program takes the TCX hook, which needs none.
		TCXLink: true,
	}
	if conf.overlay() {
		attach.Ports = forFamilies(attach.Ports, conf.IPv6) // the cluster's network is dual stack as the config says (ensureClusterNetwork)
		n, ep, err := addOverlay(context.TODO(), inst, req, attach)
		if err != nil {
			return err
		}
		return types.PrintResult(buildResult(conf, args, n, ep), conf.CNIVersion)
	}
	n, created, err := inst.EnsureNetwork(req.network)
	if err != nil {
		return refused("network "+conf.Name, err)
	}
	attach.Ports = forFamilies(attach.Ports, n.Subnet6.IsValid())
	ep, err := inst.Attach(attach)
	if err != nil {
		if created {
			// A failed ADD leaves the host as it found it. Another ADD
			// may have attached to the network meanwhile: then it stays.
			inst.RemoveNetwork(n.Name)
		}
		return refused("attach", err)
	}
	result := buildResult(conf, args, n, ep)
	if ipamResult != nil {
		if len(conf.DNS.Nameservers) == 0 {
			result.DNS = ipamResult.DNS
		}
		for _, r := range ipamResult.Routes {
			if ones, _ := r.Dst.Mask.Size(); ones > 0 {
				result.Routes = append(result.Routes, r)
			}
		}
	}
	return types.PrintResult(result, conf.CNIVersion)
}

// delegateIPAM runs the configured IPAM plugin's ADD.
func delegateIPAM(conf *NetConf, stdin []byte) (*current.Result, error) {
	r, err := invoke.DelegateAdd(context.TODO(), conf.IPAM.Type, stdin, nil)
	if err != nil {
		return nil, refused("ipam "+conf.IPAM.Type, err)
	}
	res, err := current.NewResultFromResult(r)
	if err != nil {
		invoke.DelegateDel(context.TODO(), conf.IPAM.Type, stdin, nil)
		return nil, types.NewError(types.ErrDecodingFailure, "ipam "+conf.IPAM.Type+" result", err.Error())
	}
	return res, nil
}

// ipOf picks the first address of one family of an IPAM result, with its
// gateway.
func ipOf(r *current.Result, v4 bool) (netip.Prefix, netip.Addr, bool) {
	for _, c := range r.IPs {
		a, ok := netip.AddrFromSlice(c.Address.IP)
		if !ok || a.Unmap().Is4() != v4 {
			continue
		}
		bits, _ := c.Address.Mask.Size()
		var gw netip.Addr
		if g, ok := netip.AddrFromSlice(c.Gateway); ok && c.Gateway != nil {
			gw = g.Unmap()
		}
		return netip.PrefixFrom(a.Unmap(), bits), gw, true
	}
	return netip.Prefix{}, netip.Addr{}, false
}

// buildResult describes what ADD made (and datapath verified in the
// sandbox): the host veth, the container interface in its sandbox, the
// addresses with their gateways (IPv6 too on a dual-stack network), the
// default routes if this interface got them (the container's first
// network) and the config's DNS.
func buildResult(conf *NetConf, args *skel.CmdArgs, n datapath.Network, ep datapath.Endpoint) *current.Result {
	host := &current.Interface{Name: ep.HostVeth}
	if l, err := netlink.LinkByName(ep.HostVeth); err == nil {
		host.Mac = l.Attrs().HardwareAddr.String()
	}
	var routes []*types.Route
	if ep.DefaultRoute {
		routes = append(routes, &types.Route{Dst: net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, GW: n.Gateway.AsSlice()})
	}
	var ips []*current.IPConfig
	if ep.IP.IsValid() { // else an IPv6-only network
		ips = append(ips, &current.IPConfig{
			Interface: current.Int(1),
			Address:   net.IPNet{IP: ep.IP.AsSlice(), Mask: net.CIDRMask(n.Subnet.Bits(), 32)},
			Gateway:   n.Gateway.AsSlice(),
		})
	}
	if ep.IP6.IsValid() {
		ips = append(ips, &current.IPConfig{
			Interface: current.Int(1),
			Address:   net.IPNet{IP: ep.IP6.AsSlice(), Mask: net.CIDRMask(n.Subnet6.Bits(), 128)},
			Gateway:   n.Gateway6.AsSlice(),
		})
		if ep.DefaultRoute6 {
			routes = append(routes, &types.Route{Dst: net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}, GW: n.Gateway6.AsSlice()})
		}
	}
	return &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{
			host,
			{Name: ep.Interface(), Mac: ep.MAC, Mtu: n.MTU, Sandbox: args.Netns},
		},
		IPs:    ips,
		Routes: routes,
		DNS:    conf.DNS,
	}
}

// podName is the Kubernetes pod a CNI ADD is for, as namespace/name, from
// the K8S_POD_NAMESPACE and K8S_POD_NAME args kubelet sends (CNI_ARGS:
// "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;..."), or
// "" when they are missing or malformed. Read leniently rather than with
// types.LoadArgs, which refuses keys it does not know unless the runtime
// sent IgnoreUnknown: a name to show is no reason to fail an ADD.
func podName(cniArgs string) string {
	var namespace, name string
	for _, kv := range strings.Split(cniArgs, ";") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "K8S_POD_NAMESPACE":
			namespace = v
		case "K8S_POD_NAME":
			name = v
		}
	}
	if namespace == "" || name == "" {
		return ""
	}
	return namespace + "/" + name
}
