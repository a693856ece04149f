package datapath

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/ebpfnet/ebpfnet/datapath/plumbing"
	"github.com/ebpfnet/ebpfnet/datapath/ports"
	"github.com/ebpfnet/ebpfnet/maps"
)

// Prepared endpoints are for runtimes that move the container's interface
// into their sandbox themselves (Docker's remote network drivers): ebpfnet
// makes the veth pair with both ends in the host's namespace, programs the
// host end, and the runtime moves, renames and addresses the other end. The
// endpoint is keyed by the runtime's ID (Owner) and lives as long as its
// host veth: the container end dies with the sandbox, and the pair with it.

// PrepareOptions describe a prepared endpoint.
type PrepareOptions struct {
	Network string // the network's name
	IP      string // the container's address, chosen by the runtime's IPAM
	// IP6 is the container's global IPv6 address on a dual-stack network,
	// chosen by the runtime's IPAM; empty: the network's next free one.
	// Its link-local address is the EUI-64 one of the MAC, the kernel's
	// default for the interface the runtime brings up.
	IP6 string
	MAC string // empty: derived from the IP as Docker does
	// Owner is the runtime's key (a Docker endpoint ID), stored as the
	// endpoint's ContainerID; EndpointFor(Owner, "") finds it.
	Owner string
	// Name is the endpoint's name; empty: the first 12 characters of Owner.
	Name string
}

// PrepareEndpoint creates a prepared endpoint: the veth pair (host end
// "ebp<owner>h" on the network's bridge, container end "ebp<owner>c" left
// down in the host's namespace with the MAC), datapath entries, the
// from_container program and the record. The runtime then moves the
// container end (Endpoint.PeerName) into its sandbox.
func (i *Instance) PrepareEndpoint(o PrepareOptions) (Endpoint, error) {
	var ep Endpoint
	err := i.withStore(func(st *store) (err error) {
		start := time.Now()
		if ep, err = i.prepare(st, o); err != nil {
			return err
		}
		return st.observe(OpAttach, time.Since(start))
	})
	return ep, err
}

func (i *Instance) prepare(st *store, o PrepareOptions) (Endpoint, error) {
	if err := validContainerID(o.Owner); err != nil {
		return Endpoint{}, err
	}
	name := o.Name
	if name == "" {
		name = o.Owner[:min(12, len(o.Owner))]
	}
	if err := ValidName(name); err != nil {
		return Endpoint{}, fmt.Errorf("endpoint name: %w", err)
	}
	n, ok, err := st.network(o.Network)
	if err != nil {
		return Endpoint{}, err
	}
	if !ok {
		return Endpoint{}, notFoundf("network %s not found", o.Network)
	}
	eps, err := st.endpoints()
	if err != nil {
		return Endpoint{}, err
	}
	used := map[netip.Addr]string{}
	for _, e := range eps {
		if e.Name == name {
			return Endpoint{}, existsf("endpoint %s already exists", name)
		}
		if e.ContainerID == o.Owner {
			return Endpoint{}, existsf("endpoint %s already exists for %s", e.Name, o.Owner)
		}
		if e.Network == n.Name {
			if e.IP.IsValid() {
				used[e.IP] = e.Name
			}
			if e.IP6.IsValid() {
				used[e.IP6] = e.Name
			}
		}
	}
	var ip netip.Addr
	if o.IP != "" || n.Subnet.IsValid() { // an IPv6-only network's endpoints have none
		if ip, err = checkRequestedIP(n, o.IP, used); err != nil {
			return Endpoint{}, err
		}
	}
	var ip6 netip.Addr
	switch {
	case o.IP6 != "":
		if ip6, err = checkRequestedIP6(n, o.IP6, used); err != nil {
			return Endpoint{}, err
		}
	case n.Subnet6.IsValid():
		if ip6, err = allocateIP6(n, used); err != nil {
			return Endpoint{}, err
		}
	}
	mac, err := endpointMAC(o.MAC, ip)
	if err != nil {
		return Endpoint{}, err
	}
	tag := o.Owner[:min(10, len(o.Owner))]
	ep := Endpoint{
		Name: name, Mode: ModeBridge, ContainerID: o.Owner, Network: n.Name, IP: ip, IP6: ip6, MAC: mac.String(),
		HostVeth: "ebp" + tag + "h", PeerName: "ebp" + tag + "c",
	}
	for _, ifname := range []string{ep.HostVeth, ep.PeerName} {
		if _, err := netlink.LinkByName(ifname); err == nil {
			return Endpoint{}, existsf("interface %s already exists", ifname)
		}
	}
	br, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		return Endpoint{}, fmt.Errorf("bridge %s of network %s is missing: %w", n.Bridge, n.Name, err)
	}
	views, err := i.datapath()
	if err != nil {
		return Endpoint{}, err
	}

	var rollback undo
	defer rollback.run()
	if err := plumbing.AddPreparedVeth(plumbing.Veth{
		Host: ep.HostVeth, Peer: ep.PeerName, PeerMAC: mac, MTU: n.MTU, BridgeIndex: br.Attrs().Index, Hairpin: n.hairpin(),
	}, &ep.HostIfindex, rollback.add); err != nil {
		return Endpoint{}, err
	}
	if err := enableForwarding(ep.HostVeth, ip6.IsValid()); err != nil {
		return Endpoint{}, err
	}
	if err := views.PutEndpoint(maps.Endpoint{IP: ip, MAC: mac, NetID: n.ID, Ifindex: ep.HostIfindex, Overlay: n.VNI != 0, IP6: ip6}); err != nil {
		return Endpoint{}, err
	}
	rollback.add(func() { views.DeleteEndpoint(ep.HostIfindex, ip) })
	// Maps first, program second: the program drops traffic from
	// interfaces it does not know.
	if err := runSteps(&rollback, i.attachProgram(&ep.HostIfindex, ep.HostVeth, false)); err != nil {
		return Endpoint{}, err
	}
	ep.Created = time.Now().UTC()
	if err := st.putEndpoint(ep); err != nil {
		return Endpoint{}, fmt.Errorf("save endpoint: %w", err)
	}
	rollback = nil
	i.log.Info("endpoint prepared", "endpoint", ep.Name, "network", ep.Network, "ip", ep.IP, "ip6", ep.IP6, "veth", ep.HostVeth, "peer", ep.PeerName)
	return ep, nil
}

// SetEndpointSandbox records where the runtime put a prepared endpoint's
// container end (Docker's sandbox key, a netns path), for ls and inspect.
func (i *Instance) SetEndpointSandbox(target, sandbox string) (Endpoint, error) {
	var ep Endpoint
	err := i.withStore(func(st *store) (err error) {
		if ep, err = findEndpoint(st, target); err != nil {
			return err
		}
		if ep.PeerName == "" {
			return fmt.Errorf("endpoint %s was not prepared for a runtime", ep.Name)
		}
		ep.Netns = sandbox
		return st.putEndpoint(ep)
	})
	return ep, err
}

// PublishPorts publishes ports of an attached bridge endpoint. Requests it
// already satisfies are kept as they are (a runtime may repeat itself);
// the others are checked as attach checks them, given host ports, and
// installed all or none. It returns the endpoint's ports afterwards.
func (i *Instance) PublishPorts(target string, reqs []ports.Request) ([]ports.Mapping, error) {
	var out []ports.Mapping
	err := i.withStore(func(st *store) error {
		ep, err := findEndpoint(st, target)
		if err != nil {
			return err
		}
		if ep.Mode != ModeBridge {
			return fmt.Errorf("endpoint %s is not in bridge mode: it cannot publish ports", ep.Name)
		}
		n, ok, err := st.network(ep.Network)
		if err != nil {
			return err
		}
		if ok && n.Internal && len(reqs) > 0 {
			return fmt.Errorf("network %s is --internal: it has no outside to publish ports to", n.Name)
		}
		if reqs, err = portFamilies(reqs, n, ok); err != nil {
			return err
		}
		eps, err := st.endpoints()
		if err != nil {
			return err
		}
		eps = slices.DeleteFunc(eps, func(e Endpoint) bool { return e.Name == ep.Name })
		if reqs, err = ports.CheckRequests(reqs); err != nil {
			return err
		}
		var want []ports.Request
		for _, r := range reqs {
			if !slices.ContainsFunc(ep.Ports, r.SatisfiedBy) {
				want = append(want, r)
			}
		}
		if len(want) == 0 {
			out = ep.Ports
			return nil
		}
		free, err := ports.HostPortProbe(nil)
		if err != nil {
			return err
		}
		added, err := ports.Assign(want, holders(eps), holder(ep), free)
		if err != nil {
			return err
		}
		views, err := i.datapath()
		if err != nil {
			return err
		}
		var rollback undo
		defer rollback.run()
		bs := bindings(added, ep)
		if err := views.PutPortEntries(bs); err != nil {
			return err
		}
		rollback.add(func() { views.DeletePortEntries(bs) })
		ep.Ports = append(ep.Ports, added...)
		if err := st.putEndpoint(ep); err != nil {
			return fmt.Errorf("save endpoint: %w", err)
		}
		rollback = nil
		out = ep.Ports
		i.log.Info("ports published", "endpoint", ep.Name, "ports", added)
		return nil
	})
	return out, err
}

// UnpublishPorts removes every published port of an endpoint and returns
// what it removed. Flows already translated run on until they expire.
func (i *Instance) UnpublishPorts(target string) ([]ports.Mapping, error) {
	var out []ports.Mapping
	err := i.withStore(func(st *store) error {
		ep, err := findEndpoint(st, target)
		if err != nil || len(ep.Ports) == 0 {
			return err
		}
		views, err := i.datapath()
		if err != nil {
			return err
		}
		if err := views.DeletePortEntries(bindings(ep.Ports, ep)); err != nil {
			return fmt.Errorf("unpublish ports of %s: %w", ep.Name, err)
		}
		out, ep.Ports = ep.Ports, nil
		i.log.Info("ports unpublished", "endpoint", ep.Name, "ports", out)
		return st.putEndpoint(ep)
	})
	return out, err
}

// idle reports whether the instance has nothing for background work to
// do: the datapath is not loaded (or its pins were removed, as the last
// `network rm` does) and the store holds no network or endpoint. Loading
// it then would pin an empty datapath again behind that network rm, in a
// process (the Docker plugin) that runs for as long as the host.
func (i *Instance) idle() bool {
	i.mu.Lock()
	loaded := i.dp != nil && i.pinsCurrent()
	i.mu.Unlock()
	if loaded {
		return false
	}
	idle := false
	i.withStore(func(st *store) error {
		nets, err := st.networks()
		eps, err2 := st.endpoints()
		idle = err == nil && err2 == nil && len(nets) == 0 && len(eps) == 0
		return nil
	})
	return idle
}
