package resolver

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Source is what a following server reads its names from (datapath's
// Instance, through a small adapter).
type Source interface {
	// Version changes whenever the index Load returns would differ.
	Version() string
	// Load reads the index and the version it was read at.
	Load() (*Index, string, error)
}

// Follow serves src's names until ctx ends: it follows src by checking its
// version every second, and at once when a name is not found, and reloads
// everything every 30 seconds (the host's resolv.conf may change, and a
// listener that could not bind is retried). It sets s.Serves and s.Lookup.
func (s *Server) Follow(ctx context.Context, src Source) {
	var (
		mu      sync.Mutex
		idx     = NewIndex(nil, nil, nil, nil, nil)
		stamp   string
		checked time.Time
		loaded  time.Time // when the index's last read began
	)
	// refresh reloads the index if src changed (or force); callers hold mu.
	refresh := func(force bool) {
		checked = time.Now()
		if !force && src.Version() == stamp {
			s.Sync(idx.Listen()) // retries a listener that could not bind
			return
		}
		loaded = time.Now()
		next, v, err := src.Load()
		if err != nil {
			s.log().Warn("dns: read names", "err", err)
			return
		}
		idx, stamp = next, v
		s.Sync(idx.Listen())
	}
	s.Serves = func(network string, from netip.Addr) bool {
		asked := time.Now()
		mu.Lock()
		defer mu.Unlock()
		if idx.Serves(network, from) {
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
		return idx.Serves(network, from)
	}
	s.Lookup = func(q Query) Answer {
		mu.Lock()
		defer mu.Unlock()
		a := idx.Lookup(q)
		if !a.Known && q.Type != dns.TypePTR && time.Since(checked) > 100*time.Millisecond {
			refresh(false)
			a = idx.Lookup(q)
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
			mu.Lock()
			refresh(true)
			mu.Unlock()
		}
	}
}
