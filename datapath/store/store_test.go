package store

import (
	"testing"

	bolt "go.etcd.io/bbolt"
)

func TestRecordEndsItsIntent(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var heard []string
	s.OnWrite = func(_ []byte, key string, _ []byte, err error) { heard = append(heard, key) }
	intent := IntentKey("attach", "c1")
	if err := s.PutIntent(intent, map[string]string{"kind": "attach"}); err != nil {
		t.Fatal(err)
	}
	pending := func() (n int) {
		s.ForEachIntent(func(_, _ []byte) error { n++; return nil })
		return n
	}
	if pending() != 1 {
		t.Fatal("intent not recorded")
	}
	if err := s.PutDone(Endpoints, "c1", map[string]string{"name": "c1"}, intent); err != nil {
		t.Fatal(err)
	}
	if pending() != 0 {
		t.Error("the record did not end its intent")
	}
	got, found, err := Get[map[string]string](s, Endpoints, "c1")
	if err != nil || !found || got["name"] != "c1" {
		t.Errorf("Get = %v, %v, %v", got, found, err)
	}
	if err := s.DelDone(Endpoints, "c1", IntentKey("detach", "c1")); err != nil {
		t.Fatal(err)
	}
	if empty, _ := s.Empty(Endpoints); !empty {
		t.Error("record not deleted")
	}
	if len(heard) != 2 {
		t.Errorf("OnWrite heard %v, want the put and the delete", heard)
	}
}

func TestNetworkIDsAreNotReusedAndResetEmpties(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, _ := s.NextNetworkID()
	b, _ := s.NextNetworkID()
	if a == b {
		t.Fatalf("network id %d handed out twice", a)
	}
	if err := s.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(Latency)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutDone(Networks, "n1", 1, IntentKey("network", "n1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Reset(); err != nil {
		t.Fatal(err)
	}
	if empty, _ := s.Empty(Networks); !empty {
		t.Error("Reset kept a network")
	}
	s.View(func(tx *bolt.Tx) error {
		if tx.Bucket(Latency) != nil {
			t.Error("Reset kept the latency statistics")
		}
		return nil
	})
}
