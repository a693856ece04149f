package maps

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"

	"github.com/ebpfnet/ebpfnet/loader"
)

// LBService is one balanced service as the datapath holds it (bpf/lib/lb.h).
type LBService struct {
	Proto     uint8 // IPPROTO_TCP or IPPROTO_UDP
	Frontends []netip.AddrPort
	NodePort  uint16 // 0: none
	// Backends come this node's first: the first LocalCount are local.
	Backends        []netip.AddrPort
	LocalCount      int
	AffinitySeconds uint32
	ExternalLocal   bool
	InternalLocal   bool
}

// LBSync counts what SyncServices changed.
type LBSync struct {
	Services, Backends int // entries written
	Deleted            int // entries removed
}

func (s LBService) keys() []loader.LBKey {
	keys := make([]loader.LBKey, 0, len(s.Frontends)+1)
	for _, f := range s.Frontends {
		keys = append(keys, loader.LBKey{Addr: BE32(f.Addr()), Port: BE16(f.Port()), Proto: s.Proto, Scope: uint8(loader.LBScopeExact)})
	}
	if s.NodePort != 0 {
		keys = append(keys, loader.LBKey{Port: BE16(s.NodePort), Proto: s.Proto, Scope: uint8(loader.LBScopeNodePort)})
	}
	return keys
}

func (s LBService) value(id uint32) loader.LBService {
	v := loader.LBService{Id: id, Count: uint16(len(s.Backends)), LocalCount: uint16(s.LocalCount), AffinityS: s.AffinitySeconds}
	if s.ExternalLocal {
		v.Flags |= uint32(loader.LBExternalLocal)
	}
	if s.InternalLocal {
		v.Flags |= uint32(loader.LBInternalLocal)
	}
	return v
}

func lbBackend(a netip.AddrPort) loader.LBBackend {
	return loader.LBBackend{Addr: BE32(a.Addr()), Port: BE16(a.Port())}
}

// SyncServices makes the balanced services and node addresses exactly
// want and nodeIPs. A service keeps its id (and so its clients' affinity)
// while any of its frontends stays. Order keeps every lookup a program
// makes meanwhile answerable: endpoints are written before the services
// that count them, and stale services go before their endpoints.
func (v *Views) SyncServices(want []LBService, nodeIPs []netip.Addr) (LBSync, error) {
	var res LBSync
	for _, s := range want {
		if s.LocalCount > len(s.Backends) || len(s.Backends) > 0xffff {
			return res, fmt.Errorf("service %v: %d local of %d endpoints", s.Frontends, s.LocalCount, len(s.Backends))
		}
	}
	have, err := readAll[loader.LBKey, loader.LBService](v.m.LBServices)
	if err != nil {
		return res, fmt.Errorf("read services: %w", err)
	}
	haveBackends, err := readAll[loader.LBBackendKey, loader.LBBackend](v.m.LBBackends)
	if err != nil {
		return res, fmt.Errorf("read service endpoints: %w", err)
	}

	// Ids: a service keeps the id one of its frontends has, unless another
	// service of want took it first; the rest get the lowest free ones.
	ids := make([]uint32, len(want))
	taken := map[uint32]bool{}
	for i, s := range want {
		for _, key := range s.keys() {
			if old, ok := have[key]; ok && !taken[old.Id] {
				ids[i] = old.Id
				taken[old.Id] = true
				break
			}
		}
	}
	inUse := map[uint32]bool{}
	for _, old := range have {
		inUse[old.Id] = true
	}
	next := uint32(1)
	for i := range want {
		if ids[i] != 0 {
			continue
		}
		for taken[next] || inUse[next] {
			next++
		}
		ids[i] = next
		taken[next] = true
	}

	wantKeys := map[loader.LBKey]bool{}
	wantBackends := map[loader.LBBackendKey]bool{}
	for i, s := range want {
		for slot, b := range s.Backends {
			key := loader.LBBackendKey{Id: ids[i], Slot: uint32(slot)}
			wantBackends[key] = true
			nb := lbBackend(b)
			if old, ok := haveBackends[key]; ok && old == nb {
				continue
			}
			if err := v.m.LBBackends.Put(key, nb); err != nil {
				return res, fmt.Errorf("service endpoint %v: %w", b, err)
			}
			res.Backends++
		}
	}
	for i, s := range want {
		nv := s.value(ids[i])
		for _, key := range s.keys() {
			if wantKeys[key] {
				return res, fmt.Errorf("frontend %s/%d of two services", addrPortOf(key), key.Proto)
			}
			wantKeys[key] = true
			if old, ok := have[key]; ok && old == nv {
				continue
			}
			if err := v.m.LBServices.Put(key, nv); err != nil {
				return res, fmt.Errorf("service %s: %w", addrPortOf(key), err)
			}
			res.Services++
		}
	}
	var errs []error
	for key := range have {
		if !wantKeys[key] {
			errs = append(errs, ignoreMissing(v.m.LBServices.Delete(key)))
			res.Deleted++
		}
	}
	for key := range haveBackends {
		if !wantBackends[key] {
			errs = append(errs, ignoreMissing(v.m.LBBackends.Delete(key)))
			res.Deleted++
		}
	}
	return res, errors.Join(append(errs, v.syncNodeIPs(nodeIPs))...)
}

func addrPortOf(k loader.LBKey) netip.AddrPort {
	return netip.AddrPortFrom(AddrFromBE32(k.Addr), PortFromBE16(k.Port))
}

func (v *Views) syncNodeIPs(want []netip.Addr) error {
	keep := map[uint32]bool{}
	one := uint8(1)
	for _, a := range want {
		if !a.Is4() {
			return fmt.Errorf("node address %v: want IPv4", a)
		}
		keep[BE32(a)] = true
		if err := v.m.LBNodeIPs.Put(BE32(a), one); err != nil {
			return fmt.Errorf("node address %v: %w", a, err)
		}
	}
	have, err := readAll[uint32, uint8](v.m.LBNodeIPs)
	errs := []error{err}
	for ip := range have {
		if !keep[ip] {
			errs = append(errs, ignoreMissing(v.m.LBNodeIPs.Delete(ip)))
		}
	}
	return errors.Join(errs...)
}

// LBServices lists the balanced services, by id, frontends sorted.
func (v *Views) LBServices() ([]LBService, error) {
	byID := map[uint32]*LBService{}
	var (
		k   loader.LBKey
		val loader.LBService
	)
	it := v.m.LBServices.Iterate()
	for it.Next(&k, &val) {
		s := byID[val.Id]
		if s == nil {
			s = &LBService{Proto: k.Proto, LocalCount: int(val.LocalCount), AffinitySeconds: val.AffinityS,
				ExternalLocal: val.Flags&uint32(loader.LBExternalLocal) != 0, InternalLocal: val.Flags&uint32(loader.LBInternalLocal) != 0}
			for slot := range uint32(val.Count) {
				var b loader.LBBackend
				if err := v.m.LBBackends.Lookup(loader.LBBackendKey{Id: val.Id, Slot: slot}, &b); err != nil {
					return nil, fmt.Errorf("service %d slot %d: %w", val.Id, slot, err)
				}
				s.Backends = append(s.Backends, netip.AddrPortFrom(AddrFromBE32(b.Addr), PortFromBE16(b.Port)))
			}
			byID[val.Id] = s
		}
		if k.Scope == uint8(loader.LBScopeNodePort) {
			s.NodePort = PortFromBE16(k.Port)
		} else {
			s.Frontends = append(s.Frontends, addrPortOf(k))
		}
	}
	if err := it.Err(); err != nil {
		return nil, err
	}
	ids := make([]uint32, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]LBService, 0, len(ids))
	for _, id := range ids {
		s := byID[id]
		slices.SortFunc(s.Frontends, func(a, b netip.AddrPort) int { return a.Compare(b) })
		out = append(out, *s)
	}
	return out, nil
}

// PutLBClient lets the sockets of a network namespace (by cookie) reach
// services through the socket hooks.
func (v *Views) PutLBClient(cookie uint64) error {
	return v.m.LBClients.Put(cookie, uint8(1))
}

// DeleteLBClient forgets a network namespace's cookie.
func (v *Views) DeleteLBClient(cookie uint64) error {
	return ignoreMissing(v.m.LBClients.Delete(cookie))
}

// SyncLBClients makes the served network namespaces exactly want.
func (v *Views) SyncLBClients(want []uint64) error {
	keep := map[uint64]bool{}
	var errs []error
	for _, c := range want {
		keep[c] = true
		errs = append(errs, v.PutLBClient(c))
	}
	have, err := readAll[uint64, uint8](v.m.LBClients)
	errs = append(errs, err)
	for c := range have {
		if !keep[c] {
			errs = append(errs, v.DeleteLBClient(c))
		}
	}
	return errors.Join(errs...)
}

// LBClientCount counts the network namespaces whose sockets reach services
// besides the host's.
func (v *Views) LBClientCount() (int, error) {
	have, err := readAll[uint64, uint8](v.m.LBClients)
	return len(have), err
}

// LBNodeIPs lists the node addresses NodePorts answer on, sorted.
func (v *Views) LBNodeIPs() ([]netip.Addr, error) {
	var (
		ip  uint32
		val uint8
		out []netip.Addr
	)
	it := v.m.LBNodeIPs.Iterate()
	for it.Next(&ip, &val) {
		out = append(out, AddrFromBE32(ip))
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out, it.Err()
}

// readAll is every entry of m. Deleting entries while iterating makes the
// kernel's iteration restart or skip, so callers that delete read first.
func readAll[K comparable, V any](m *ebpf.Map) (map[K]V, error) {
	out := map[K]V{}
	var (
		k K
		v V
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		out[k] = v
	}
	return out, it.Err()
}
