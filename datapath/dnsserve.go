package datapath

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/ebpfnet/ebpfnet/resolver"
)

// Names returns the instance's name table: what the embedded resolver
// answers. The default network has none: as in Docker, only user-defined
// networks resolve container names.
func (i *Instance) Names() (resolver.NameTable, error) {
	idx, _, err := dnsSource{i}.Load()
	if err != nil {
		return nil, err
	}
	return idx.Names(), nil
}

// dnsSource is the instance as the resolver follows it (resolver.Source):
// the store's networks and endpoints, the remote names and the host's
// resolvers.
type dnsSource struct{ i *Instance }

// storeVersion changes with every commit to the store.
func (d dnsSource) storeVersion() string {
	fi, err := os.Stat(filepath.Join(d.i.cfg.StateDir, "state.db"))
	if err != nil {
		return ""
	}
	return fmt.Sprint(fi.ModTime().UnixNano(), fi.Size())
}

// Version is the store's version and the remote names' generation.
func (d dnsSource) Version() string {
	_, gen := d.i.remote.snapshot()
	return fmt.Sprint(d.storeVersion(), "/", gen)
}

// Load reads the index. Reading the store writes it (bbolt commits): the
// version is noted after reading, with the generation of the remote names
// read, so a change since is read at the next check.
func (d dnsSource) Load() (*resolver.Index, string, error) {
	var nets []Network
	var eps []Endpoint
	err := d.i.withStore(func(st *store) (err error) {
		if nets, err = st.networks(); err != nil {
			return err
		}
		eps, err = st.endpoints()
		return err
	})
	if err != nil {
		return nil, "", err
	}
	var gateways []netip.Addr
	var user []resolver.Network
	for _, n := range nets {
		for _, g := range []netip.Addr{n.Gateway, n.Gateway6} {
			if g.IsValid() {
				gateways = append(gateways, g)
			}
		}
		if n.Name != DefaultNetwork && n.resolver().IsValid() {
			user = append(user, resolver.Network{Name: n.Name, Gateway: n.Gateway, Gateway6: n.Gateway6, Internal: n.Internal})
		}
	}
	members := make([]resolver.Member, 0, len(eps))
	for _, e := range eps {
		m := resolver.Member{Name: baseName(e), Network: e.Network, Aliases: e.Aliases, Netns: e.NetnsIno, DNS: e.DNS}
		if e.Mode == ModeBridge {
			m.IP, m.IP6 = e.IP, e.IP6
		}
		members = append(members, m)
	}
	remote, gen := d.i.remote.snapshot()
	rc, err := resolver.ReadResolvConf(HostResolvConf)
	if err != nil {
		return nil, "", err
	}
	idx := resolver.NewIndex(gateways, user, members, remote, rc.Nameservers)
	return idx, fmt.Sprint(d.storeVersion(), "/", gen), nil
}

// serveDNS runs the embedded resolver until ctx ends: it follows the store
// (networks created or removed, endpoints attached) and the remote names
// (SetRemoteNames).
func (i *Instance) serveDNS(ctx context.Context, port int) {
	s := &resolver.Server{Log: i.log, Port: port}
	s.Follow(ctx, dnsSource{i})
}
