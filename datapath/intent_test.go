package datapath

import (
	"net/netip"
	"os"
	"testing"
)

// BenchmarkIntentTransaction is the cost attach pays for crash consistency:
// one small bbolt transaction (one fsync) for the intent; its removal rides
// in the endpoint record's transaction. The state dir is on a real disk
// (/var/tmp), as /var/lib/ebpfnet is.
func BenchmarkIntentTransaction(b *testing.B) {
	dir, err := os.MkdirTemp("/var/tmp", "ebpfnet-intent-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	st, err := openStore(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer st.close()
	ep := Endpoint{Name: "c1", Mode: ModeBridge, Network: "n1", IP: netip.MustParseAddr("172.30.0.2"), HostVeth: "veth1234567"}
	b.Run("intent", func(b *testing.B) {
		for b.Loop() {
			if err := st.putIntent(intent{Kind: intentAttach, Endpoint: &ep}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("record", func(b *testing.B) {
		for b.Loop() {
			if err := st.putEndpoint(ep); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// The record and the end of the intent are one transaction.
func TestPutEndpointEndsItsIntent(t *testing.T) {
	st, err := openStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	ep := Endpoint{Name: "c1", Mode: ModeBridge}
	other := Endpoint{Name: "c2", Mode: ModeBridge}
	for _, e := range []*Endpoint{&ep, &other} {
		if err := st.putIntent(intent{Kind: intentAttach, Endpoint: e}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.putEndpoint(ep); err != nil {
		t.Fatal(err)
	}
	ins, err := st.intents()
	if err != nil || len(ins) != 1 || ins[0].Endpoint.Name != "c2" {
		t.Fatalf("intents after c1's record: %+v, %v; want only c2's", ins, err)
	}
}
