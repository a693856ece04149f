package kubeproxy

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ebpfnet/ebpfnet/datapath"
)

// Builders of the objects the tests feed Table, each with what most
// cases want and options for the rest.

func ptr[T any](v T) *T { return &v }

type svcOpt func(*corev1.Service)

// svc is a ClusterIP Service ns/name with a selector.
func svc(ns, name, clusterIP string, ports []corev1.ServicePort, opts ...svcOpt) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Type:      corev1.ServiceTypeClusterIP,
			ClusterIP: clusterIP,
			Selector:  map[string]string{"app": name},
			Ports:     ports,
		},
	}
	if clusterIP != "" && clusterIP != corev1.ClusterIPNone {
		s.Spec.ClusterIPs = []string{clusterIP}
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func port(name string, proto corev1.Protocol, p int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Protocol: proto, Port: p}
}

func nodePort(name string, proto corev1.Protocol, p, np int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Protocol: proto, Port: p, NodePort: np}
}

func withType(t corev1.ServiceType) svcOpt { return func(s *corev1.Service) { s.Spec.Type = t } }

func withClusterIPs(ips ...string) svcOpt { return func(s *corev1.Service) { s.Spec.ClusterIPs = ips } }

func withExternalIPs(ips ...string) svcOpt {
	return func(s *corev1.Service) { s.Spec.ExternalIPs = ips }
}

func withIngress(ing ...corev1.LoadBalancerIngress) svcOpt {
	return func(s *corev1.Service) { s.Status.LoadBalancer.Ingress = ing }
}

func withLabel(k, v string) svcOpt {
	return func(s *corev1.Service) {
		if s.Labels == nil {
			s.Labels = map[string]string{}
		}
		s.Labels[k] = v
	}
}

func noSelector(s *corev1.Service) { s.Spec.Selector = nil }

type ep struct {
	ip                          string
	node                        string
	ready, serving, terminating *bool
}

// slice is an IPv4 EndpointSlice of Service ns/service with ports and
// endpoints.
func slice(ns, service, name string, ports []discoveryv1.EndpointPort, eps ...ep) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: service}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       ports,
	}
	for _, e := range eps {
		de := discoveryv1.Endpoint{
			Addresses:  []string{e.ip},
			Conditions: discoveryv1.EndpointConditions{Ready: e.ready, Serving: e.serving, Terminating: e.terminating},
		}
		if e.node != "" {
			de.NodeName = ptr(e.node)
		}
		s.Endpoints = append(s.Endpoints, de)
	}
	return s
}

func eport(name string, proto corev1.Protocol, p int32) discoveryv1.EndpointPort {
	return discoveryv1.EndpointPort{Name: ptr(name), Protocol: ptr(proto), Port: ptr(p)}
}

func node(name string, addrs ...corev1.NodeAddress) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{Addresses: addrs}}
}

func addrs(ss ...string) []netip.AddrPort {
	var out []netip.AddrPort
	for _, s := range ss {
		out = append(out, netip.MustParseAddrPort(s))
	}
	return out
}

func backend(s string, local bool) datapath.ServiceBackend {
	return datapath.ServiceBackend{Addr: netip.MustParseAddrPort(s), Local: local}
}

const (
	tcp  = corev1.ProtocolTCP
	udp  = corev1.ProtocolUDP
	sctp = corev1.ProtocolSCTP
	here = "node-a" // the node the tables are built for
)

var (
	yes = ptr(true)
	no  = ptr(false)
)

// describe shows a table one service a line, for failures.
func describe(t datapath.ServiceTable) string {
	var b strings.Builder
	for _, s := range t.Services {
		fmt.Fprintf(&b, "\t%s %s frontends=%v nodePort=%d backends=%v extLocal=%v intLocal=%v affinity=%s\n",
			s.Name, s.Proto, s.Frontends, s.NodePort, s.Backends, s.ExternalLocal, s.InternalLocal, s.Affinity)
	}
	fmt.Fprintf(&b, "\tnodeIPs=%v\n", t.NodeIPs)
	return b.String()
}

func TestTable(t *testing.T) {
	web := []corev1.ServicePort{port("http", tcp, 80)}
	webSlice := func(eps ...ep) *discoveryv1.EndpointSlice {
		return slice("default", "web", "web-1", []discoveryv1.EndpointPort{eport("http", tcp, 8080)}, eps...)
	}
	// one is what most cases expect: default/web:http with frontends
	// and backends as given.
	one := func(frontends []netip.AddrPort, backends ...datapath.ServiceBackend) []datapath.Service {
		return []datapath.Service{{Name: "default/web:http", Proto: "tcp", Frontends: frontends, Backends: backends}}
	}
	for _, tc := range []struct {
		name     string
		services []*corev1.Service
		slices   []*discoveryv1.EndpointSlice
		nodes    []*corev1.Node
		want     []datapath.Service
		nodeIPs  []string
	}{
		{
			name:     "a ClusterIP service with one ready endpoint",
			services: []*corev1.Service{svc("default", "web", "10.96.0.20", web)},
			slices:   []*discoveryv1.EndpointSlice{webSlice(ep{ip: "10.244.0.5", node: "node-b"})},
			want:     one(addrs("10.96.0.20:80"), backend("10.244.0.5:8080", false)),
		},
		{
			name:     "an endpoint on this node is local",
			services: []*corev1.Service{svc("default", "web", "10.96.0.20", web)},
			slices:   []*discoveryv1.EndpointSlice{webSlice(ep{ip: "10.244.0.5", node: here}, ep{ip: "10.244.1.5", node: "node-b"}, ep{ip: "10.244.2.5"})},
			want:     one(addrs("10.96.0.20:80"), backend("10.244.0.5:8080", true), backend("10.244.1.5:8080", false), backend("10.244.2.5:8080", false)),
		},
		{
			name:     "a service without endpoints is kept, with no backends",
			services: []*corev1.Service{svc("default", "web", "10.96.0.20", web)},
			want:     one(addrs("10.96.0.20:80")),
		},
		{
			name: "headless and ExternalName services are skipped",
			services: []*corev1.Service{
				svc("default", "headless", corev1.ClusterIPNone, web),
				svc("default", "empty", "", web),
				svc("default", "ext", "", web, withType(corev1.ServiceTypeExternalName)),
				svc("default", "ext-ip", "10.96.0.21", web, withType(corev1.ServiceTypeExternalName)),
			},
			slices: []*discoveryv1.EndpointSlice{slice("default", "headless", "headless-1", []discoveryv1.EndpointPort{eport("http", tcp, 8080)}, ep{ip: "10.244.0.5"})},
		},
		{
			name:     "a service another proxy serves is skipped",
			services: []*corev1.Service{svc("default", "web", "10.96.0.20", web, withLabel(LabelServiceProxyName, "other"))},
			slices:   []*discoveryv1.EndpointSlice{webSlice(ep{ip: "10.244.0.5"})},
		},
		{
			name:     "a selector-less service takes its hand-made EndpointSlices",
			services: []*corev1.Service{svc("default", "web", "10.96.0.20", web, noSelector)},
			slices:   []*discoveryv1.EndpointSlice{slice("default", "web", "by-hand", []discoveryv1.EndpointPort{eport("http", tcp, 9000)}, ep{ip: "192.0.2.10"})},
			want:     one(addrs("10.96.0.20:80"), backend("192.0.2.10:9000", false)),
		},
		{
			name: "one service per port, named ns/name:port or ns/name when unnamed, SCTP ports skipped",
			services: []*corev1.Service{
				svc("default", "dns", "10.96.0.10", []corev1.ServicePort{port("dns", udp, 53), port("dns-tcp", tcp, 53), port("sctp", sctp, 9999)}),
				svc("kube-system", "single", "10.96.0.30", []corev1.ServicePort{port("", tcp, 443)}),
			},
			slices: []*discoveryv1.EndpointSlice{
				slice("default", "dns", "dns-1", []discoveryv1.EndpointPort{eport("dns", udp, 5353), eport("dns-tcp", tcp, 5353), eport("sctp", sctp, 9999)}, ep{ip: "10.244.0.7"}),
				slice("kube-system", "single", "single-1", []discoveryv1.EndpointPort{eport("", tcp, 6443)}, ep{ip: "198.18.0.2"}),
			},
			want: []datapath.Service{
				{Name: "default/dns:dns", Proto: "udp", Frontends: addrs("10.96.0.10:53"), Backends: []datapath.ServiceBackend{backend("10.244.0.7:5353", false)}},
				{Name: "default/dns:dns-tcp", Proto: "tcp", Frontends: addrs("10.96.0.10:53"), Backends: []datapath.ServiceBackend{backend("10.244.0.7:5353", false)}},
				{Name: "kube-system/single", Proto: "tcp", Frontends: addrs("10.96.0.30:443"), Backends: []datapath.ServiceBackend{backend("198.18.0.2:6443", false)}},
			},
		},
		{
			name:     "slice ports match by name and protocol, at the slice's number",
			services: []*corev1.Service{svc("default", "web", "10.96.0.20", []corev1.ServicePort{port("http", tcp, 80), port("q", udp, 80)})},
			slices: []*discoveryv1.EndpointSlice{
				slice("default", "web", "web-1", []discoveryv1.EndpointPort{eport("http", tcp, 8080), eport("http", udp, 1111), eport("other", tcp, 2222), eport("q", udp, 9090)}, ep{ip: "10.244.0.5"}),
			},
			want: []datapath.Service{
				{Name: "default/web:http", Proto: "tcp", Frontends: addrs("10.96.0.20:80"), Backends: []datapath.ServiceBackend{backend("10.244.0.5:8080", false)}},
				{Name: "default/web:q", Proto: "udp", Frontends: addrs("10.96.0.20:80"), Backends: []datapath.ServiceBackend{backend("10.244.0.5:9090", false)}},
			},
		},
		{
			name:     "a slice port without a name or number, and an unset protocol",
			services: []*corev1.Service{svc("default", "web", "10.96.0.20", web)},
			slices: []*discoveryv1.EndpointSlice{
				slice("default", "web", "web-1", []discoveryv1.EndpointPort{{Port: ptr(int32(1111))}, {Name: ptr("http"), Protocol: ptr(tcp)}}, ep{ip: "10.244.0.5"}),
				slice("default", "web", "web-2", []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(8080))}}, ep{ip: "10.244.0.6"}),
			},
			want: one(addrs("10.96.0.20:80"), backend("10.244.0.6:8080", false)),
		},
		{
			name:     "slices of other services, namespaces, IPv6 and FQDN are not this service's",
			services: []*corev1.Service{svc("default", "web", "10.96.0.20", web)},
			slices: []*discoveryv1.EndpointSlice{
				slice("default", "api", "api-1", []discoveryv1.EndpointPort{eport("http", tcp, 8080)}, ep{ip: "10.244.0.1"}),
				slice("other", "web", "web-1", []discoveryv1.EndpointPort{eport("http", tcp, 8080)}, ep{ip: "10.244.0.2"}),
				func() *discoveryv1.EndpointSlice {
					s := slice("default", "web", "web-v6", []discoveryv1.EndpointPort{eport("http", tcp, 8080)}, ep{ip: "fd00::5"})
					s.AddressType = discoveryv1.AddressTypeIPv6
					return s
				}(),
				func() *discoveryv1.EndpointSlice {
					s := slice("default", "web", "web-fqdn", []discoveryv1.EndpointPort{eport("http", tcp, 8080)}, ep{ip: "example.com"})
					s.AddressType = discoveryv1.AddressTypeFQDN
					return s
				}(),
				func() *discoveryv1.EndpointSlice {
					s := slice("default", "web", "web-unlabelled", []discoveryv1.EndpointPort{eport("http", tcp, 8080)}, ep{ip: "10.244.0.3"})
					s.Labels = nil
					return s
				}(),
				func() *discoveryv1.EndpointSlice {
					s := slice("default", "web", "web-other-proxy", []discoveryv1.EndpointPort{eport("http", tcp, 8080)}, ep{ip: "10.244.0.4"})
					s.Labels[LabelServiceProxyName] = "other"
					return s
				}(),
				webSlice(ep{ip: "fd00::6"}, ep{ip: "not-an-ip"}, ep{ip: "10.244.0.9"}),
			},
			want: one(addrs("10.96.0.20:80"), backend("10.244.0.9:8080", false)),
		},
		{
			name:     "only ready endpoints (unset counts as ready)",
			services: []*corev1.Service{svc("default", "web", "10.96.0.20", web)},
			slices: []*discoveryv1.EndpointSlice{webSlice(
				ep{ip: "10.244.0.1", ready: yes},
				ep{ip: "10.244.0.2"},
				ep{ip: "10.244.0.3", ready: no, serving: no},
				ep{ip: "10.244.0.4", ready: no, serving: yes, terminating: yes},
			)},
			want: one(addrs("10.96.0.20:80"), backend("10.244.0.1:8080", false), backend("10.244.0.2:8080", false)),
		},
		{
			name:     "no ready endpoint: the serving terminating ones",
			services: []*corev1.Service{svc("default", "web", "10.96.0.20", web)},
			slices: []*discoveryv1.EndpointSlice{webSlice(
				ep{ip: "10.244.0.3", ready: no, serving: no, terminating: yes},
				ep{ip: "10.244.0.4", ready: no, serving: yes, terminating: yes, node: here},
				ep{ip: "10.244.0.5", ready: no, terminating: yes}, // serving unset: serving
				ep{ip: "10.244.0.6", ready: no, serving: yes},     // not terminating: starting up
			)},
			want: one(addrs("10.96.0.20:80"), backend("10.244.0.4:8080", true), backend("10.244.0.5:8080", false)),
		},
		{
			name:     "no usable endpoint at all",
			services: []*corev1.Service{svc("default", "web", "10.96.0.20", web)},
			slices:   []*discoveryv1.EndpointSlice{webSlice(ep{ip: "10.244.0.3", ready: no, serving: no, terminating: yes}, ep{ip: "10.244.0.6", ready: no})},
			want:     one(addrs("10.96.0.20:80")),
		},
		{
			name:     "an address in two slices is one backend, ready and local if either copy is",
			services: []*corev1.Service{svc("default", "web", "10.96.0.20", web)},
			slices: []*discoveryv1.EndpointSlice{
				slice("default", "web", "web-b", []discoveryv1.EndpointPort{eport("http", tcp, 8080)}, ep{ip: "10.244.0.5", ready: no}, ep{ip: "10.244.0.6", node: here}),
				slice("default", "web", "web-a", []discoveryv1.EndpointPort{eport("http", tcp, 8080)}, ep{ip: "10.244.0.5", node: here}, ep{ip: "10.244.0.6"}),
			},
			want: one(addrs("10.96.0.20:80"), backend("10.244.0.5:8080", true), backend("10.244.0.6:8080", true)),
		},
		{
			name:     "one address at two ports is two backends, by address then port",
			services: []*corev1.Service{svc("default", "web", "10.96.0.20", web)},
			slices: []*discoveryv1.EndpointSlice{
				slice("default", "web", "web-2", []discoveryv1.EndpointPort{eport("http", tcp, 9090)}, ep{ip: "10.244.0.10"}, ep{ip: "10.244.0.9"}),
				slice("default", "web", "web-1", []discoveryv1.EndpointPort{eport("http", tcp, 8080)}, ep{ip: "10.244.0.10"}, ep{ip: "10.244.0.200"}),
			},
			want: one(addrs("10.96.0.20:80"), backend("10.244.0.9:9090", false), backend("10.244.0.10:8080", false), backend("10.244.0.10:9090", false), backend("10.244.0.200:8080", false)),
		},
		{
			name: "frontends: IPv4 cluster IPs, external IPs, VIP load balancer ingress IPs, each once",
			services: []*corev1.Service{svc("default", "web", "10.96.0.20", web,
				withType(corev1.ServiceTypeLoadBalancer),
				withClusterIPs("10.96.0.20", "fd00:96::20"),
				withExternalIPs("203.0.113.7", "2001:db8::7", "10.96.0.20"),
				withIngress(
					corev1.LoadBalancerIngress{IP: "203.0.113.8"},
					corev1.LoadBalancerIngress{IP: "203.0.113.9", IPMode: ptr(corev1.LoadBalancerIPModeVIP)},
					corev1.LoadBalancerIngress{IP: "203.0.113.10", IPMode: ptr(corev1.LoadBalancerIPModeProxy)},
					corev1.LoadBalancerIngress{Hostname: "lb.example.com"},
					corev1.LoadBalancerIngress{IP: "2001:db8::8"},
				))},
			want: one(addrs("10.96.0.20:80", "203.0.113.7:80", "203.0.113.8:80", "203.0.113.9:80")),
		},
		{
			name:     "dual-stack with IPv6 first: the IPv4 cluster IP",
			services: []*corev1.Service{svc("default", "web", "fd00:96::20", web, withClusterIPs("fd00:96::20", "10.96.0.20"))},
			want:     one(addrs("10.96.0.20:80")),
		},
		{
			name:     "IPv6 single-stack is skipped, external IPs and all",
			services: []*corev1.Service{svc("default", "web", "fd00:96::20", web, withExternalIPs("203.0.113.7"))},
		},
		{
			name:     "only spec.clusterIP set (no clusterIPs)",
			services: []*corev1.Service{svc("default", "web", "10.96.0.20", web, withClusterIPs())},
			want:     one(addrs("10.96.0.20:80")),
		},
		{
			name: "NodePort and LoadBalancer: the port's nodePort",
			services: []*corev1.Service{
				svc("default", "np", "10.96.0.40", []corev1.ServicePort{nodePort("http", tcp, 80, 30080), nodePort("dns", udp, 53, 30053)}, withType(corev1.ServiceTypeNodePort)),
				svc("default", "lb", "10.96.0.41", []corev1.ServicePort{nodePort("", tcp, 443, 30443)}, withType(corev1.ServiceTypeLoadBalancer)),
				svc("default", "lb-no-np", "10.96.0.42", []corev1.ServicePort{port("", tcp, 443)}, withType(corev1.ServiceTypeLoadBalancer)),
			},
			want: []datapath.Service{
				{Name: "default/lb", Proto: "tcp", Frontends: addrs("10.96.0.41:443"), NodePort: 30443},
				{Name: "default/lb-no-np", Proto: "tcp", Frontends: addrs("10.96.0.42:443")},
				{Name: "default/np:dns", Proto: "udp", Frontends: addrs("10.96.0.40:53"), NodePort: 30053},
				{Name: "default/np:http", Proto: "tcp", Frontends: addrs("10.96.0.40:80"), NodePort: 30080},
			},
		},
		{
			name: "externalTrafficPolicy Local on services reachable from outside",
			services: []*corev1.Service{
				svc("default", "np", "10.96.0.40", []corev1.ServicePort{nodePort("", tcp, 80, 30080)}, withType(corev1.ServiceTypeNodePort), etp(corev1.ServiceExternalTrafficPolicyLocal)),
				svc("default", "lb", "10.96.0.41", []corev1.ServicePort{nodePort("", tcp, 80, 30081)}, withType(corev1.ServiceTypeLoadBalancer), etp(corev1.ServiceExternalTrafficPolicyLocal)),
				svc("default", "eip", "10.96.0.42", []corev1.ServicePort{port("", tcp, 80)}, withExternalIPs("203.0.113.7"), etp(corev1.ServiceExternalTrafficPolicyLocal)),
				svc("default", "cip", "10.96.0.43", []corev1.ServicePort{port("", tcp, 80)}, etp(corev1.ServiceExternalTrafficPolicyLocal)),
				svc("default", "np-cluster", "10.96.0.44", []corev1.ServicePort{nodePort("", tcp, 80, 30082)}, withType(corev1.ServiceTypeNodePort), etp(corev1.ServiceExternalTrafficPolicyCluster)),
			},
			want: []datapath.Service{
				{Name: "default/cip", Proto: "tcp", Frontends: addrs("10.96.0.43:80")},
				{Name: "default/eip", Proto: "tcp", Frontends: addrs("10.96.0.42:80", "203.0.113.7:80"), ExternalLocal: true},
				{Name: "default/lb", Proto: "tcp", Frontends: addrs("10.96.0.41:80"), NodePort: 30081, ExternalLocal: true},
				{Name: "default/np", Proto: "tcp", Frontends: addrs("10.96.0.40:80"), NodePort: 30080, ExternalLocal: true},
				{Name: "default/np-cluster", Proto: "tcp", Frontends: addrs("10.96.0.44:80"), NodePort: 30082},
			},
		},
		{
			name: "internalTrafficPolicy Local",
			services: []*corev1.Service{
				svc("default", "web", "10.96.0.20", web, itp(corev1.ServiceInternalTrafficPolicyLocal)),
				svc("default", "web-cluster", "10.96.0.21", web, itp(corev1.ServiceInternalTrafficPolicyCluster)),
			},
			slices: []*discoveryv1.EndpointSlice{webSlice(ep{ip: "10.244.0.5", node: here}, ep{ip: "10.244.1.5", node: "node-b"})},
			want: []datapath.Service{
				{Name: "default/web-cluster:http", Proto: "tcp", Frontends: addrs("10.96.0.21:80")},
				{Name: "default/web:http", Proto: "tcp", Frontends: addrs("10.96.0.20:80"), InternalLocal: true,
					Backends: []datapath.ServiceBackend{backend("10.244.0.5:8080", true), backend("10.244.1.5:8080", false)}},
			},
		},
		{
			name: "sessionAffinity ClientIP: its timeout, three hours by default",
			services: []*corev1.Service{
				svc("default", "a", "10.96.0.50", []corev1.ServicePort{port("", tcp, 80)}, affinity(ptr(int32(60)))),
				svc("default", "b", "10.96.0.51", []corev1.ServicePort{port("", tcp, 80)}, affinity(nil)),
				svc("default", "c", "10.96.0.52", []corev1.ServicePort{port("", tcp, 80)}, func(s *corev1.Service) { s.Spec.SessionAffinity = corev1.ServiceAffinityNone }),
			},
			want: []datapath.Service{
				{Name: "default/a", Proto: "tcp", Frontends: addrs("10.96.0.50:80"), Affinity: time.Minute},
				{Name: "default/b", Proto: "tcp", Frontends: addrs("10.96.0.51:80"), Affinity: 3 * time.Hour},
				{Name: "default/c", Proto: "tcp", Frontends: addrs("10.96.0.52:80")},
			},
		},
		{
			name: "node IPs: InternalIP and ExternalIP, IPv4, sorted, once",
			nodes: []*corev1.Node{
				node("node-b",
					corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "198.18.0.3"},
					corev1.NodeAddress{Type: corev1.NodeHostName, Address: "node-b"},
					corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "fd00::3"},
				),
				node(here,
					corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "198.18.0.2"},
					corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "203.0.113.2"},
					corev1.NodeAddress{Type: corev1.NodeInternalDNS, Address: "node-a.internal"},
					corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "198.18.0.3"},
				),
				node("node-c"),
			},
			nodeIPs: []string{"198.18.0.2", "198.18.0.3", "203.0.113.2"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Table(tc.services, tc.slices, tc.nodes, here)
			want := datapath.ServiceTable{Services: tc.want}
			for _, ip := range tc.nodeIPs {
				want.NodeIPs = append(want.NodeIPs, netip.MustParseAddr(ip))
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got\n%swant\n%s", describe(got), describe(want))
			}
			for _, s := range got.Services {
				if err := s.Validate(); err != nil {
					t.Errorf("the datapath would refuse it: %v", err)
				}
			}
			// The same objects in another order make the same table.
			rev := Table(reversed(tc.services), reversed(tc.slices), reversed(tc.nodes), here)
			if !reflect.DeepEqual(rev, got) {
				t.Errorf("with the objects reversed\n%sinstead of\n%s", describe(rev), describe(got))
			}
		})
	}
}

func etp(p corev1.ServiceExternalTrafficPolicy) svcOpt {
	return func(s *corev1.Service) { s.Spec.ExternalTrafficPolicy = p }
}

func itp(p corev1.ServiceInternalTrafficPolicy) svcOpt {
	return func(s *corev1.Service) { s.Spec.InternalTrafficPolicy = &p }
}

func affinity(timeout *int32) svcOpt {
	return func(s *corev1.Service) {
		s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
		if timeout != nil {
			s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: timeout}}
		}
	}
}

func reversed[T any](s []T) []T {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}

// Table must not change what the informers' caches share.
func TestTableLeavesItsInputAlone(t *testing.T) {
	services := []*corev1.Service{svc("default", "web", "10.96.0.20", []corev1.ServicePort{port("http", tcp, 80)}, withExternalIPs("203.0.113.7"))}
	slices := []*discoveryv1.EndpointSlice{slice("default", "web", "web-1", []discoveryv1.EndpointPort{eport("http", tcp, 8080)}, ep{ip: "10.244.0.6"}, ep{ip: "10.244.0.5"})}
	nodes := []*corev1.Node{node(here, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "198.18.0.2"})}
	before := fmt.Sprintf("%#v %#v %#v", *services[0], *slices[0], *nodes[0])
	Table(services, slices, nodes, here)
	if after := fmt.Sprintf("%#v %#v %#v", *services[0], *slices[0], *nodes[0]); after != before {
		t.Errorf("Table changed its input:\n%s\nwas\n%s", after, before)
	}
}

// With no node name no endpoint is local (kube-proxy's isLocal), even
// one without a nodeName.
func TestTableWithoutNodeName(t *testing.T) {
	got := Table([]*corev1.Service{svc("default", "web", "10.96.0.20", []corev1.ServicePort{port("", tcp, 80)})},
		[]*discoveryv1.EndpointSlice{slice("default", "web", "web-1", []discoveryv1.EndpointPort{eport("", tcp, 8080)}, ep{ip: "10.244.0.5"}, ep{ip: "10.244.0.6", node: here})}, nil, "")
	if len(got.Services) != 1 || len(got.Services[0].Backends) != 2 || got.Services[0].Backends[0].Local || got.Services[0].Backends[1].Local {
		t.Errorf("got\n%s", describe(got))
	}
}
