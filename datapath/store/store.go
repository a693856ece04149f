// Package store is the control plane's state: one embedded bbolt database
// per instance, its buckets, generic JSON records, the intents that make
// multi-step kernel changes crash consistent, and the network id counter.
// It knows the layout, not the records' types: datapath keeps networks,
// endpoints, firewall rules, runtime sockets and latency histograms here.
// bbolt takes an exclusive file lock, so commands on one instance are
// serialized. Only datapath imports it (internal/layering).
package store

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// The buckets.
var (
	Networks  = []byte("networks")
	Endpoints = []byte("endpoints")
	Meta      = []byte("meta")
	// Intents holds what a running command is about to make in the kernel
	// (datapath/intent.go): a crash leaves it for the next command to undo.
	Intents = []byte("intents")
	// Firewall holds the user firewall's rules, keyed by scope and source.
	Firewall = []byte("firewall")
	// RuntimeSockets maps a ContainerID to the inodes of the host sockets
	// its runtime held for it (datapath/runtimesockets.go).
	RuntimeSockets = []byte("runtime_sockets")
	// Latency holds the control plane's latency histograms; it is made on
	// first use.
	Latency = []byte("latency")
)

// Keys of Meta.
var (
	keyNextNetID = []byte("next_network_id")
	keyStoreID   = []byte("store_id")
	// KeyOwner records the network namespace the state belongs to.
	KeyOwner = []byte("owner")
)

// State are the buckets every store has.
var State = [][]byte{Networks, Endpoints, Meta, Intents, Firewall, RuntimeSockets}

// DB is an instance's store.
type DB struct {
	db *bolt.DB
	// writeMu serializes write transactions with the NoSync setting they
	// commit under: bbolt reads its one NoSync flag at commit, and a
	// synced transaction may now run on its own goroutine
	// (PutPendingAsync) while the caller goes on.
	writeMu sync.Mutex
	// id tells this store from one made anew at the same path.
	id string
	// OnWrite, if set, hears of every record PutDone and DelDone write
	// (raw nil: deleted), with the write's error: datapath keeps its
	// decoded endpoints in step with it.
	OnWrite func(bucket []byte, key string, raw []byte, err error)
}

// Open opens (or makes) the store in dir, with every bucket of State.
func Open(dir string) (*DB, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	db, err := bolt.Open(filepath.Join(dir, "state.db"), 0o600, &bolt.Options{Timeout: 30 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open state %s: %w", dir, err)
	}
	var id []byte
	db.View(func(tx *bolt.Tx) error {
		if meta := tx.Bucket(Meta); meta != nil {
			id = slices.Clone(meta.Get(keyStoreID))
		}
		for _, b := range State {
			if tx.Bucket(b) == nil {
				id = nil
			}
		}
		return nil
	})
	if id == nil { // a write transaction costs two fsyncs: only when needed
		err = db.Update(func(tx *bolt.Tx) error {
			for _, b := range State {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			meta := tx.Bucket(Meta)
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
	return &DB{db: db, id: string(id)}, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// ID is the store's random id, made with it.
func (s *DB) ID() string { return s.id }

// Close releases the store and its file lock.
func (s *DB) Close() error { return s.db.Close() }

// View runs fn in a read transaction.
func (s *DB) View(fn func(*bolt.Tx) error) error { return s.db.View(fn) }

// Update runs fn in a write transaction, synced to disk.
func (s *DB) Update(fn func(*bolt.Tx) error) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.db.Update(fn)
}

// UpdateUnsynced is a write transaction without fsync, for what only has
// to survive the process, not the machine: intents (they guard against a
// command killed half way; the kernel state they describe does not survive
// a reboot either) and latency statistics. The page cache keeps them across
// a crash of the process. Records of networks and endpoints are synced
// (an attach's completion of its synced record is not: FinishPending).
func (s *DB) UpdateUnsynced(fn func(*bolt.Tx) error) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	synced := !s.db.NoSync
	s.db.NoSync = true
	defer func() { s.db.NoSync = !synced }()
	return s.db.Update(fn)
}

// SetNoSync turns fsync off (or on again) for every write: for tests and
// benchmarks that fill a store.
func (s *DB) SetNoSync(on bool) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.db.NoSync = on
}

// TxID is the id of the last committed transaction: bbolt numbers them in
// sequence, so with ID it names a state of the store.
func (s *DB) TxID() (int, error) {
	var id int
	err := s.db.View(func(tx *bolt.Tx) error {
		id = tx.ID()
		return nil
	})
	return id, err
}

// Get decodes the record key of bucket; false if there is none.
func Get[T any](s *DB, bucket []byte, key string) (T, bool, error) {
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

// List decodes every record of bucket, in key order.
func List[T any](s *DB, bucket []byte) ([]T, error) {
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

// PutDone writes a record and, in the same transaction (one fsync),
// removes the intent (IntentKey) of the command that made it: the record
// and the end of the intent are one atomic step.
func (s *DB) PutDone(bucket []byte, key string, v any, intent []byte) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	err = s.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucket).Put([]byte(key), raw); err != nil {
			return err
		}
		return tx.Bucket(Intents).Delete(intent)
	})
	s.wrote(bucket, key, raw, err)
	return err
}

// PutPending writes a record, synced, and leaves the intent of the
// command that makes it, which ends it later (FinishPending). Until then
// the store has record and intent, and rolling back the intent takes the
// record with it.
func (s *DB) PutPending(bucket []byte, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	err = s.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put([]byte(key), raw) })
	s.wrote(bucket, key, raw, err)
	return err
}

// PutPendingAsync is PutPending on a goroutine of its own: the record's
// fsyncs (two, some 1-2 ms on this disk) overlap the kernel changes the
// caller makes meanwhile. wait returns the write's error once it is
// synced (and tells OnWrite, on the caller's goroutine). Until wait
// returned, the caller writes nothing else to the store: it may read.
func (s *DB) PutPendingAsync(bucket []byte, key string, v any) (wait func() error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return func() error { return err }
	}
	done := make(chan error, 1)
	go func() {
		done <- s.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put([]byte(key), raw) })
	}()
	var once sync.Once
	return func() error {
		once.Do(func() {
			err = <-done
			s.wrote(bucket, key, raw, err)
		})
		return err
	}
}

// FinishPending rewrites a record PutPending wrote and removes the intent
// of the command that made it, in one transaction, unsynced; also, if not
// nil, writes more in the same transaction (latency statistics). For
// what a crash of the process must see in one step (the record complete
// and the command done), when what a power loss could lose is only what
// changed since PutPending (state of the kernel that does not survive a
// reboot either: datapath/intent.go).
func (s *DB) FinishPending(bucket []byte, key string, v any, intent []byte, also func(*bolt.Tx) error) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	err = s.UpdateUnsynced(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucket).Put([]byte(key), raw); err != nil {
			return err
		}
		if err := tx.Bucket(Intents).Delete(intent); err != nil {
			return err
		}
		if also != nil {
			return also(tx)
		}
		return nil
	})
	s.wrote(bucket, key, raw, err)
	return err
}

// Del deletes a record, synced, and no intent: the rollback of a record
// PutPending wrote.
func (s *DB) Del(bucket []byte, key string) error {
	err := s.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Delete([]byte(key)) })
	s.wrote(bucket, key, nil, err)
	return err
}

// DelDone deletes a record and, in the same transaction, the intent of
// the removal that deletes it: the record's end and the intent's are one
// atomic step, as in PutDone.
func (s *DB) DelDone(bucket []byte, key string, intent []byte) error {
	err := s.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucket).Delete([]byte(key)); err != nil {
			return err
		}
		return tx.Bucket(Intents).Delete(intent)
	})
	s.wrote(bucket, key, nil, err)
	return err
}

func (s *DB) wrote(bucket []byte, key string, raw []byte, err error) {
	if s.OnWrite != nil {
		s.OnWrite(bucket, key, raw, err)
	}
}

// Empty reports whether a bucket has no record, without decoding any.
func (s *DB) Empty(bucket []byte) (bool, error) {
	empty := true
	err := s.db.View(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucket).Cursor().First()
		empty = k == nil
		return nil
	})
	return empty, err
}

// NextNetworkID hands out datapath network ids; they are never reused
// within an instance so a stale map entry can never alias a new network.
func (s *DB) NextNetworkID() (uint32, error) {
	var id uint32
	err := s.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(Meta)
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

// Reset empties the store, every bucket (latency statistics too) made
// anew; its id and the network id counter go with Meta.
func (s *DB) Reset() error {
	return s.Update(func(tx *bolt.Tx) error {
		for _, b := range append(slices.Clone(State), Latency) {
			if err := tx.DeleteBucket(b); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
				return err
			}
		}
		for _, b := range State {
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		return nil
	})
}

// IntentKey is the key of the intent of kind (attach, network, ...) for
// the record name.
func IntentKey(kind, name string) []byte { return []byte(kind + "/" + name) }

// PutIntent records an intent (unsynced: see UpdateUnsynced).
func (s *DB) PutIntent(key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.UpdateUnsynced(func(tx *bolt.Tx) error { return tx.Bucket(Intents).Put(key, raw) })
}

// DeleteIntent removes an intent (unsynced).
func (s *DB) DeleteIntent(key []byte) error {
	return s.UpdateUnsynced(func(tx *bolt.Tx) error { return tx.Bucket(Intents).Delete(key) })
}

// ForEachIntent calls fn with every pending intent, in key order.
func (s *DB) ForEachIntent(fn func(key, raw []byte) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(Intents)
		if b == nil {
			return nil
		}
		return b.ForEach(fn)
	})
}
