// Command attachcost measures what attaching a TC program to a new veth
// costs the kernel, by hook, beside creating the veth itself: the TCX link
// ebpfnet made for each endpoint until 2026-12-07 (bpf_link_create, which
// waits for an RCU grace period while it holds RTNL: tcx_entry_sync)
// against the clsact qdisc and cls_bpf filter it makes now (netlink, no
// synchronous grace period; loader/tc.go). It is the account behind issue
// 25's in-process attach row (bench/README.md, "Caveats" and "Levers
// tried").
//
//	attachcost -n 50
//
// Everything happens in a network namespace of its own, made and removed
// by the command; the program attached returns TC_ACT_OK and no packet is
// sent. The methods alternate veth by veth, so a drift of the machine
// meets both alike.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

func main() {
	n := flag.Int("n", 50, "veths per method")
	flag.Parse()
	if err := run(*n); err != nil {
		fmt.Fprintln(os.Stderr, "attachcost:", err)
		os.Exit(1)
	}
}

func run(n int) error {
	runtime.LockOSThread() // the namespace is this thread's
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		return fmt.Errorf("new network namespace: %w", err)
	}
	// Leaving it and closing its last handle removes it with its devices.
	defer func() {
		netns.Set(orig)
		ns.Close()
	}()

	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.SchedCLS,
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
		License:      "Dual BSD/GPL",
	})
	if err != nil {
		return fmt.Errorf("load program: %w", err)
	}
	defer prog.Close()

	var veth, tcx, clsact, filter []time.Duration
	var links []link.Link
	defer func() {
		for _, l := range links {
			l.Close()
		}
	}()
	for i := 0; i < 2*n; i++ {
		la := netlink.NewLinkAttrs()
		la.Name = fmt.Sprintf("ac%d", i)
		t0 := time.Now()
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: fmt.Sprintf("ac%dp", i)}); err != nil {
			return fmt.Errorf("add veth: %w", err)
		}
		veth = append(veth, time.Since(t0))
		l, err := netlink.LinkByName(la.Name)
		if err != nil {
			return err
		}
		idx := l.Attrs().Index
		if i%2 == 0 {
			t0 = time.Now()
			tl, err := link.AttachTCX(link.TCXOptions{Interface: idx, Program: prog, Attach: ebpf.AttachTCXIngress})
			if err != nil {
				return fmt.Errorf("TCX attach: %w", err)
			}
			tcx = append(tcx, time.Since(t0))
			links = append(links, tl)
			continue
		}
		t0 = time.Now()
		q := &netlink.GenericQdisc{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: idx, Handle: netlink.MakeHandle(0xffff, 0),
			Parent: netlink.HANDLE_CLSACT}, QdiscType: "clsact"}
		if err := netlink.QdiscAdd(q); err != nil {
			return fmt.Errorf("add clsact: %w", err)
		}
		clsact = append(clsact, time.Since(t0))
		t0 = time.Now()
		f := &netlink.BpfFilter{FilterAttrs: netlink.FilterAttrs{LinkIndex: idx, Parent: netlink.HANDLE_MIN_INGRESS,
			Handle: 1, Protocol: unix.ETH_P_ALL, Priority: 1}, Fd: prog.FD(), Name: "attachcost", DirectAction: true}
		if err := netlink.FilterAdd(f); err != nil {
			return fmt.Errorf("add cls_bpf filter: %w", err)
		}
		filter = append(filter, time.Since(t0))
	}
	both := make([]time.Duration, len(clsact))
	for i := range clsact {
		both[i] = clsact[i] + filter[i]
	}
	fmt.Printf("%d veths per method, ms: median (min-max)\n", n)
	for _, r := range []struct {
		name string
		d    []time.Duration
	}{
		{"create a veth pair (netlink)", veth},
		{"TCX link (bpf_link_create)", tcx},
		{"clsact qdisc (netlink)", clsact},
		{"cls_bpf filter, direct action (netlink)", filter},
		{"clsact + cls_bpf", both},
	} {
		fmt.Printf("%-42s %s\n", r.name, summary(r.d))
	}
	return nil
}

func summary(d []time.Duration) string {
	s := slices.Clone(d)
	slices.Sort(s)
	ms := func(x time.Duration) float64 { return float64(x) / 1e6 }
	return fmt.Sprintf("%.3f (%.3f-%.3f)", ms(s[len(s)/2]), ms(s[0]), ms(s[len(s)-1]))
}
