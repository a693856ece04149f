package datapath

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/ebpfnet/ebpfnet/datapath/plumbing"
	"github.com/ebpfnet/ebpfnet/datapath/ports"
	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

// CheckEndpoint compares a bridge endpoint's record with the kernel: its
// namespace, the host veth (by name and ifindex), the from_container program
// at its ingress, its datapath map entries and published ports, and inside
// the namespace the interface with its MAC, address and default route. It
// returns one line per problem; none means healthy. err is for when the
// check itself could not run.
func (i *Instance) CheckEndpoint(ep Endpoint) (problems []string, err error) {
	if ep.Mode != ModeBridge {
		return nil, nil
	}
	err = i.withStore(func(st *store) error {
		problems, err = i.checkEndpoint(st, ep)
		return err
	})
	return problems, err
}

func (i *Instance) checkEndpoint(st *store, ep Endpoint) ([]string, error) {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	views, err := i.datapath()
	if err != nil {
		return nil, err
	}

	// Host side.
	if l, err := netlink.LinkByName(ep.HostVeth); err != nil {
		bad("host veth %s is missing", ep.HostVeth)
	} else if l.Attrs().Index != ep.HostIfindex {
		bad("host veth %s has ifindex %d, endpoint has %d", ep.HostVeth, l.Attrs().Index, ep.HostIfindex)
	} else if l.Attrs().OperState == netlink.OperDown {
		bad("host veth %s is down", ep.HostVeth)
	} else if problem := programProblem(ep, i.dp.Program(loader.ProgFromContainer)); problem != "" {
		bad("%s", problem)
	}
	if m, err := views.LookupEndpoint(ep.HostIfindex); err != nil {
		bad("datapath has no endpoint entry for ifindex %d", ep.HostIfindex)
	} else if m.IP != ep.IP || m.MAC.String() != ep.MAC {
		bad("datapath entry for ifindex %d is %s %s, endpoint is %s %s", ep.HostIfindex, m.IP, m.MAC, ep.IP, ep.MAC)
	}
	if ep.IP6.IsValid() {
		checkEndpoint6(views, ep, bad)
	}
	if len(ep.Ports) > 0 {
		missing, err := missingPorts(st, views, ep)
		if err != nil {
			return nil, err
		}
		for _, p := range missing {
			bad("published port %s is missing from the datapath", p)
		}
	}

	if ep.PeerName != "" {
		return problems, nil // the runtime configures the container side
	}
	// Container side.
	ns, err := netnsutil.Resolve(ep.Netns)
	if err != nil || ns.Ino != ep.NetnsIno {
		bad("network namespace %s is gone", ep.Netns)
		return problems, nil
	}
	err = plumbing.WithHandle(ns, func(h *netlink.Handle) error {
		l, err := h.LinkByName(ep.Interface())
		if err != nil {
			bad("interface %s is missing in %s", ep.Interface(), ep.Netns)
			return nil
		}
		if l.Attrs().HardwareAddr.String() != ep.MAC {
			bad("interface %s has MAC %s, endpoint has %s", ep.Interface(), l.Attrs().HardwareAddr, ep.MAC)
		}
		for _, want := range []struct {
			family int
			ip     netip.Addr
		}{{netlink.FAMILY_V4, ep.IP}, {netlink.FAMILY_V6, ep.IP6}} {
			if !want.ip.IsValid() {
				continue
			}
			addrs, err := h.AddrList(l, want.family)
			if err != nil {
				return err
			}
			if !slices.ContainsFunc(addrs, func(a netlink.Addr) bool {
				ip, ok := netip.AddrFromSlice(a.IP)
				return ok && ip.Unmap() == want.ip
			}) {
				bad("interface %s lacks address %s", ep.Interface(), want.ip)
			}
		}
		// The first network gives the default route (plumbVeth); an
		// interface added later has none of its own.
		if ep.IP.IsValid() && !plumbing.HasDefaultRoute(h) {
			bad("no default route via %s in %s", ep.Interface(), ep.Netns)
		}
		if !ep.IP.IsValid() && !plumbing.HasDefaultRoute6(h) {
			bad("no IPv6 default route via %s in %s", ep.Interface(), ep.Netns)
		}
		return nil
	})
	return problems, err
}

// checkEndpoint6 compares a dual-stack endpoint's IPv6 entries with its
// record: its global address for its ifindex, and both its addresses
// delivering to it.
func checkEndpoint6(views *maps.Views, ep Endpoint, bad func(string, ...any)) {
	if ip6, err := views.LookupEndpoint6(ep.HostIfindex); err != nil || ip6 != ep.IP6 {
		bad("datapath has no IPv6 address %s for ifindex %d", ep.IP6, ep.HostIfindex)
	}
	mac, _ := net.ParseMAC(ep.MAC)
	for _, a := range []netip.Addr{ep.IP6, maps.LinkLocal(mac)} {
		if m, err := views.LookupEndpointIP6(a); err != nil || m.Ifindex != ep.HostIfindex {
			bad("datapath does not deliver %s to ifindex %d", a, ep.HostIfindex)
		}
	}
}

// programProblem says what is wrong with from_container (prog) at ingress
// of ep's host veth, asking the kernel rather than the store or the pins:
// ebpfnet's tc filter must run it, or, on an endpoint an older build
// attached, a TCX link. Empty: nothing.
func programProblem(ep Endpoint, prog *ebpf.Program) string {
	want, err := programID(prog)
	if err != nil {
		return fmt.Sprintf("%s: %v", loader.ProgFromContainer, err)
	}
	got, err := loader.TCIngressProgramID(loader.ProgFromContainer, ep.HostIfindex)
	switch {
	case err != nil:
		return fmt.Sprintf("tc filters at ingress of %s: %v", ep.HostVeth, err)
	case got == want || tcxAttached(ep.HostIfindex, want):
		return ""
	case got != 0:
		return fmt.Sprintf("tc filter %s at ingress of %s runs program %d, not the current %s (program %d)",
			loader.TCFilterName(loader.ProgFromContainer), ep.HostVeth, got, loader.ProgFromContainer, want)
	}
	return fmt.Sprintf("%s is not attached at ingress of %s (no tc filter %s, no TCX link)",
		loader.ProgFromContainer, ep.HostVeth, loader.TCFilterName(loader.ProgFromContainer))
}

func programID(prog *ebpf.Program) (ebpf.ProgramID, error) {
	if prog == nil {
		return 0, errors.New("program not loaded")
	}
	info, err := prog.Info()
	if err != nil {
		return 0, err
	}
	id, ok := info.ID()
	if !ok {
		return 0, errors.New("kernel reports no program ID")
	}
	return id, nil
}

// tcxAttached reports whether program id runs at TCX ingress of ifindex.
func tcxAttached(ifindex int, id ebpf.ProgramID) bool {
	res, err := link.QueryPrograms(link.QueryOptions{Target: ifindex, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		return false
	}
	return slices.ContainsFunc(res.Programs, func(p link.AttachedProgram) bool { return p.ID == id })
}

// missingPorts lists ep's published ports the datapath does not bind: to
// ep, or, for a runtime-held port another interface of the container
// publishes too, to that interface (ports.Assign).
func missingPorts(st *store, views *maps.Views, ep Endpoint) ([]ports.Mapping, error) {
	have, err := views.PortEntries()
	if err != nil {
		return nil, err
	}
	installed := make(map[maps.PortEntry]maps.PortEntry, len(have))
	for _, b := range have {
		installed[portKeyOf(b)] = b
	}
	eps, err := st.endpoints()
	if err != nil {
		return nil, err
	}
	var missing []ports.Mapping
	for _, p := range ep.Ports {
		want := binding(p, ep)
		got, ok := installed[portKeyOf(want)]
		switch {
		case ok && got == want:
		case ok && p.RuntimeHeld && boundToSibling(got, ep, eps):
		default:
			missing = append(missing, p)
		}
	}
	return missing, nil
}

// boundToSibling reports whether b delivers to another interface of ep's
// container.
func boundToSibling(b maps.PortEntry, ep Endpoint, eps []Endpoint) bool {
	return ep.ContainerID != "" && slices.ContainsFunc(eps, func(e Endpoint) bool {
		return e.Name != ep.Name && e.ContainerID == ep.ContainerID && e.IP == b.ContainerIP && e.HostIfindex == b.Ifindex
	})
}
