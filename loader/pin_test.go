package loader_test

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/ebpfnet/ebpfnet/loader"
)

func pinRoot(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	root, err := loader.PreparePinRoot(filepath.Join(loader.DefaultBPFFS, "ebpfnet", "unit-"+hex.EncodeToString(b)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.RemoveAll(root)
		os.Remove(filepath.Dir(root)) // only if empty
	})
	return root
}

func progID(t *testing.T, dp *loader.Datapath) ebpf.ProgramID {
	t.Helper()
	info, err := dp.Program(loader.ProgFromContainer).Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	return id
}

func TestPinnedDatapathIsReused(t *testing.T) {
	root := pinRoot(t)
	first, err := loader.Load(loader.Options{PinRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if err := first.Maps.Networks.Put(uint32(7), loader.NetworkInfo{Flags: 1}); err != nil {
		t.Fatal(err)
	}

	// Same build: the pinned programs and maps are opened, not reloaded.
	second, err := loader.Load(loader.Options{PinRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if a, b := progID(t, first), progID(t, second); a != b {
		t.Fatalf("program reloaded: id %d, then %d", a, b)
	}
	var n loader.NetworkInfo
	if err := second.Maps.Networks.Lookup(uint32(7), &n); err != nil || n.Flags != 1 {
		t.Fatalf("pinned map content lost: %+v %v", n, err)
	}

	// Without the build marker the programs are verified again, found
	// identical by tag, and the pinned ones kept.
	os.RemoveAll(filepath.Join(root, "progs", "build"))
	third, err := loader.Load(loader.Options{PinRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	if a, c := progID(t, first), progID(t, third); a != c {
		t.Fatalf("identical program replaced: id %d, then %d", a, c)
	}
	if _, err := os.Stat(filepath.Join(root, "progs", "build")); err != nil {
		t.Fatalf("build marker not rewritten: %v", err)
	}
}
