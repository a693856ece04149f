package datapath

import (
	"errors"
	"fmt"
	"slices"
	"syscall"
	"time"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

// SyncServices makes the datapath's balanced services exactly t's (see
// bpf/lib/lb.h). Pods and the host reach them through the socket hooks,
// which it attaches if they are not yet; clients from outside through
// from_uplink. It also makes sure every endpoint's namespace is a client
// (endpoints attached by a release that did not record theirs).
func (i *Instance) SyncServices(t ServiceTable) error {
	want := make([]maps.LBService, 0, len(t.Services))
	for _, s := range t.Services {
		if err := s.Validate(); err != nil {
			return err
		}
		want = append(want, lbService(s))
	}
	for _, a := range t.NodeIPs {
		if !a.Is4() {
			return fmt.Errorf("node address %s: want IPv4", a)
		}
	}
	return i.withStore(func(st *store) error {
		views, err := i.datapath()
		if err != nil {
			return err
		}
		if !i.dp.SockHooksAttached() {
			if err := i.dp.AttachSockHooks(); err != nil {
				return fmt.Errorf("services need the socket hooks: %w", err)
			}
		}
		res, err := views.SyncServices(want, t.NodeIPs)
		if err != nil {
			return err
		}
		if res.Services+res.Backends+res.Deleted > 0 {
			i.log.Info("services synced", "services", len(want), "written", res.Services+res.Backends, "deleted", res.Deleted)
		}
		return i.syncLBClients(st, views)
	})
}

// lbService is s as the datapath holds it: this node's endpoints first,
// each group in the order given.
func lbService(s Service) maps.LBService {
	out := maps.LBService{Proto: syscall.IPPROTO_TCP, Frontends: s.Frontends, NodePort: s.NodePort,
		AffinitySeconds: uint32((s.Affinity + 999_999_999) / 1_000_000_000),
		ExternalLocal:   s.ExternalLocal, InternalLocal: s.InternalLocal}
	if s.Proto == "udp" {
		out.Proto = syscall.IPPROTO_UDP
	}
	for _, b := range s.Backends {
		if b.Local {
			out.Backends = append(out.Backends, b.Addr)
		}
	}
	out.LocalCount = len(out.Backends)
	for _, b := range s.Backends {
		if !b.Local {
			out.Backends = append(out.Backends, b.Addr)
		}
	}
	return out
}

// syncLBClients makes the namespaces whose sockets reach services exactly
// those of the bridge endpoints, recording the cookie of any endpoint that
// has none yet.
func (i *Instance) syncLBClients(st *store, views *maps.Views) error {
	eps, err := st.endpoints()
	if err != nil {
		return err
	}
	var cookies []uint64
	var errs []error
	for _, ep := range eps {
		if ep.Mode != ModeBridge {
			continue
		}
		if ep.NetnsCookie == 0 {
			c, err := namespaceCookie(ep)
			if err != nil {
				continue // gone: the daemon frees the endpoint
			}
			ep.NetnsCookie = c
			errs = append(errs, st.putEndpoint(ep))
		}
		cookies = append(cookies, ep.NetnsCookie)
	}
	return errors.Join(append(errs, views.SyncLBClients(cookies))...)
}

// namespaceCookie is the cookie of ep's namespace, if its path still names
// the namespace it was attached in.
func namespaceCookie(ep Endpoint) (c uint64, err error) {
	ns, err := netnsutil.Resolve(ep.Netns)
	if err != nil {
		return 0, err
	}
	if ns.Ino != ep.NetnsIno {
		return 0, fmt.Errorf("%s names another namespace now", ep.Netns)
	}
	err = netnsutil.Do(ns, func() error {
		c, err = loader.NetnsCookie()
		return err
	})
	return c, err
}

// forgetLBClient removes a detached endpoint's namespace from the service
// clients unless another endpoint is in it.
func (i *Instance) forgetLBClient(st *store, gone Endpoint) error {
	if gone.NetnsCookie == 0 || i.dp == nil {
		return nil
	}
	eps, err := st.endpoints()
	if err != nil {
		return err
	}
	if slices.ContainsFunc(eps, func(e Endpoint) bool { return e.NetnsCookie == gone.NetnsCookie }) {
		return nil
	}
	views, err := i.datapath()
	if err != nil {
		return err
	}
	return views.DeleteLBClient(gone.NetnsCookie)
}

// Services reads the balanced services back from the datapath, each as
// one Service with its frontends sorted (names are not kept there: each
// is named by its first frontend) and the node addresses.
func (i *Instance) Services() (ServiceTable, error) {
	views, err := i.datapath()
	if err != nil {
		return ServiceTable{}, err
	}
	svcs, err := views.LBServices()
	if err != nil {
		return ServiceTable{}, err
	}
	var t ServiceTable
	if t.NodeIPs, err = views.LBNodeIPs(); err != nil {
		return ServiceTable{}, err
	}
	for _, s := range svcs {
		out := Service{Proto: "tcp", Frontends: s.Frontends, NodePort: s.NodePort, ExternalLocal: s.ExternalLocal,
			InternalLocal: s.InternalLocal, Affinity: time.Duration(s.AffinitySeconds) * time.Second}
		if s.Proto == syscall.IPPROTO_UDP {
			out.Proto = "udp"
		}
		for k, b := range s.Backends {
			out.Backends = append(out.Backends, ServiceBackend{Addr: b, Local: k < s.LocalCount})
		}
		switch {
		case len(s.Frontends) > 0:
			out.Name = s.Frontends[0].String()
		default:
			out.Name = fmt.Sprintf("*:%d", s.NodePort)
		}
		t.Services = append(t.Services, out)
	}
	return t, nil
}
