package datapath

import (
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/ebpfnet/ebpfnet/resolver"
)

// Names of overlay endpoints on other hosts. The store holds only this
// host's endpoints, so the embedded resolver would know only the local
// half of an overlay network. The daemon's overlay syncer, which follows
// the cluster, hands the remote endpoints' names to the instance
// (SetRemoteNames) and the resolver answers A and PTR queries for them, to
// the network's containers on this host, as it answers for local names.
// They live in the daemon's memory only: the syncer replaces them whole on
// every sync, and a daemon that restarts has them again at its first sync.
//
// They are not written into containers' /etc/hosts: that file names only
// the container itself (its own addresses and aliases, as Docker's), never
// its peers, local or remote; peers are found through DNS, which follows
// the cluster as it changes, where a file would be stale as soon as a
// remote container came or went.

// RemoteName is an endpoint of an overlay network on another host, as the
// cluster names it (the overlay syncer hands them over).
type RemoteName = resolver.RemoteName

// remoteNames are the names SetRemoteNames gave, per overlay network, and
// a generation that changes when they change (the resolver reloads then).
type remoteNames struct {
	mu    sync.Mutex
	byNet map[string][]RemoteName
	gen   uint64
}

// SetRemoteNames replaces the names of the remote endpoints of every
// overlay network (network -> its endpoints on other hosts) with byNetwork:
// a network left out has none. The embedded resolver answers them to
// containers of that network on this host; a local endpoint's name or alias
// wins over a remote endpoint of the same name.
func (i *Instance) SetRemoteNames(byNetwork map[string][]RemoteName) {
	next := map[string][]RemoteName{}
	for n, names := range byNetwork {
		if len(names) == 0 {
			continue
		}
		names = slices.Clone(names)
		slices.SortFunc(names, func(a, b RemoteName) int {
			if c := a.IP.Compare(b.IP); c != 0 {
				return c
			}
			return strings.Compare(a.Name, b.Name)
		})
		next[n] = slices.Compact(names)
	}
	r := &i.remote
	r.mu.Lock()
	defer r.mu.Unlock()
	if maps.EqualFunc(r.byNet, next, slices.Equal) {
		return // the syncer repeats itself every interval: no reload
	}
	r.byNet = next
	r.gen++
}

// snapshot returns the names (not to be modified) and their generation.
func (r *remoteNames) snapshot() (map[string][]RemoteName, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byNet, r.gen
}
