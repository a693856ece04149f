package datapath

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/ebpfnet/ebpfnet/resolver"
)

// NameTable is what the embedded resolver answers: for each user-defined
// network, each name (endpoint names without a connected network's suffix,
// and aliases, lower case; on an overlay network also the names of its
// endpoints on other hosts, remotenames.go) and its addresses on that
// network.
type NameTable map[string]map[string][]netip.Addr

// Names returns the instance's name table. The default network has none:
// as in Docker, only user-defined networks resolve container names.
func (i *Instance) Names() (NameTable, error) {
	idx, err := i.loadDNSIndex()
	if err != nil {
		return nil, err
	}
	return idx.names, nil
}

// dnsIndex is a snapshot of the store for the resolver.
type dnsIndex struct {
	networks map[string]Network
	names    NameTable
	byIP     map[string]map[netip.Addr]Endpoint // network -> address -> endpoint
	byNetns  map[uint64][]Endpoint
	gateways map[netip.Addr]bool // every network's gateway: the host's own addresses
	upstream []netip.AddrPort    // the host's resolvers
	// remote: overlay endpoints on other hosts, network -> address ->
	// name, for PTR. They are never askers: the resolver listens on this
	// host's gateways, for this host's containers.
	remote    map[string]map[netip.Addr]string
	remoteGen uint64 // the generation of the remote names indexed
}

func (i *Instance) loadDNSIndex() (*dnsIndex, error) {
	var nets []Network
	var eps []Endpoint
	err := i.withStore(func(st *store) (err error) {
		if nets, err = st.networks(); err != nil {
			return err
		}
		eps, err = st.endpoints()
		return err
	})
	if err != nil {
		return nil, err
	}
	idx := &dnsIndex{networks: map[string]Network{}, names: NameTable{}, byIP: map[string]map[netip.Addr]Endpoint{}, byNetns: map[uint64][]Endpoint{}, gateways: map[netip.Addr]bool{}}
	for _, n := range nets {
		idx.gateways[n.Gateway] = true
		if n.Name == DefaultNetwork || !n.Gateway.IsValid() {
			continue
		}
		idx.networks[n.Name] = n
		idx.names[n.Name] = map[string][]netip.Addr{}
		idx.byIP[n.Name] = map[netip.Addr]Endpoint{}
	}
	for _, e := range eps {
		idx.byNetns[e.NetnsIno] = append(idx.byNetns[e.NetnsIno], e)
		names, ok := idx.names[e.Network]
		if e.Mode != ModeBridge || !ok || !e.IP.IsValid() {
			continue
		}
		idx.byIP[e.Network][e.IP] = e
		for _, name := range append([]string{baseName(e)}, e.Aliases...) {
			name = strings.ToLower(name)
			if !slices.Contains(names[name], e.IP) {
				names[name] = append(names[name], e.IP)
			}
		}
	}
	var remote map[string][]RemoteName
	remote, idx.remoteGen = i.remote.snapshot()
	idx.addRemoteNames(remote)
	rc, err := ReadResolvConf(HostResolvConf)
	if err != nil {
		return nil, err
	}
	for _, a := range rc.Nameservers {
		if !idx.gateways[a] { // never forward to ourselves
			idx.upstream = append(idx.upstream, netip.AddrPortFrom(a, 53))
		}
	}
	return idx, nil
}

// listen is where the resolver serves: each user-defined network's gateway.
func (x *dnsIndex) listen() map[string]netip.Addr {
	out := map[string]netip.Addr{}
	for name, n := range x.networks {
		out[name] = n.Gateway
	}
	return out
}

// serves reports whether network's resolver answers src: the network's own
// endpoints, and the host itself. Anyone else (a neighbour routed to the
// subnet through the host, a container of another network, which reaches
// every gateway) would learn the network's names and addresses and get open
// recursion. A host process asking a gateway speaks from that gateway's
// address (the kernel's source for a local destination), and no other host
// can use a host address as its source: the kernel drops such martians.
func (x *dnsIndex) serves(network string, src netip.Addr) bool {
	_, member := x.byIP[network][src]
	return member || x.gateways[src]
}

// lookup answers a query on network q.Network, as Docker's embedded DNS:
// names of every network the asking container is on (the asking network
// first), NAME.NETWORK too, PTR for their addresses; anything else goes to
// the container's --dns servers or the host's, except from a container only
// on --internal networks.
func (x *dnsIndex) lookup(q resolver.Query) resolver.Answer {
	nets := []string{q.Network}
	var asker []Endpoint
	if ep, ok := x.byIP[q.Network][q.Src]; ok {
		asker = x.byNetns[ep.NetnsIno]
		for _, e := range asker {
			if _, user := x.networks[e.Network]; user && !slices.Contains(nets, e.Network) {
				nets = append(nets, e.Network)
			}
		}
	} else if !x.gateways[q.Src] {
		// Not the network's and not the host (serves refuses them
		// first): it learns nothing of this network.
		return resolver.Answer{}
	}
	if q.Type == dns.TypePTR && q.ReverseIP.IsValid() {
		for _, n := range nets {
			if e, ok := x.byIP[n][q.ReverseIP]; ok {
				return resolver.Answer{Known: true, Names: []string{baseName(e) + "." + n}}
			}
		}
		for _, n := range nets {
			if name, ok := x.remote[n][q.ReverseIP]; ok {
				return resolver.Answer{Known: true, Names: []string{name + "." + n}}
			}
		}
	}
	for _, n := range nets {
		name := q.Name
		if ips, ok := x.names[n][name]; ok {
			return resolver.Answer{Known: true, IPs: ips}
		}
		if base, ok := strings.CutSuffix(name, "."+n); ok {
			if ips, ok := x.names[n][base]; ok {
				return resolver.Answer{Known: true, IPs: ips}
			}
		}
	}
	internal := true
	for _, n := range nets {
		internal = internal && x.networks[n].Internal
	}
	if internal {
		return resolver.Answer{}
	}
	for _, e := range asker {
		if len(e.DNS) > 0 {
			var up []netip.AddrPort
			for _, a := range e.DNS {
				up = append(up, netip.AddrPortFrom(a, 53))
			}
			return resolver.Answer{Upstream: up}
		}
	}
	return resolver.Answer{Upstream: x.upstream}
}

// serveDNS runs the embedded resolver until ctx ends: it follows the store
// (networks created or removed, endpoints attached) and the remote names
// (SetRemoteNames) by checking every second, and at once when a name is
// not found.
func (i *Instance) serveDNS(ctx context.Context, port int) {
	s := &resolver.Server{Log: i.log, Port: port}
	var (
		mu      sync.Mutex
		idx     = &dnsIndex{}
		stamp   string
		checked time.Time
		loaded  time.Time // when the index's last read of the store began
	)
	dbPath := filepath.Join(i.cfg.StateDir, "state.db")
	version := func() string {
		fi, err := os.Stat(dbPath)
		if err != nil {
			return ""
		}
		return fmt.Sprint(fi.ModTime().UnixNano(), fi.Size())
	}
	// current is what the index must have been read from to be up to
	// date: the store's version and the remote names' generation.
	current := func() string {
		_, gen := i.remote.snapshot()
		return fmt.Sprint(version(), "/", gen)
	}
	// refresh reloads the index if the store or the remote names changed
	// (or force); callers hold mu.
	refresh := func(force bool) {
		checked = time.Now()
		if v := current(); !force && v == stamp {
			s.Sync(idx.listen()) // retries a listener that could not bind
			return
		}
		loaded = time.Now()
		next, err := i.loadDNSIndex()
		if err != nil {
			i.log.Warn("dns: read names", "err", err)
			return
		}
		// Reading the store writes it (bbolt commits): note the version
		// after reading; and the generation of the remote names read,
		// so a change since is read at the next check.
		idx, stamp = next, fmt.Sprint(version(), "/", next.remoteGen)
		s.Sync(idx.listen())
	}
	s.Serves = func(network string, src netip.Addr) bool {
		asked := time.Now()
		mu.Lock()
		defer mu.Unlock()
		if idx.serves(network, src) {
			return true
		}
		// A container attached a moment ago may not be in the index yet,
		// and refusing it would fail its first lookups: decide on an index
		// read after the query came. Strangers asking in a flood share
		// the reads, at most ten a second.
		if !loaded.After(asked) {
			time.Sleep(time.Until(loaded.Add(100 * time.Millisecond)))
			refresh(true)
		}
		return idx.serves(network, src)
	}
	s.Lookup = func(q resolver.Query) resolver.Answer {
		mu.Lock()
		defer mu.Unlock()
		a := idx.lookup(q)
		if !a.Known && q.Type != dns.TypePTR && time.Since(checked) > 100*time.Millisecond {
			refresh(false)
			a = idx.lookup(q)
		}
		return a
	}
	mu.Lock()
	refresh(true)
	mu.Unlock()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	full := time.NewTicker(30 * time.Second)
	defer full.Stop()
	for {
		select {
		case <-ctx.Done():
			s.Close()
			return
		case <-tick.C:
			mu.Lock()
			refresh(false)
			mu.Unlock()
		case <-full.C:
			// The host's resolv.conf may change, and a listener that could
			// not bind is retried.
			mu.Lock()
			refresh(true)
			mu.Unlock()
		}
	}
}
