package datapath

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

// sweepOrphans6 removes IPv6 endpoint entries no stored endpoint accounts
// for (its global address for its veth; its global and link-local
// addresses delivering to it), marking the veths they name as orphans.
func (i *Instance) sweepOrphans6(views *maps.Views, eps []Endpoint, orphanIfindex map[int]bool) error {
	stored6 := map[int]netip.Addr{}
	storedIP6 := map[netip.Addr]int{}
	for _, ep := range eps {
		if ep.Mode != ModeBridge || !ep.IP6.IsValid() {
			continue
		}
		mac, _ := net.ParseMAC(ep.MAC)
		stored6[ep.HostIfindex] = ep.IP6
		storedIP6[ep.IP6] = ep.HostIfindex
		storedIP6[maps.LinkLocal(mac)] = ep.HostIfindex
	}
	var errs []error
	byIdx, err := views.Endpoints6()
	errs = append(errs, err)
	for idx, ip := range byIdx {
		if stored6[idx] == ip {
			continue
		}
		i.log.Warn("reconcile: endpoint IPv6 entry no endpoint accounts for: removed", "ifindex", idx, "ip6", ip)
		errs = append(errs, views.DeleteEndpoint6(idx))
		orphanIfindex[idx] = true
	}
	byIP, err := views.EndpointsByIP6()
	errs = append(errs, err)
	for ip, e := range byIP {
		if idx, ok := storedIP6[ip]; ok && idx == e.Ifindex {
			continue
		}
		i.log.Warn("reconcile: endpoint IPv6 address entry no endpoint accounts for: removed", "ip6", ip, "ifindex", e.Ifindex)
		errs = append(errs, views.DeleteEndpointIP6(ip))
		orphanIfindex[e.Ifindex] = true
	}
	return errors.Join(errs...)
}

// hostVethName is the pattern of the host ends attach makes ("veth" and 7
// hex digits, endpoint.go).
var hostVethName = regexp.MustCompile(`^veth[0-9a-f]{7}$`)

// sweepOrphans compares the kernel with the store and removes what no
// stored network or endpoint accounts for: endpoint, port, network and
// subnet map entries; TCX link pins under the pin root; veths that follow
// attach's naming on this instance's bridges, or that an orphan map entry
// or pin names, or whose tc filter runs this instance's from_container;
// bridges that an orphan network entry names. Only what this
// instance's own maps, pins and bridges point at is touched, never an
// interface of another instance in the same namespace. It keeps going past
// errors.
func (i *Instance) sweepOrphans(st *store) error {
	nets, err := st.networks()
	if err != nil {
		return err
	}
	eps, err := st.endpoints()
	if err != nil {
		return err
	}
	if len(nets) == 0 && len(eps) == 0 {
		// An empty instance has released its pins; loading the datapath
		// here would pin it again behind the last command's back. What a
		// crashed command left is in its intent, rolled back on open.
		return nil
	}
	views, err := i.datapath()
	if err != nil {
		return err
	}
	var errs []error
	keep := func(err error) { errs = append(errs, err) }

	storedVeth := map[string]bool{}
	storedIfindex := map[int]netip.Addr{}
	storedIP := map[netip.Addr]int{}
	storedBinding := map[maps.PortEntry]bool{}
	for _, ep := range eps {
		if ep.Mode != ModeBridge {
			continue
		}
		storedVeth[ep.HostVeth] = true
		storedIfindex[ep.HostIfindex] = ep.IP
		storedIP[ep.IP] = ep.HostIfindex
		for _, p := range ep.Ports {
			storedBinding[normalBinding(binding(p, ep))] = true
		}
	}
	storedNetID := map[uint32]bool{}
	storedBridge := map[string]bool{}
	storedUplink := map[string]bool{}
	for _, n := range nets {
		storedNetID[n.ID] = true
		storedBridge[n.Bridge] = true
		storedUplink[n.Uplink] = true
	}
	orphanIfindex := map[int]bool{} // veths an orphan entry or pin names
	orphanVeth := map[string]bool{}
	var orphanIPs []netip.Addr

	// Endpoint entries, by ifindex and by address.
	byIdx, err := views.EndpointsByIfindex()
	keep(err)
	for _, e := range byIdx {
		if ip, ok := storedIfindex[e.Ifindex]; ok && ip == e.IP {
			continue
		}
		i.log.Warn("reconcile: endpoint map entry no endpoint accounts for: removed", "ifindex", e.Ifindex, "ip", e.IP)
		keep(views.DeleteEndpointIfindex(e.Ifindex))
		orphanIfindex[e.Ifindex] = true
	}
	byIP, err := views.EndpointsByIP()
	keep(err)
	for _, e := range byIP {
		if idx, ok := storedIP[e.IP]; ok && idx == e.Ifindex {
			continue
		}
		i.log.Warn("reconcile: endpoint address entry no endpoint accounts for: removed", "ip", e.IP, "ifindex", e.Ifindex)
		keep(views.DeleteEndpointIP(e.IP))
		orphanIfindex[e.Ifindex] = true
		if _, ok := storedIP[e.IP]; !ok {
			orphanIPs = append(orphanIPs, e.IP)
		}
	}
	keep(i.sweepOrphans6(views, eps, orphanIfindex))
	// Published ports.
	bindings, err := views.PortEntries()
	keep(err)
	for _, b := range bindings {
		if storedBinding[normalBinding(b)] {
			continue
		}
		i.log.Warn("reconcile: published port no endpoint accounts for: removed", "port", b.HostPort, "proto", maps.ProtoName(b.Proto), "to", b.ContainerIP)
		keep(views.DeletePortEntry(b))
		orphanIfindex[b.Ifindex] = true
	}
	// Their flows.
	for _, ip := range orphanIPs {
		_, err := views.DeleteEndpointFlows(ip)
		keep(err)
	}

	// Networks and subnets.
	orphanBridgeIfindex := map[int]bool{}
	netEntries, err := views.Networks()
	keep(err)
	for _, n := range netEntries {
		if storedNetID[n.ID] {
			continue
		}
		i.log.Warn("reconcile: network map entry no network accounts for: removed", "id", n.ID, "subnet", n.Subnet)
		keep(views.DeleteNetwork(n.ID, n.Subnet))
		orphanBridgeIfindex[n.BridgeIfindex] = true
	}
	subnets, err := views.Subnets()
	keep(err)
	for p, id := range subnets {
		if !storedNetID[id] {
			keep(views.DeleteSubnet(p))
		}
	}
	subnets6, err := views.Subnets6()
	keep(err)
	for p, id := range subnets6 {
		if !storedNetID[id] {
			keep(views.DeleteSubnet6(p, id))
		}
	}

	// Link pins.
	pinDir := filepath.Join(i.pins, "links")
	ents, err := os.ReadDir(pinDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		keep(err)
	}
	for _, e := range ents {
		ifname, prog, ok := strings.Cut(e.Name(), ":")
		if !ok {
			continue
		}
		switch {
		case prog == loader.ProgFromContainer && !storedVeth[ifname]:
			i.log.Warn("reconcile: program link no endpoint accounts for: removed", "interface", ifname)
			keep(i.dp.DetachTCX(prog, ifname))
			orphanVeth[ifname] = true
		case prog == loader.ProgFromUplink && !storedUplink[ifname]:
			i.log.Warn("reconcile: uplink program no network uses: removed", "uplink", ifname)
			keep(i.releaseUplink(ifname, nets))
		}
	}

	// Interfaces.
	links, err := netlink.LinkList()
	keep(err)
	bridgeIdx := map[int]bool{}
	for _, l := range links {
		if _, ok := l.(*netlink.Bridge); ok && storedBridge[l.Attrs().Name] {
			bridgeIdx[l.Attrs().Index] = true
		}
	}
	for _, l := range links {
		a := l.Attrs()
		switch l.(type) {
		case *netlink.Veth:
			if storedVeth[a.Name] || !hostVethName.MatchString(a.Name) {
				continue
			}
			if !bridgeIdx[a.MasterIndex] && !orphanIfindex[a.Index] && !orphanVeth[a.Name] && !i.runsOurProgram(a.Index) {
				continue // not this instance's
			}
			i.log.Warn("reconcile: veth no endpoint accounts for: removed", "veth", a.Name)
			keep(i.dp.DetachTCX(loader.ProgFromContainer, a.Name))
			keep(netlink.LinkDel(l))
		case *netlink.Bridge:
			if orphanBridgeIfindex[a.Index] && !storedBridge[a.Name] {
				i.log.Warn("reconcile: bridge no network accounts for: removed", "bridge", a.Name)
				keep(netlink.LinkDel(l))
			}
		}
	}
	return errors.Join(errs...)
}

// runsOurProgram reports whether ebpfnet's tc filter at ingress of ifindex
// runs this instance's from_container (another instance's runs its own
// program: the program says whose a veth is, as a link pin did).
func (i *Instance) runsOurProgram(ifindex int) bool {
	want, err := programID(i.dp.Program(loader.ProgFromContainer))
	if err != nil {
		return false
	}
	got, err := loader.TCIngressProgramID(loader.ProgFromContainer, ifindex)
	return err == nil && got == want
}

// normalBinding makes a binding comparable: IPv4 unmapped. 0.0.0.0 (IPv4
// only) and [::] (IPv6 only) are not the zero address (both families).
func normalBinding(b maps.PortEntry) maps.PortEntry {
	b.HostIP = b.HostIP.Unmap()
	return b
}
