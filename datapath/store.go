package datapath

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketNetworks  = []byte("networks")
	bucketEndpoints = []byte("endpoints")
	bucketMeta      = []byte("meta")
	// bucketIntents holds what a running command is about to make in the
	// kernel (intent.go): a crash leaves it for the next command to undo.
	bucketIntents = []byte("intents")
	// bucketFirewall holds the user firewall's rules (firewall.go), keyed
	// by scope and source.
	bucketFirewall = []byte("firewall")
	keyNextNetID   = []byte("next_network_id")
	keyStoreID     = []byte("store_id")
)

// stateBuckets are the buckets every store has (latency statistics are
// made on first use).
var stateBuckets = [][]byte{bucketNetworks, bucketEndpoints, bucketMeta, bucketIntents, bucketFirewall, bucketRuntimeSockets}

// store is the instance's state: an embedded bbolt database. bbolt takes an
// exclusive file lock, so ebpfnet commands on one instance are serialized.
type store struct {
	db *bolt.DB
	// id tells this store from one made anew at the same path (epcache.go).
	id string
	// eps are the endpoint records decoded in this session, kept in step
	// with its writes (nil: not read): an attach lists them more than once,
	// and with 1000 endpoints each decode is milliseconds.
	eps []Endpoint
}

func openStore(dir string) (*store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	db, err := bolt.Open(filepath.Join(dir, "state.db"), 0o600, &bolt.Options{Timeout: 30 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open state %s: %w", dir, err)
	}
	buckets := stateBuckets
	var id []byte
	db.View(func(tx *bolt.Tx) error {
		if meta := tx.Bucket(bucketMeta); meta != nil {
			id = slices.Clone(meta.Get(keyStoreID))
		}
		for _, b := range buckets {
			if tx.Bucket(b) == nil {
				id = nil
			}
		}
		return nil
	})
	if id == nil { // a write transaction costs two fsyncs: only when needed
		err = db.Update(func(tx *bolt.Tx) error {
			for _, b := range buckets {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			meta := tx.Bucket(bucketMeta)
			if id = slices.Clone(meta.Get(keyStoreID)); id == nil {
				id = []byte(randomHex(8))
				return meta.Put(keyStoreID, id)
			}
			return nil
		})
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	return &store{db: db, id: string(id)}, nil
}

// updateUnsynced is a write transaction without fsync, for what only has
// to survive the process, not the machine: intents (they guard against a
// command killed half way; the kernel state they describe does not survive
// a reboot either) and latency statistics. The page cache keeps them across
// a crash of the process. Records of networks and endpoints are synced.
func (s *store) updateUnsynced(fn func(*bolt.Tx) error) error {
	s.db.NoSync = true
	defer func() { s.db.NoSync = false }()
	return s.db.Update(fn)
}

func (s *store) close() error { return s.db.Close() }

func get[T any](s *store, bucket []byte, key string) (T, bool, error) {
	var v T
	var found bool
	err := s.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucket).Get([]byte(key))
		if raw == nil {
			return nil
		}
		found = true
		return json.Unmarshal(raw, &v)
	})
	return v, found, err
}

func list[T any](s *store, bucket []byte) ([]T, error) {
	var out []T
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(_, raw []byte) error {
			var v T
			if err := json.Unmarshal(raw, &v); err != nil {
				return err
			}
			out = append(out, v)
			return nil
		})
	})
	return out, err
}

// putDone writes a record and, in the same transaction (one fsync),
// removes the intent of the command that made it: the record and the end of
// the intent are one atomic step.
func putDone(s *store, bucket []byte, key string, v any, kind string) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucket).Put([]byte(key), raw); err != nil {
			return err
		}
		return tx.Bucket(bucketIntents).Delete(intentKey(kind, key))
	})
	s.wrote(bucket, key, raw, err)
	return err
}

// delDone deletes a record and, in the same transaction, the intent of
// the removal (kind) that deletes it: the record's end and the intent's
// are one atomic step, as in putDone.
func delDone(s *store, bucket []byte, key string, kind string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucket).Delete([]byte(key)); err != nil {
			return err
		}
		return tx.Bucket(bucketIntents).Delete(intentKey(kind, key))
	})
	s.wrote(bucket, key, nil, err)
	return err
}

func (s *store) network(name string) (Network, bool, error) {
	return get[Network](s, bucketNetworks, name)
}
func (s *store) networks() ([]Network, error) { return list[Network](s, bucketNetworks) }
func (s *store) putNetwork(n Network) error {
	return putDone(s, bucketNetworks, n.Name, n, intentNetwork)
}
func (s *store) deleteNetwork(name string) error {
	return delDone(s, bucketNetworks, name, intentNetworkRemove)
}

func (s *store) endpoint(name string) (Endpoint, bool, error) {
	return get[Endpoint](s, bucketEndpoints, name)
}
func (s *store) endpoints() ([]Endpoint, error) {
	if s.eps == nil {
		read := timeStep("store read")
		eps, err := list[Endpoint](s, bucketEndpoints)
		read()
		if err != nil {
			return nil, err
		}
		s.eps = append([]Endpoint{}, eps...) // non-nil: read, even when empty
	}
	if len(s.eps) == 0 {
		return nil, nil
	}
	return slices.Clone(s.eps), nil // callers may reorder or cut their copy
}

// empty reports whether a bucket has no record, without decoding any.
func (s *store) empty(bucket []byte) (bool, error) {
	empty := true
	err := s.db.View(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucket).Cursor().First()
		empty = k == nil
		return nil
	})
	return empty, err
}
func (s *store) putEndpoint(e Endpoint) error {
	return putDone(s, bucketEndpoints, e.Name, e, intentAttach)
}
func (s *store) deleteEndpoint(name string) error {
	return delDone(s, bucketEndpoints, name, intentDetach)
}

// nextNetworkID hands out datapath network ids; they are never reused within
// an instance so a stale map entry can never alias a new network.
func (s *store) nextNetworkID() (uint32, error) {
	var id uint32
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMeta)
		if raw := b.Get(keyNextNetID); raw != nil {
			if err := json.Unmarshal(raw, &id); err != nil {
				return err
			}
		}
		raw, _ := json.Marshal(id + 1)
		return b.Put(keyNextNetID, raw)
	})
	return id, err
}
