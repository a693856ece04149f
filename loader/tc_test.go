package loader_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ebpfnet/ebpfnet/loader"
)

// from_container (SEC("tc"): no expected attach type) attaches as a
// cls_bpf filter in direct-action mode under clsact: one filter of
// ebpfnet's at ingress, running the program, no TCX link and no pin. The
// detach removes it.
func TestAttachTCIngress(t *testing.T) {
	root := pinRoot(t)
	ifA, _, _ := setupNetns(t)
	dp, err := loader.Load(loader.Options{PinRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	defer dp.Close()
	if err := dp.AttachTCIngress(loader.ProgFromContainer, ifA, "epa"); err != nil {
		t.Fatal(err)
	}
	id := progID(t, dp)
	f := onlyFilter(t, ifA)
	if f.Name != loader.TCFilterName(loader.ProgFromContainer) || !f.DirectAction || ebpf.ProgramID(f.Id) != id {
		t.Fatalf("filter %+v: want %s in direct-action mode running program %d", f, loader.TCFilterName(loader.ProgFromContainer), id)
	}
	if got, err := loader.TCIngressProgramID(loader.ProgFromContainer, ifA); err != nil || got != id {
		t.Fatalf("TCIngressProgramID = %d, %v; want %d", got, err, id)
	}
	res, err := link.QueryPrograms(link.QueryOptions{Target: ifA, Attach: ebpf.AttachTCXIngress})
	if err != nil || len(res.Programs) != 0 {
		t.Fatalf("TCX ingress programs %+v (%v): want none", res, err)
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "links")); len(ents) != 0 {
		t.Fatalf("link pins %v: the filter needs none", ents)
	}

	// Attaching again replaces the filter, it does not add a second one.
	if err := dp.AttachTCIngress(loader.ProgFromContainer, ifA, "epa"); err != nil {
		t.Fatal(err)
	}
	onlyFilter(t, ifA)

	if err := loader.DetachTCIngress(ifA); err != nil {
		t.Fatal(err)
	}
	if got, err := loader.TCIngressProgramID(loader.ProgFromContainer, ifA); err != nil || got != 0 {
		t.Fatalf("after detach: program %d (%v), want no filter", got, err)
	}
	if err := loader.DetachTCIngress(ifA); err != nil {
		t.Fatalf("a second detach: %v", err)
	}
}

// An upgrade: the pinned from_container differs from this build's. Load
// replaces the program in the filter of every interface that runs the old
// one, in place (same priority and handle: an atomic swap, the filter never
// goes), and leaves a filter running another program alone (another
// instance's).
func TestUpgradeSwapsProgramInFilters(t *testing.T) {
	root := pinRoot(t)
	ifA, ifB, _ := setupNetns(t)
	dp, err := loader.Load(loader.Options{PinRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	defer dp.Close()
	for _, idx := range []int{ifA, ifB} {
		if err := dp.AttachTCIngress(loader.ProgFromContainer, idx, "ep"); err != nil {
			t.Fatal(err)
		}
	}

	// Stand-ins: the previous build's program on A, another instance's on B.
	old, other := passProgram(t), passProgram(t)
	replaceFilterProgram(t, ifA, old)
	replaceFilterProgram(t, ifB, other)
	progPin := filepath.Join(root, "progs", loader.ProgFromContainer)
	os.Remove(progPin)
	if err := old.Pin(progPin); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(root, "progs", "build"))
	before := onlyFilter(t, ifA)

	upgraded, err := loader.Load(loader.Options{PinRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	defer upgraded.Close()
	newID := progID(t, upgraded)
	after := onlyFilter(t, ifA)
	if ebpf.ProgramID(after.Id) != newID {
		t.Fatalf("filter on A runs program %d, want the new %d (old %d)", after.Id, newID, before.Id)
	}
	if after.Priority != before.Priority || after.Handle != before.Handle || after.Name != before.Name {
		t.Fatalf("filter moved: %+v, was %+v", after.FilterAttrs, before.FilterAttrs)
	}
	if got, want := ebpf.ProgramID(onlyFilter(t, ifB).Id), idOf(t, other); got != want {
		t.Fatalf("filter on B runs program %d, want the other instance's %d left alone", got, want)
	}
}

// onlyFilter is the one cls_bpf filter at ingress of ifindex.
func onlyFilter(t *testing.T, ifindex int) *netlink.BpfFilter {
	t.Helper()
	fs, err := netlink.FilterList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ifindex}}, netlink.HANDLE_MIN_INGRESS)
	if err != nil {
		t.Fatal(err)
	}
	var found []*netlink.BpfFilter
	for _, f := range fs {
		if bf, ok := f.(*netlink.BpfFilter); ok && bf.Id != 0 {
			found = append(found, bf)
		}
	}
	if len(found) != 1 {
		t.Fatalf("ingress filters %+v: want exactly one cls_bpf filter", fs)
	}
	return found[0]
}

func passProgram(t *testing.T) *ebpf.Program {
	t.Helper()
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.SchedCLS,
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
		License:      "GPL",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// replaceFilterProgram makes ebpfnet's filter on ifindex run p.
func replaceFilterProgram(t *testing.T, ifindex int, p *ebpf.Program) {
	t.Helper()
	f := onlyFilter(t, ifindex)
	err := netlink.FilterReplace(&netlink.BpfFilter{FilterAttrs: netlink.FilterAttrs{LinkIndex: ifindex, Parent: netlink.HANDLE_MIN_INGRESS,
		Handle: f.Handle, Priority: f.Priority, Protocol: unix.ETH_P_ALL}, Fd: p.FD(), Name: f.Name, DirectAction: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := ebpf.ProgramID(onlyFilter(t, ifindex).Id); got != idOf(t, p) {
		t.Fatalf("stand-in not in the filter: %d", got)
	}
}

func idOf(t *testing.T, p *ebpf.Program) ebpf.ProgramID {
	t.Helper()
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	return id
}
