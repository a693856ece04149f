// Package kubeproxy is ebpfnet's kube-proxy replacement on the Kubernetes
// side: Table translates Services, EndpointSlices and Nodes into the
// datapath's table of load-balanced services (datapath.ServiceTable), and
// Proxy watches them with client-go's informers and hands every change,
// coalesced, to a sync callback (the daemon's: datapath.Instance's
// SyncServices).
//
// The translation follows kube-proxy's (k8s.io/kubernetes/pkg/proxy:
// servicechangetracker.go, serviceport.go, endpointslicecache.go,
// topology.go) for IPv4: the same Services are skipped, the same
// addresses answer, the same endpoints are used. What it leaves out is
// listed on Table. It imports datapath for the table's types only and
// never drives the datapath itself.
package kubeproxy

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/ebpfnet/ebpfnet/datapath"
)

// LabelServiceProxyName marks a Service (and its EndpointSlices) as
// another proxy's: kube-proxy, and so this replacement, leaves it alone.
const LabelServiceProxyName = "service.kubernetes.io/service-proxy-name"

// DefaultAffinity is how long a client keeps its endpoint under
// sessionAffinity ClientIP when the Service does not say
// (sessionAffinityConfig.clientIP.timeoutSeconds unset): three hours.
const DefaultAffinity = time.Duration(corev1.DefaultClientIPServiceAffinitySeconds) * time.Second

// Table is the datapath's service table for the node named node: one
// datapath.Service per port of every Service kube-proxy would program,
// in name order, and the cluster's node addresses. It is a pure
// function of its arguments (which it does not modify), so the same
// objects give the same table whatever order they come in.
//
// Services: skipped are those without a cluster IP (headless, "None"),
// of type ExternalName, labelled LabelServiceProxyName, and without an
// IPv4 cluster IP (IPv6 single-stack). Of a Service's ports, SCTP ones
// are skipped. A Service with a selector and one without (endpoints
// managed by hand as EndpointSlices) are the same here: the endpoints
// come from the EndpointSlices labelled kubernetes.io/service-name.
//
// Frontends: the IPv4 cluster IPs, spec.externalIPs, and the IPs of
// status.loadBalancer.ingress whose ipMode is VIP (or unset), each with
// the Service's port. NodePort: the port's nodePort.
//
// Backends: the endpoints of IPv4 EndpointSlices whose port has the
// service port's name and protocol, at that slice port's number. An
// endpoint is used when ready (conditions.ready unset counts as ready);
// when a service port has no ready endpoint at all, its serving and
// terminating ones are used instead (kube-proxy's fallback, so
// connections still land somewhere while a rollout replaces the last
// pod). An address in several slices is one backend (ready and local if
// any of its copies is). Local: the endpoint's nodeName is node.
// Backends are sorted by address, then port.
//
// Policies: ExternalLocal is externalTrafficPolicy Local on a Service
// reachable from outside (NodePort, LoadBalancer, or ClusterIP with
// externalIPs: kube-proxy's ExternallyAccessible); InternalLocal is
// internalTrafficPolicy Local; Affinity is sessionAffinity ClientIP's
// timeout (DefaultAffinity when unset).
//
// NodeIPs: every node's InternalIP and ExternalIP addresses (IPv4),
// sorted, each once.
//
// Not translated: IPv6 (addresses, slices, dual-stack's second family),
// SCTP, topology hints and trafficDistribution (every ready endpoint is
// used), loadBalancerSourceRanges, healthCheckNodePort, and kube-proxy's
// separate fallback for Local traffic (local serving-terminating
// endpoints while other nodes still have ready ones): the table has one
// list of backends per service port, which this fallback would need two
// of.
func Table(services []*corev1.Service, endpointSlices []*discoveryv1.EndpointSlice, nodes []*corev1.Node, node string) datapath.ServiceTable {
	eps := endpointsByPort(endpointSlices, node)
	var t datapath.ServiceTable
	for _, svc := range services {
		t.Services = append(t.Services, servicePorts(svc, eps)...)
	}
	sortServices(t.Services)
	t.NodeIPs = nodeIPs(nodes)
	return t
}

// sortServices orders by name, then protocol: names are unique per
// Service port, so the order is total.
func sortServices(s []datapath.Service) {
	slices.SortFunc(s, func(a, b datapath.Service) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.Proto, b.Proto))
	})
}

// portKey names one port of one Service as EndpointSlices and Services
// both know it: kube-proxy's ServicePortName.
type portKey struct {
	namespace, service, port string
	proto                    corev1.Protocol
}

// endpoint is one address and port of a service port, with what the
// slices say of it.
type endpoint struct {
	addr               netip.AddrPort
	local              bool
	ready              bool
	servingTerminating bool
}

// endpointsByPort gathers the endpoints of every service port from the
// slices, each address and port once.
func endpointsByPort(endpointSlices []*discoveryv1.EndpointSlice, node string) map[portKey]map[netip.AddrPort]*endpoint {
	out := map[portKey]map[netip.AddrPort]*endpoint{}
	for _, s := range endpointSlices {
		service := s.Labels[discoveryv1.LabelServiceName]
		if service == "" || s.AddressType != discoveryv1.AddressTypeIPv4 || s.Labels[LabelServiceProxyName] != "" {
			continue
		}
		for _, p := range s.Ports {
			// As kube-proxy: a port without a name (nil, not "") or
			// a number is not one a Service can match.
			if p.Name == nil || p.Port == nil || *p.Port <= 0 || *p.Port > 65535 {
				continue
			}
			k := portKey{s.Namespace, service, *p.Name, protocol(p.Protocol)}
			for _, e := range s.Endpoints {
				if len(e.Addresses) == 0 {
					continue
				}
				ip, err := netip.ParseAddr(e.Addresses[0])
				if err != nil || !ip.Is4() {
					continue
				}
				ap := netip.AddrPortFrom(ip, uint16(*p.Port))
				c := e.Conditions
				ready := c.Ready == nil || *c.Ready
				serving := c.Serving == nil || *c.Serving
				terminating := c.Terminating != nil && *c.Terminating
				local := node != "" && e.NodeName != nil && *e.NodeName == node
				if out[k] == nil {
					out[k] = map[netip.AddrPort]*endpoint{}
				}
				ep := out[k][ap]
				if ep == nil {
					ep = &endpoint{addr: ap}
					out[k][ap] = ep
				}
				// The same endpoint in two slices (while it moves
				// between them): the most usable copy wins, whatever
				// order the slices came in.
				ep.local = ep.local || local
				ep.ready = ep.ready || ready
				ep.servingTerminating = ep.servingTerminating || serving && terminating
			}
		}
	}
	return out
}

// protocol is p, TCP when unset (the API's default).
func protocol(p *corev1.Protocol) corev1.Protocol {
	if p == nil || *p == "" {
		return corev1.ProtocolTCP
	}
	return *p
}

// skip says whether kube-proxy leaves svc alone.
func skip(svc *corev1.Service) bool {
	ip := svc.Spec.ClusterIP
	return ip == "" || ip == corev1.ClusterIPNone || svc.Spec.Type == corev1.ServiceTypeExternalName ||
		svc.Labels[LabelServiceProxyName] != ""
}

// servicePorts is svc's part of the table: one Service per port.
func servicePorts(svc *corev1.Service, eps map[portKey]map[netip.AddrPort]*endpoint) []datapath.Service {
	if skip(svc) {
		return nil
	}
	clusterIPs := svc.Spec.ClusterIPs
	if len(clusterIPs) == 0 {
		clusterIPs = []string{svc.Spec.ClusterIP}
	}
	clusterIPs4 := ipv4s(clusterIPs)
	if len(clusterIPs4) == 0 {
		return nil // IPv6 single-stack
	}
	addrs := clusterIPs4
	addrs = append(addrs, ipv4s(svc.Spec.ExternalIPs)...)
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		// A load balancer in Proxy mode sends from its own address to
		// the node: its IP is not one the node must answer on.
		if ing.IPMode != nil && *ing.IPMode != corev1.LoadBalancerIPModeVIP {
			continue
		}
		addrs = append(addrs, ipv4s([]string{ing.IP})...)
	}
	addrs = unique(addrs)

	var affinity time.Duration
	if svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
		affinity = DefaultAffinity
		if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			affinity = time.Duration(*c.ClientIP.TimeoutSeconds) * time.Second
		}
	}
	externallyAccessible := svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer ||
		svc.Spec.Type == corev1.ServiceTypeClusterIP && len(svc.Spec.ExternalIPs) > 0
	externalLocal := externallyAccessible && svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
	internalLocal := svc.Spec.InternalTrafficPolicy != nil && *svc.Spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal

	var out []datapath.Service
	for _, p := range svc.Spec.Ports {
		proto := protocol(&p.Protocol)
		var dpProto string
		switch proto {
		case corev1.ProtocolTCP:
			dpProto = "tcp"
		case corev1.ProtocolUDP:
			dpProto = "udp"
		default:
			continue // SCTP
		}
		if p.Port <= 0 || p.Port > 65535 {
			continue
		}
		name := svc.Namespace + "/" + svc.Name
		if p.Name != "" {
			name += ":" + p.Name
		}
		s := datapath.Service{
			Name:          name,
			Proto:         dpProto,
			ExternalLocal: externalLocal,
			InternalLocal: internalLocal,
			Affinity:      affinity,
		}
		for _, a := range addrs {
			s.Frontends = append(s.Frontends, netip.AddrPortFrom(a, uint16(p.Port)))
		}
		if p.NodePort > 0 && p.NodePort <= 65535 {
			s.NodePort = uint16(p.NodePort)
		}
		s.Backends = backends(eps[portKey{svc.Namespace, svc.Name, p.Name, proto}])
		out = append(out, s)
	}
	return out
}

// backends are the endpoints to use: the ready ones, or when there are
// none, the serving terminating ones; by address, then port.
func backends(eps map[netip.AddrPort]*endpoint) []datapath.ServiceBackend {
	pick := func(use func(*endpoint) bool) []datapath.ServiceBackend {
		var out []datapath.ServiceBackend
		for _, e := range eps {
			if use(e) {
				out = append(out, datapath.ServiceBackend{Addr: e.addr, Local: e.local})
			}
		}
		slices.SortFunc(out, func(a, b datapath.ServiceBackend) int { return a.Addr.Compare(b.Addr) })
		return out
	}
	if out := pick(func(e *endpoint) bool { return e.ready }); len(out) > 0 {
		return out
	}
	return pick(func(e *endpoint) bool { return e.servingTerminating })
}

// nodeIPs are the nodes' InternalIP and ExternalIP IPv4 addresses.
func nodeIPs(nodes []*corev1.Node) []netip.Addr {
	var out []netip.Addr
	for _, n := range nodes {
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP || a.Type == corev1.NodeExternalIP {
				out = append(out, ipv4s([]string{a.Address})...)
			}
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// ipv4s are the IPv4 addresses of ss, in order; others are left out.
func ipv4s(ss []string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		if ip, err := netip.ParseAddr(s); err == nil && ip.Is4() {
			out = append(out, ip)
		}
	}
	return out
}

// unique is as, each address once, in the order of first appearance.
func unique(as []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, a := range as {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}
