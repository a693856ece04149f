package resolver

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// NameTable is what the resolver answers: for each user-defined network,
// each name (endpoint names without a connected network's suffix, and
// aliases, lower case; on an overlay network also the names of its
// endpoints on other hosts) and its addresses on that network.
type NameTable map[string]map[string][]netip.Addr

// Network is a user-defined network the resolver serves, on its gateway
// (and on a dual-stack network's IPv6 gateway too).
type Network struct {
	Name     string
	Gateway  netip.Addr
	Gateway6 netip.Addr
	Internal bool // its containers' unknown names are not forwarded
}

// Member is an endpoint as the resolver sees it.
type Member struct {
	Name    string // without a connected network's suffix
	Network string
	// IP is its address on Network; zero for an endpoint that is not
	// named (not a bridge endpoint). IP6, on a dual-stack network, its
	// IPv6 one: AAAA answers, PTR, and an asker's source.
	IP      netip.Addr
	IP6     netip.Addr
	Aliases []string
	Netns   uint64       // the endpoints of one namespace ask as one
	DNS     []netip.Addr // its --dns servers
}

// RemoteName is an endpoint of an overlay network on another host, as the
// cluster names it.
type RemoteName struct {
	Name string
	IP   netip.Addr
}

// Index is a snapshot of the names the resolver answers and who may ask.
type Index struct {
	networks map[string]Network
	names    NameTable
	byIP     map[string]map[netip.Addr]Member // network -> address -> endpoint
	byNetns  map[uint64][]Member
	gateways map[netip.Addr]bool // every network's gateway: the host's own addresses
	upstream []netip.AddrPort    // the host's resolvers
	// remote: overlay endpoints on other hosts, network -> address ->
	// name, for PTR. They are never askers: the resolver listens on this
	// host's gateways, for this host's containers.
	remote map[string]map[netip.Addr]string
}

// NewIndex indexes the user-defined networks nets and their members;
// gateways are every network's (the default's too: host addresses), remote
// the names of overlay endpoints on other hosts by network, and host the
// host's resolvers, to forward to (a gateway among them is skipped: never
// forward to ourselves).
func NewIndex(gateways []netip.Addr, nets []Network, members []Member, remote map[string][]RemoteName, host []netip.Addr) *Index {
	x := &Index{networks: map[string]Network{}, names: NameTable{}, byIP: map[string]map[netip.Addr]Member{}, byNetns: map[uint64][]Member{}, gateways: map[netip.Addr]bool{}}
	for _, g := range gateways {
		x.gateways[g] = true
	}
	for _, n := range nets {
		x.networks[n.Name] = n
		x.names[n.Name] = map[string][]netip.Addr{}
		x.byIP[n.Name] = map[netip.Addr]Member{}
	}
	for _, e := range members {
		x.byNetns[e.Netns] = append(x.byNetns[e.Netns], e)
		names, ok := x.names[e.Network]
		if !ok || (!e.IP.IsValid() && !e.IP6.IsValid()) {
			continue
		}
		for _, ip := range []netip.Addr{e.IP, e.IP6} {
			if !ip.IsValid() {
				continue
			}
			x.byIP[e.Network][ip] = e
			for _, name := range append([]string{e.Name}, e.Aliases...) {
				name = strings.ToLower(name)
				if !slices.Contains(names[name], ip) {
					names[name] = append(names[name], ip)
				}
			}
		}
	}
	x.addRemoteNames(remote)
	for _, a := range host {
		if !x.gateways[a] {
			x.upstream = append(x.upstream, netip.AddrPortFrom(a, 53))
		}
	}
	return x
}

// Names is the index's name table (not to be modified).
func (x *Index) Names() NameTable { return x.names }

// addRemoteNames adds the remote names to the index of the networks it
// resolves: their names where no local endpoint has the name (local names
// win), and their addresses for PTR. Names a DNS answer could not carry are
// skipped (the cluster is written by every host).
func (x *Index) addRemoteNames(byNet map[string][]RemoteName) {
	x.remote = map[string]map[netip.Addr]string{}
	for network, list := range byNet {
		names, ok := x.names[network]
		if !ok {
			continue // not a network of this host
		}
		add := map[string][]netip.Addr{}
		x.remote[network] = map[netip.Addr]string{}
		for _, r := range list {
			name, _ := strings.CutSuffix(strings.ToLower(r.Name), "."+network)
			if !r.IP.IsValid() || ValidName(name) != nil {
				continue
			}
			if _, local := x.byIP[network][r.IP]; !local {
				x.remote[network][r.IP] = name
			}
			if _, local := names[name]; !local && !slices.Contains(add[name], r.IP) {
				add[name] = append(add[name], r.IP)
			}
		}
		for name, ips := range add {
			names[name] = ips
		}
	}
}

// Listen is where the resolver serves: each user-defined network's
// gateways, address -> network.
func (x *Index) Listen() map[netip.Addr]string {
	out := map[netip.Addr]string{}
	for name, n := range x.networks {
		for _, g := range []netip.Addr{n.Gateway, n.Gateway6} {
			if g.IsValid() { // one of them: an IPv6-only network has no IPv4 gateway
				out[g] = name
			}
		}
	}
	return out
}

// Serves reports whether network's resolver answers src: the network's own
// endpoints, and the host itself. Anyone else (a neighbour routed to the
// subnet through the host, a container of another network, which reaches
// every gateway) would learn the network's names and addresses and get open
// recursion. A host process asking a gateway speaks from that gateway's
// address (the kernel's source for a local destination), and no other host
// can use a host address as its source: the kernel drops such martians.
func (x *Index) Serves(network string, src netip.Addr) bool {
	_, member := x.byIP[network][src]
	return member || x.gateways[src]
}

// Lookup answers a query on network q.Network, as Docker's embedded DNS:
// names of every network the asking container is on (the asking network
// first), NAME.NETWORK too, PTR for their addresses; anything else goes to
// the container's --dns servers or the host's, except from a container only
// on --internal networks.
func (x *Index) Lookup(q Query) Answer {
	nets := []string{q.Network}
	var asker []Member
	if ep, ok := x.byIP[q.Network][q.Src]; ok {
		asker = x.byNetns[ep.Netns]
		for _, e := range asker {
			if _, user := x.networks[e.Network]; user && !slices.Contains(nets, e.Network) {
				nets = append(nets, e.Network)
			}
		}
	} else if !x.gateways[q.Src] {
		// Not the network's and not the host (Serves refuses them
		// first): it learns nothing of this network.
		return Answer{}
	}
	if q.Type == dns.TypePTR && q.ReverseIP.IsValid() {
		for _, n := range nets {
			if e, ok := x.byIP[n][q.ReverseIP]; ok {
				return Answer{Known: true, Names: []string{e.Name + "." + n}}
			}
		}
		for _, n := range nets {
			if name, ok := x.remote[n][q.ReverseIP]; ok {
				return Answer{Known: true, Names: []string{name + "." + n}}
			}
		}
	}
	for _, n := range nets {
		name := q.Name
		if ips, ok := x.names[n][name]; ok {
			return Answer{Known: true, IPs: ips}
		}
		if base, ok := strings.CutSuffix(name, "."+n); ok {
			if ips, ok := x.names[n][base]; ok {
				return Answer{Known: true, IPs: ips}
			}
		}
	}
	internal := true
	for _, n := range nets {
		internal = internal && x.networks[n].Internal
	}
	if internal {
		return Answer{}
	}
	for _, e := range asker {
		if len(e.DNS) > 0 {
			var up []netip.AddrPort
			for _, a := range e.DNS {
				up = append(up, netip.AddrPortFrom(a, 53))
			}
			return Answer{Upstream: up}
		}
	}
	return Answer{Upstream: x.upstream}
}

// ValidName checks a name (an alias, an --add-host name, a remote name)
// is one a DNS answer and /etc/hosts can carry.
func ValidName(n string) error {
	if n == "" || len(n) > 253 {
		return errors.New("a name must have 1 to 253 characters")
	}
	for _, label := range strings.Split(n, ".") {
		if label == "" || len(label) > 63 {
			return errors.New("empty or too long label")
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("character %q not allowed in a name", c)
			}
		}
	}
	return nil
}
