package datapath

import (
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	boltstore "github.com/ebpfnet/ebpfnet/datapath/store"
)

// The store's buckets (datapath/store owns the layout).
var (
	bucketNetworks       = boltstore.Networks
	bucketEndpoints      = boltstore.Endpoints
	bucketMeta           = boltstore.Meta
	bucketFirewall       = boltstore.Firewall
	bucketRuntimeSockets = boltstore.RuntimeSockets
	bucketLatency        = boltstore.Latency
)

// store is a command's session with the instance's state (datapath/store):
// the typed records of networks and endpoints over the generic store.
type store struct {
	*boltstore.DB
	// eps are the endpoint records decoded in this session, kept in step
	// with its writes (nil: not read): an attach lists them more than once,
	// and with 1000 endpoints each decode is milliseconds.
	eps []Endpoint
	// epsOwn says no one else holds eps (no view of it was handed out, and
	// the cache does not share it): wrote may then replace a record in
	// place rather than copy the slice (an attach rewrites its own record
	// once: finishAttach).
	epsOwn bool
}

func openStore(dir string) (*store, error) {
	db, err := boltstore.Open(dir)
	if err != nil {
		return nil, err
	}
	s := &store{DB: db}
	db.OnWrite = s.wrote
	return s, nil
}

func (s *store) close() error { return s.Close() }

func get[T any](s *store, bucket []byte, key string) (T, bool, error) {
	return boltstore.Get[T](s.DB, bucket, key)
}

func list[T any](s *store, bucket []byte) ([]T, error) { return boltstore.List[T](s.DB, bucket) }

func (s *store) network(name string) (Network, bool, error) {
	return get[Network](s, bucketNetworks, name)
}
func (s *store) networks() ([]Network, error) { return list[Network](s, bucketNetworks) }
func (s *store) putNetwork(n Network) error {
	return s.PutDone(bucketNetworks, n.Name, n, boltstore.IntentKey(intentNetwork, n.Name))
}
func (s *store) deleteNetwork(name string) error {
	return s.DelDone(bucketNetworks, name, boltstore.IntentKey(intentNetworkRemove, name))
}

func (s *store) endpoint(name string) (Endpoint, bool, error) {
	return get[Endpoint](s, bucketEndpoints, name)
}
func (s *store) endpoints() ([]Endpoint, error) {
	eps, err := s.endpointsView()
	return slices.Clone(eps), err // callers may reorder or cut their copy
}

// endpointsView is endpoints without the copy, for callers that only read
// it (an attach: at 1000 endpoints each copy is some 400 kB for the
// garbage collector, BenchmarkAttachSession). The session never writes the slice in place (wrote
// makes a new one), so the view stays as it was read.
func (s *store) endpointsView() ([]Endpoint, error) {
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
	s.epsOwn = false
	return s.eps, nil
}

func (s *store) putEndpoint(e Endpoint) error {
	return s.PutDone(bucketEndpoints, e.Name, e, boltstore.IntentKey(intentAttach, e.Name))
}

// putPendingEndpoint starts writing an attach's record, synced, on a
// goroutine of its own, keeping the attach's intent: the attach makes its
// kernel changes meanwhile, waits for the write before it reports, and
// finishAttach ends the intent (see attach). Until wait returned the
// attach writes nothing else to the store.
func (s *store) putPendingEndpoint(e Endpoint) (wait func() error) {
	return s.PutPendingAsync(bucketEndpoints, e.Name, e)
}

// finishAttach writes an attach's record as the kernel changes completed
// it and ends the attach's intent, in one transaction, with the map
// update's and the attach's latencies; unsynced, as the intent was. A crash of the process
// sees both or neither (the page cache has them). A power loss may lose
// it, and finds the record putPendingEndpoint synced with its intent:
// that rolls back an endpoint whose veth, maps and namespace died with
// the machine. What the two records differ in (ifindexes, the netns
// cookie, which interface holds the default route) is state of that
// kernel, meaningless after a reboot.
func (s *store) finishAttach(e Endpoint, mapped, took time.Duration) error {
	return s.FinishPending(bucketEndpoints, e.Name, e, boltstore.IntentKey(intentAttach, e.Name),
		func(tx *bolt.Tx) error {
			if err := observeTx(tx, OpMapUpdate, mapped); err != nil {
				return err
			}
			return observeTx(tx, OpAttach, took)
		})
}

// dropEndpoint deletes the record of an attach that is being rolled back.
func (s *store) dropEndpoint(name string) error { return s.Del(bucketEndpoints, name) }

func (s *store) deleteEndpoint(name string) error {
	return s.DelDone(bucketEndpoints, name, boltstore.IntentKey(intentDetach, name))
}
