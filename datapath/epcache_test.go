package datapath

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/datapath/ports"
)

func testEndpoint(k int) Endpoint {
	return Endpoint{Name: fmt.Sprintf("c%03d", k), Mode: ModeBridge, Netns: fmt.Sprintf("/run/netns/c%03d", k), NetnsIno: uint64(4026532000 + k),
		Network: "bridge", IP: netip.AddrFrom4([4]byte{172, 17, 0, byte(2 + k)}), MAC: "02:42:ac:11:00:02", HostVeth: fmt.Sprintf("veth%07d", k),
		HostIfindex: 100 + k, ContainerIfindex: 2, Ports: ports.List{{Proto: ports.TCP, HostPort: uint16(8000 + k), ContainerPort: 80}},
		Aliases: []string{"web"}, Created: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)}
}

// session runs fn in a store session of dir as Instance.withStore does,
// with the cache c.
func session(t *testing.T, dir string, c *endpointCache, fn func(*store)) {
	t.Helper()
	st, err := openStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	c.load(st)
	defer c.save(st)
	fn(st)
}

// decoded is what a session without any cache reads.
func decoded(t *testing.T, st *store) []Endpoint {
	t.Helper()
	eps, err := list[Endpoint](st, bucketEndpoints)
	if err != nil {
		t.Fatal(err)
	}
	return eps
}

func TestEndpointCache(t *testing.T) {
	dir := t.TempDir()
	var c endpointCache
	session(t, dir, &c, func(st *store) {
		for _, k := range []int{5, 1, 3} {
			if err := st.putEndpoint(testEndpoint(k)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := st.endpoints(); err != nil {
			t.Fatal(err)
		}
		// Writes after the read keep the session's records in step: an
		// insert in the middle, a replacement, a delete, a missing key.
		for _, err := range []error{st.putEndpoint(testEndpoint(2)), st.putEndpoint(testEndpoint(5)), st.deleteEndpoint("c001"), st.deleteEndpoint("nosuch")} {
			if err != nil {
				t.Fatal(err)
			}
		}
		e := testEndpoint(3)
		e.Ports = nil
		if err := st.putEndpoint(e); err != nil {
			t.Fatal(err)
		}
		if got, want := st.eps, decoded(t, st); !reflect.DeepEqual(got, want) {
			t.Fatalf("records kept in step with writes:\n%+v\nwant what a decode gives:\n%+v", got, want)
		}
	})

	// The next session starts with them, as a decode would give them.
	session(t, dir, &c, func(st *store) {
		if st.eps == nil {
			t.Fatal("an unchanged store: the kept records were not used")
		}
		if want := decoded(t, st); !reflect.DeepEqual(st.eps, want) {
			t.Fatalf("kept records %+v, want %+v", st.eps, want)
		}
		if err := st.deleteEndpoint("c002"); err != nil {
			t.Fatal(err)
		}
	})
	session(t, dir, &c, func(st *store) {
		if want := decoded(t, st); !reflect.DeepEqual(st.eps, want) || len(want) != 2 {
			t.Fatalf("after a delete: kept %+v, want %+v", st.eps, want)
		}
	})

	// Another process's write, even of something else, makes the next
	// session decode.
	var other endpointCache
	session(t, dir, &other, func(st *store) {
		if err := st.observe(OpAttach, time.Millisecond); err != nil {
			t.Fatal(err)
		}
	})
	session(t, dir, &c, func(st *store) {
		if st.eps != nil {
			t.Fatal("records kept across another process's write")
		}
	})

	// A store made anew at the same path with as many transactions is
	// another store.
	session(t, dir, &c, func(st *store) { st.endpoints() })
	if c.eps == nil {
		t.Fatal("nothing kept after a session that read the records")
	}
	txid := c.at.txid
	if err := os.Remove(filepath.Join(dir, "state.db")); err != nil {
		t.Fatal(err)
	}
	for k := 0; ; k++ {
		st, err := openStore(dir)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := st.version()
		if v.txid >= txid {
			st.close()
			if v.txid != txid {
				t.Skipf("the new store's transactions went past %d", txid)
			}
			break
		}
		st.putEndpoint(testEndpoint(k))
		st.close()
	}
	session(t, dir, &c, func(st *store) {
		if st.eps != nil {
			t.Fatalf("records of a removed store kept for a new one: %+v", st.eps)
		}
	})
}

// A failed write forgets the session's records rather than guess.
func TestEndpointCacheFailedWrite(t *testing.T) {
	dir := t.TempDir()
	var c endpointCache
	session(t, dir, &c, func(st *store) {
		st.putEndpoint(testEndpoint(1))
		st.endpoints()
		st.wrote(bucketEndpoints, "c002", []byte(`{"name":"c002"}`), fmt.Errorf("disk full"))
		if st.eps != nil {
			t.Fatal("records kept after a failed write")
		}
	})
	if c.eps != nil {
		t.Fatal("a session without records left some in the cache")
	}
}

// BenchmarkEndpointsDecode is what a session without kept records pays
// to list 1000 endpoints (the decode the cache saves the daemon).
func BenchmarkEndpointsDecode(b *testing.B) {
	st, err := openStore(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer st.close()
	st.SetNoSync(true) // filling it is not what is measured
	for k := range 1000 {
		if err := st.putEndpoint(testEndpoint(k)); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		st.eps = nil
		if _, err := st.endpoints(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAttachSession is the store's share of an attach and a detach
// through the daemon with 1000 endpoints kept: a session that reads every
// endpoint (as attach does) and writes one record, and one that deletes it
// again; without fsync, which is not what is measured.
func BenchmarkAttachSession(b *testing.B) {
	dir := b.TempDir()
	var c endpointCache
	run := func(fn func(*store)) {
		st, err := openStore(dir)
		if err != nil {
			b.Fatal(err)
		}
		defer st.close()
		st.SetNoSync(true)
		c.load(st)
		defer c.save(st)
		fn(st)
	}
	run(func(st *store) {
		for k := range 1000 {
			if err := st.putEndpoint(testEndpoint(k)); err != nil {
				b.Fatal(err)
			}
		}
	})
	run(func(st *store) { st.endpoints() })
	x := testEndpoint(2000)
	b.ReportAllocs()
	for b.Loop() {
		run(func(st *store) {
			if eps, err := st.endpointsView(); err != nil || len(eps) != 1000 {
				b.Fatal(len(eps), err)
			}
			if err := st.putEndpoint(x); err != nil {
				b.Fatal(err)
			}
		})
		run(func(st *store) {
			if err := st.deleteEndpoint(x.Name); err != nil {
				b.Fatal(err)
			}
		})
	}
}
