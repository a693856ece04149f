package integration

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ebpfnet/ebpfnet/datapath"
	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
	"github.com/ebpfnet/ebpfnet/loader"
)

// Issue 25 item 4: an endpoint's host veth runs from_container as
// ebpfnet's cls_bpf filter (no TCX link, no pin), and traffic flows
// through it; check finds a missing filter and one that runs another
// program; an endpoint an older build attached with a pinned TCX link
// checks healthy and detaches without leaving the pin.
func TestAttachRunsProgramAsTCFilter(t *testing.T) {
	tp := newTopology(t)
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	c1, c2 := tp.AddContainer("c1"), tp.AddContainer("c2")
	tp.MustEbpfnet("attach", "--network", "n1", "--ip", "172.30.0.2", c1)
	tp.MustEbpfnet("attach", "--network", "n1", "--ip", "172.30.0.3", c2)
	tp.Exec(c1, "ping", "-c1", "-W2", "172.30.0.3") // through both filters

	d := inspect(t, tp, c1)
	want := pinnedProgramID(t, tp)
	if d.ProgramID != want {
		t.Fatalf("inspect: program %d, want from_container's %d", d.ProgramID, want)
	}
	inHost(t, tp, func() error {
		if got, err := loader.TCIngressProgramID(loader.ProgFromContainer, d.HostIfindex); err != nil || got != want {
			t.Errorf("filter at ingress of %s runs program %d (%v), want %d", d.HostVeth, got, err, want)
		}
		res, err := link.QueryPrograms(link.QueryOptions{Target: d.HostIfindex, Attach: ebpf.AttachTCXIngress})
		if err != nil || len(res.Programs) != 0 {
			t.Errorf("TCX ingress of %s: %+v (%v), want no program", d.HostVeth, res, err)
		}
		return nil
	})
	if pins := endpointLinkPins(t, tp); len(pins) != 0 {
		t.Errorf("endpoint link pins %v, want none", pins)
	}
	wantProblems(t, tp, d.Endpoint, "")

	// Another program in ebpfnet's filter.
	inHost(t, tp, func() error { return replaceFilterProgram(d.HostIfindex) })
	wantProblems(t, tp, d.Endpoint, "runs program")
	// No filter at all.
	tp.Exec(tp.Host, "tc", "qdisc", "del", "dev", d.HostVeth, "clsact")
	wantProblems(t, tp, d.Endpoint, "is not attached at ingress of "+d.HostVeth)

	// As an older build attached it: a pinned TCX link, no filter.
	inHost(t, tp, func() error {
		dp, err := loader.Load(loader.Options{PinRoot: tp.PinRoot})
		if err != nil {
			return err
		}
		defer dp.Close()
		_, err = dp.AttachTCXIngress(loader.ProgFromContainer, d.HostIfindex, d.HostVeth)
		return err
	})
	wantProblems(t, tp, d.Endpoint, "")
	if d := inspect(t, tp, c1); d.ProgramID != want {
		t.Errorf("inspect of a TCX endpoint: program %d, want %d", d.ProgramID, want)
	}
	tp.MustEbpfnet("detach", c1)
	tp.MustEbpfnet("detach", c2)
	if pins := endpointLinkPins(t, tp); len(pins) != 0 {
		t.Errorf("link pins left after detach: %v", pins)
	}
}

func inHost(t *testing.T, tp *testutil.Topology, fn func() error) {
	t.Helper()
	if err := netnsutil.Do(tp.Namespace(tp.Host), fn); err != nil {
		t.Fatal(err)
	}
}

// wantProblems runs CheckEndpoint in the host's namespace: no problem if
// want is empty, else one that says want.
func wantProblems(t *testing.T, tp *testutil.Topology, ep datapath.Endpoint, want string) {
	t.Helper()
	var problems []string
	inHost(t, tp, func() error {
		inst, err := datapath.Open(datapath.Config{StateDir: tp.StateDir, PinRoot: tp.PinRoot})
		if err != nil {
			return err
		}
		defer inst.Close()
		problems, err = inst.CheckEndpoint(ep)
		return err
	})
	switch {
	case want == "" && len(problems) > 0:
		t.Errorf("check: %v, want none", problems)
	case want != "" && !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, want) }):
		t.Errorf("check: %v, want one saying %q", problems, want)
	}
}

// replaceFilterProgram makes ebpfnet's filter at ingress of ifindex run a
// program that is not from_container.
func replaceFilterProgram(ifindex int) error {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SchedCLS, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
	if err != nil {
		return err
	}
	defer p.Close() // the filter holds it
	return netlink.FilterReplace(&netlink.BpfFilter{FilterAttrs: netlink.FilterAttrs{LinkIndex: ifindex, Parent: netlink.HANDLE_MIN_INGRESS,
		Handle: 1, Priority: 1, Protocol: unix.ETH_P_ALL}, Fd: p.FD(), Name: loader.TCFilterName(loader.ProgFromContainer), DirectAction: true})
}

// endpointLinkPins are the pinned from_container links of tp's instance.
func endpointLinkPins(t *testing.T, tp *testutil.Topology) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(tp.PinRoot, "links"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ":"+loader.ProgFromContainer) {
			out = append(out, e.Name())
		}
	}
	return out
}
