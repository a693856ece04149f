package loader_test

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/ebpfnet/ebpfnet/loader"
)

func pinRoot(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	root, err := loader.PreparePinRoot(loader.DefaultPinRoot("unit-" + hex.EncodeToString(b)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { loader.RemovePins(root) })
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

// An upgrade: the pinned program differs from this build's. Load must swap
// the new program into every link that runs the old one, atomically, and
// replace the pin.
func TestUpgradeSwapsProgramInLinks(t *testing.T) {
	root := pinRoot(t)
	ifA, _, _ := setupNetns(t) // a veth to attach to, in a private namespace
	dp, err := loader.Load(loader.Options{PinRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	defer dp.Close()
	if _, err := dp.AttachTCXIngress(loader.ProgFromContainer, ifA, "epa"); err != nil {
		t.Fatal(err)
	}

	// Stand-in for the previous build's program, running in the link.
	old, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.SchedCLS,
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
		License:      "GPL",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	l, err := link.LoadPinnedLink(filepath.Join(root, "links", "epa:"+loader.ProgFromContainer), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Update(old); err != nil {
		t.Fatal(err)
	}
	progPin := filepath.Join(root, "progs", loader.ProgFromContainer)
	os.Remove(progPin)
	if err := old.Pin(progPin); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(root, "progs", "build"))
	oldInfo, _ := old.Info()
	oldID, _ := oldInfo.ID()

	upgraded, err := loader.Load(loader.Options{PinRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	defer upgraded.Close()
	newID := progID(t, upgraded)
	if newID == oldID {
		t.Fatal("the old program was kept")
	}
	if got := upgraded.LinkedProgramID(loader.ProgFromContainer, "epa"); got != newID {
		t.Fatalf("link runs program %d, want the new %d (old %d)", got, newID, oldID)
	}
	pinned, err := ebpf.LoadPinnedProgram(progPin, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pinned.Close()
	pi, _ := pinned.Info()
	if id, _ := pi.ID(); id != newID {
		t.Fatalf("pin holds program %d, want %d", id, newID)
	}
}

// The directory of default pin roots goes with its last instance's pins,
// not before: parallel instances share it.
func TestRemovePinsTakesTheEmptyDirOfPinRoots(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ebpfnet")
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, p := range []string{filepath.Join(a, "maps"), b} {
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := loader.RemovePins(a); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a); !os.IsNotExist(err) {
		t.Errorf("pin root a still there: %v", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the directory went while b's pins are in it: %v", err)
	}
	if err := loader.RemovePins(b); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the empty directory of pin roots stayed: %v", err)
	}
}
