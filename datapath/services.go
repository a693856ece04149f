package datapath

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/ebpfnet/ebpfnet/loader"
)

// ServiceTable is the whole set of load-balanced services a kube-proxy
// replacement wants (package kubeproxy builds it from Kubernetes' Services
// and EndpointSlices). SyncServices makes the datapath exactly this.
type ServiceTable struct {
	Services []Service
	// NodeIPs are the cluster's node addresses: a NodePort reached on any
	// of them from a pod or the host is balanced at the socket already,
	// without crossing to that node first.
	NodeIPs []netip.Addr
}

// Service is one port of one Kubernetes Service (kube-proxy's
// ServicePortName): the addresses it answers on and its endpoints.
type Service struct {
	// Name is namespace/name:port, for logs and listings.
	Name string
	// Proto is "tcp" or "udp".
	Proto string
	// Frontends are the exact addresses (ClusterIP, externalIPs, load
	// balancer ingress IPs) with the Service's port.
	Frontends []netip.AddrPort
	// NodePort, if not 0, answers on every node address.
	NodePort uint16
	// Backends are the ready endpoints (address and target port), in a
	// stable order (a change of one endpoint moves no other).
	Backends []ServiceBackend
	// ExternalLocal (externalTrafficPolicy: Local): traffic from outside
	// the cluster (NodePort, externalIPs and load balancer IPs reached
	// through the uplink) goes only to this node's endpoints, with the
	// client's address kept.
	ExternalLocal bool
	// InternalLocal (internalTrafficPolicy: Local): traffic from pods and
	// the node goes only to this node's endpoints.
	InternalLocal bool
	// Affinity (sessionAffinity: ClientIP): a client keeps its endpoint
	// for this long after its last connection; 0 is none.
	Affinity time.Duration
}

// ServiceBackend is one endpoint of a Service.
type ServiceBackend struct {
	Addr netip.AddrPort
	// Local: the endpoint runs on this node.
	Local bool
}

// Validate checks what the datapath cannot take.
func (s Service) Validate() error {
	switch s.Proto {
	case "tcp", "udp":
	default:
		return fmt.Errorf("service %s: protocol %q: only tcp and udp are balanced", s.Name, s.Proto)
	}
	for _, f := range s.Frontends {
		if !f.Addr().Is4() || f.Port() == 0 {
			return fmt.Errorf("service %s: frontend %s: want an IPv4 address and a port", s.Name, f)
		}
	}
	for _, b := range s.Backends {
		if !b.Addr.Addr().Is4() || b.Addr.Port() == 0 {
			return fmt.Errorf("service %s: backend %s: want an IPv4 address and a port", s.Name, b.Addr)
		}
	}
	if len(s.Backends) > MaxServiceBackends {
		return fmt.Errorf("service %s: %d endpoints: at most %d are balanced", s.Name, len(s.Backends), MaxServiceBackends)
	}
	if s.Affinity < 0 {
		return fmt.Errorf("service %s: negative affinity timeout", s.Name)
	}
	return nil
}

// The datapath's capacities for all services together: their frontends
// (each address and NodePort), their endpoints, and node addresses.
const (
	MaxServiceFrontends = loader.LBServicesSize
	MaxServiceEndpoints = loader.LBBackendsSize
	MaxNodeIPs          = loader.LBNodeIPsSize
)

// MaxServiceBackends bounds one service's endpoints (the BPF programs
// index them by slot).
const MaxServiceBackends = 1 << 12
