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

// An attach's record written on its own goroutine: synced (the store's
// NoSync off while it commits, whatever unsynced writes do before and
// after), OnWrite told on the waiting goroutine, and FinishPending rewrites
// it and ends the intent in one transaction.
func TestPendingRecordWrittenAsideThenFinished(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var heard []string
	s.OnWrite = func(_ []byte, key string, raw []byte, err error) { heard = append(heard, key+"="+string(raw)) }
	intent := IntentKey("attach", "c1")
	if err := s.PutIntent(intent, map[string]string{"kind": "attach"}); err != nil {
		t.Fatal(err)
	}
	if s.db.NoSync {
		t.Fatal("an unsynced write left the store unsynced")
	}
	synced := make(chan bool, 1)
	wait := s.PutPendingAsync(Endpoints, "c1", map[string]int{"ifindex": 0})
	// Another goroutine's unsynced writes meanwhile (the attach writes
	// none, but nothing may unsync the record's commit).
	for range 50 {
		if err := s.UpdateUnsynced(func(tx *bolt.Tx) error { return tx.Bucket(Meta).Put([]byte("x"), []byte("y")) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Update(func(*bolt.Tx) error { synced <- !s.db.NoSync; return nil }); err != nil {
		t.Fatal(err)
	}
	if !<-synced {
		t.Error("a synced write ran with NoSync on")
	}
	if len(heard) != 0 {
		t.Errorf("OnWrite heard %v before wait", heard)
	}
	if err := wait(); err != nil || wait() != nil {
		t.Fatal(err)
	}
	if len(heard) != 1 {
		t.Errorf("OnWrite heard %v, want the record once", heard)
	}
	n := 0
	s.ForEachIntent(func(_, _ []byte) error { n++; return nil })
	if n != 1 {
		t.Fatalf("%d intents with the pending record, want its attach's", n)
	}
	also := false
	if err := s.FinishPending(Endpoints, "c1", map[string]int{"ifindex": 7}, intent, func(*bolt.Tx) error { also = true; return nil }); err != nil {
		t.Fatal(err)
	}
	n = 0
	s.ForEachIntent(func(_, _ []byte) error { n++; return nil })
	got, _, _ := Get[map[string]int](s, Endpoints, "c1")
	if n != 0 || got["ifindex"] != 7 || !also || s.db.NoSync {
		t.Errorf("after FinishPending: %d intents, record %v, also %v, NoSync %v", n, got, also, s.db.NoSync)
	}
	s.SetNoSync(true)
	s.UpdateUnsynced(func(*bolt.Tx) error { return nil })
	if !s.db.NoSync {
		t.Error("an unsynced write turned SetNoSync(true) off")
	}
}
