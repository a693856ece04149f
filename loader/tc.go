package loader

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Per-endpoint attach: a clsact qdisc and a cls_bpf filter in direct-action
// mode at ingress of the host veth, not a TCX link. A TCX attach waits for
// an RCU grace period while it holds RTNL (the kernel's tcx_entry_sync),
// and so does its detach: milliseconds per endpoint (bench/cmd/attachcost),
// where the qdisc and the filter are plain netlink requests. The programs'
// return codes are the same under both (TCX_NEXT/PASS/DROP/REDIRECT are
// TC_ACT_UNSPEC/OK/SHOT/REDIRECT), and SEC("tc") programs have no expected
// attach type, so the same program runs unchanged. The filter needs no pin:
// it lives as long as the interface. Devices made once per host (uplink,
// overlay) keep pinned TCX links.

// The filter's place on the hook: one filter, at a fixed priority and
// handle, so an upgrade replaces it in place (RTM_NEWTFILTER with
// NLM_F_REPLACE swaps the program atomically).
const (
	tcFilterPriority = 1
	tcFilterHandle   = 1
)

// TCFilterName is the name of ebpfnet's cls_bpf filter that runs prog: what
// check and upgrade look for (`tc filter show dev X ingress` shows it).
func TCFilterName(prog string) string { return "ebpfnet:" + prog }

// AttachTCIngress attaches prog at ingress of the interface as a cls_bpf
// filter in direct-action mode, adding the clsact qdisc first. A filter of
// ebpfnet's already there is replaced. It returns no program ID, unlike
// the TCX attach: asking the kernel for from_container's info takes about
// 0.3 ms, more than the qdisc and the filter (0.2 ms), on every attach.
func (d *Datapath) AttachTCIngress(prog string, ifindex int, ifname string) error {
	p := d.programs[prog]
	if p == nil {
		return fmt.Errorf("unknown program %s", prog)
	}
	h := HostNetlink()
	if err := addClsact(h, ifindex); err != nil {
		return fmt.Errorf("attach %s to %s: add clsact qdisc: %w", prog, ifname, err)
	}
	if err := h.FilterReplace(tcFilter(prog, ifindex, p)); err != nil {
		return fmt.Errorf("attach %s to %s: add cls_bpf filter: %w", prog, ifname, err)
	}
	return nil
}

// DetachTCIngress removes the clsact qdisc of the interface, and with it
// every filter under it (the rollback of an attach). An interface already
// gone, or without the qdisc, is no error.
func DetachTCIngress(ifindex int) error {
	err := HostNetlink().QdiscDel(clsact(ifindex))
	if err == nil || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EINVAL) {
		return nil
	}
	return err
}

// TCIngressProgramID returns the program ebpfnet's filter for prog runs at
// ingress of the interface, or 0 if there is no such filter.
func TCIngressProgramID(prog string, ifindex int) (ebpf.ProgramID, error) {
	f, err := ourFilter(prog, ifindex)
	if err != nil || f == nil {
		return 0, err
	}
	return ebpf.ProgramID(f.Id), nil
}

func clsact(ifindex int) *netlink.GenericQdisc {
	return &netlink.GenericQdisc{QdiscType: "clsact", QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: ifindex, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT}}
}

// addClsact adds the clsact qdisc; one already there is kept.
func addClsact(h *netlink.Handle, ifindex int) error {
	if err := h.QdiscAdd(clsact(ifindex)); err != nil && !errors.Is(err, unix.EEXIST) {
		return err
	}
	return nil
}

func tcFilter(prog string, ifindex int, p *ebpf.Program) *netlink.BpfFilter {
	return &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: ifindex, Parent: netlink.HANDLE_MIN_INGRESS,
			Handle: tcFilterHandle, Priority: tcFilterPriority, Protocol: unix.ETH_P_ALL},
		Fd: p.FD(), Name: TCFilterName(prog), DirectAction: true,
	}
}

// ourFilter is ebpfnet's filter for prog at ingress of the interface, or
// nil. An interface without a clsact qdisc has none.
func ourFilter(prog string, ifindex int) (*netlink.BpfFilter, error) {
	filters, err := netlink.FilterList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ifindex}}, netlink.HANDLE_MIN_INGRESS)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
		return nil, nil // no clsact qdisc
	}
	if err != nil {
		return nil, err
	}
	for _, f := range filters {
		if bf, ok := f.(*netlink.BpfFilter); ok && bf.Name == TCFilterName(prog) && bf.Handle == tcFilterHandle && bf.Id != 0 {
			return bf, nil
		}
	}
	return nil, nil
}

// refilter points ebpfnet's filter for name on every interface of this
// namespace at prog, where it runs program oldID (an upgrade) or a program
// with prog's instructions (an upgrade that died after refilter, before it
// replaced the pin). The replace is atomic: no packet meets no program.
// Another instance's filters run other programs and are left alone.
func (d *Datapath) refilter(name string, oldID ebpf.ProgramID, prog *ebpf.Program) error {
	info, err := prog.Info()
	if err != nil {
		return err
	}
	links, err := netlink.LinkList()
	if err != nil {
		return fmt.Errorf("upgrade %s filters: list interfaces: %w", name, err)
	}
	for _, l := range links {
		idx := l.Attrs().Index
		f, err := ourFilter(name, idx)
		if err != nil || f == nil {
			continue // no filter, or the interface went meanwhile
		}
		if ebpf.ProgramID(f.Id) != oldID && f.Tag != info.Tag {
			continue
		}
		err = netlink.FilterReplace(tcFilter(name, idx, prog))
		if err != nil && !errors.Is(err, unix.ENODEV) && !errors.Is(err, unix.ENOENT) { // gone meanwhile
			return fmt.Errorf("upgrade %s filter on %s: %w", name, l.Attrs().Name, err)
		}
	}
	return nil
}
