package datapath

import (
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Control-plane operations run in short-lived CLI processes, so their
// latency histograms live in the store, where the daemon's collector reads
// them.
var (
	// LatencyBuckets are the histogram upper bounds, in seconds.
	LatencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
)

// Latency operations.
const (
	OpAttach    = "attach"
	OpDetach    = "detach"
	OpMapUpdate = "map_update"
)

// Histogram is a stored latency histogram. Buckets[i] counts observations
// <= LatencyBuckets[i] and > the bound before (not cumulative).
type Histogram struct {
	Count   uint64   `json:"count"`
	Sum     float64  `json:"sum"`
	Buckets []uint64 `json:"buckets"`
}

// Cumulative returns the bucket counts as Prometheus wants them.
func (h Histogram) Cumulative() map[float64]uint64 {
	out := make(map[float64]uint64, len(LatencyBuckets))
	var acc uint64
	for i, b := range LatencyBuckets {
		if i < len(h.Buckets) {
			acc += h.Buckets[i]
		}
		out[b] = acc
	}
	return out
}

func (s *store) observe(op string, d time.Duration) error {
	defer timeStep("store write")()
	return s.UpdateUnsynced(func(tx *bolt.Tx) error { return observeTx(tx, op, d) })
}

// observeTx adds d to op's histogram in the write transaction tx.
func observeTx(tx *bolt.Tx, op string, d time.Duration) error {
	b, err := tx.CreateBucketIfNotExists(bucketLatency)
	if err != nil {
		return err
	}
	var h Histogram
	if raw := b.Get([]byte(op)); raw != nil {
		if err := json.Unmarshal(raw, &h); err != nil {
			return err
		}
	}
	if len(h.Buckets) != len(LatencyBuckets) {
		h.Buckets = make([]uint64, len(LatencyBuckets))
	}
	sec := d.Seconds()
	h.Count++
	h.Sum += sec
	for i, bound := range LatencyBuckets {
		if sec <= bound {
			h.Buckets[i]++
			break
		}
	}
	raw, _ := json.Marshal(h)
	return b.Put([]byte(op), raw)
}

// Latencies returns the stored histograms by operation.
func (i *Instance) Latencies() (map[string]Histogram, error) {
	out := map[string]Histogram{}
	err := i.withStore(func(st *store) error {
		return st.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketLatency)
			if b == nil {
				return nil
			}
			return b.ForEach(func(k, v []byte) error {
				var h Histogram
				if err := json.Unmarshal(v, &h); err != nil {
					return err
				}
				out[string(k)] = h
				return nil
			})
		})
	})
	return out, err
}
