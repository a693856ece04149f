package datapath

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
)

// endpointCache keeps a long-lived process's (the daemon's) decoded endpoint
// records from one store session to the next. Without it every attach
// through the API decodes every record: some 5 ms at 1000 endpoints
// (BenchmarkEndpointsDecode). The records are kept with the store's id and
// the id of its last transaction. The kept slice is never written in place
// (a session's write makes a new one, see wrote), so a session and the
// cache share it without copying (at 1000 endpoints an attach and a detach
// copied it five times, 1.9 MB; now twice, one per record written:
// BenchmarkAttachSession).
// bbolt numbers transactions in sequence
// and a session holds the file's lock, so a session that finds the same
// ids finds the records as they were; a write of anything by another
// process, or a store made anew, makes the next session decode them again.
type endpointCache struct {
	mu  sync.Mutex
	at  storeVersion
	eps []Endpoint // nil: nothing kept
}

// storeVersion names a state of a store.
type storeVersion struct {
	id   string // the store's random id (keyStoreID)
	txid int    // its last committed transaction
}

// load gives the session the kept records if the store is as they were.
func (c *endpointCache) load(st *store) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.eps == nil {
		return
	}
	if v, err := st.version(); err == nil && v == c.at {
		st.eps, st.epsOwn = c.eps, false // shared: wrote copies before it changes them
	}
}

// save keeps what the session has decoded (and kept in step with its own
// writes), at the store's state as the session leaves it.
func (c *endpointCache) save(st *store) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.eps = nil
	if st.eps == nil {
		return
	}
	if v, err := st.version(); err == nil {
		c.at, c.eps = v, st.eps
	}
}

// version is the store's id and last committed transaction.
func (s *store) version() (storeVersion, error) {
	txid, err := s.TxID()
	return storeVersion{id: s.ID(), txid: txid}, err
}

// wrote keeps the session's decoded endpoints in step with a write of the
// record key of bucket (raw nil: deleted). After a failed write, or one it
// cannot follow, it forgets them. It makes a new slice rather than change
// the one it has, which may be shared with the cache (endpointCache) or
// a caller's view, unless it made that slice itself and no one else holds
// it (epsOwn).
func (s *store) wrote(bucket []byte, key string, raw []byte, err error) {
	if string(bucket) != string(bucketEndpoints) || s.eps == nil {
		return
	}
	if err != nil {
		s.eps = nil
		return
	}
	own := s.epsOwn
	s.epsOwn = true // every branch below makes a new slice, or drops it
	// Records are in key order (bbolt's), and an endpoint's key is its name.
	k, found := slices.BinarySearchFunc(s.eps, key, func(e Endpoint, key string) int { return strings.Compare(e.Name, key) })
	if raw == nil {
		if found {
			// Non-nil even when empty: nil would mean not read.
			out := make([]Endpoint, 0, len(s.eps)-1)
			s.eps = append(append(out, s.eps[:k]...), s.eps[k+1:]...)
		}
		return
	}
	var e Endpoint
	if json.Unmarshal(raw, &e) != nil || e.Name != key {
		s.eps = nil
		return
	}
	if found && own {
		s.eps[k] = e // no one else holds this slice
	} else if found {
		s.eps = slices.Concat(s.eps[:k], []Endpoint{e}, s.eps[k+1:])
	} else {
		s.eps = slices.Concat(s.eps[:k], []Endpoint{e}, s.eps[k:])
	}
}
