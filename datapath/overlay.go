package datapath

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"

	"github.com/ebpfnet/ebpfnet/datapath/plumbing"
	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

// An overlay network is, on each host, a bridge network like any other (a
// local bridge holding the same gateway address on every host, masquerade
// and published ports through the host's own uplink) plus a VNI: its
// endpoints on other hosts are reached through the host's VXLAN device,
// which from_container sends to with the tunnel key set per packet and
// from_overlay receives from. The cluster (package cluster) says which
// remote endpoints and peer hosts exist; package overlay, run by the process
// serving the host, writes them here: SyncOverlay.
const (
	// DriverOverlay is Network.Driver of an overlay network.
	DriverOverlay = "overlay"
	// OverlayDevice is the host's VXLAN device, one per network namespace
	// (it owns UDP port VXLANPort), shared by every overlay network.
	OverlayDevice = "ebpfnet_vxlan"
	// VXLANPort is the IANA VXLAN port, as Docker's overlay driver uses
	// (from_uplink's fast path for VXLAN knows it too).
	VXLANPort = loader.VXLANPort
	// VXLANOverhead is what VXLAN over IPv4 adds to a frame: outer IPv4
	// (20), UDP (8), VXLAN (8) and the inner Ethernet header (14).
	VXLANOverhead = 50
	// MaxVNI: a VNI is 24 bits.
	MaxVNI = 1<<24 - 1
)

// RemoteEndpoint is an endpoint of an overlay network on another host.
type RemoteEndpoint struct {
	Network string     `json:"network"`
	IP      netip.Addr `json:"ip"`
	MAC     string     `json:"mac"`
	Host    netip.Addr `json:"host"` // the host's underlay address
}

// OverlayView is what the cluster says this host must know: the other
// hosts' underlay addresses and their endpoints.
type OverlayView struct {
	// Self is this host's underlay address (as the other hosts know it).
	Self      netip.Addr
	Peers     []netip.Addr
	Endpoints []RemoteEndpoint
}

// OverlaySync says what SyncOverlay changed.
type OverlaySync struct {
	Written, Deleted int
	// Skipped are remote endpoints of networks this host does not have.
	Skipped int
}

// ensureOverlayDevice makes the VXLAN device (external: the tunnel key
// comes from the programs; no learning: the cluster store is the only
// source of peers) and links from_overlay to it.
func (i *Instance) ensureOverlayDevice(mtu int, rollback *undo) (int, error) {
	idx, del, err := plumbing.EnsureVXLAN(OverlayDevice, mtu, VXLANPort)
	if del != nil {
		rollback.add(del)
	}
	if err != nil {
		return 0, err
	}
	if err := i.linkOverlayDevice(idx, rollback); err != nil {
		return 0, err
	}
	return idx, nil
}

// linkOverlayDevice links from_overlay (what other hosts send) and from_host
// (what this host's stack sends to their endpoints) to the VXLAN device,
// each unless it is linked.
func (i *Instance) linkOverlayDevice(idx int, rollback *undo) error {
	for _, l := range []struct {
		prog   string
		attach func(string, int, string) (ebpf.ProgramID, error)
	}{{loader.ProgFromOverlay, i.dp.AttachTCXIngress}, {loader.ProgFromHost, i.dp.AttachTCXEgress}} {
		if i.dp.LinkedProgramID(l.prog, OverlayDevice) != 0 {
			continue
		}
		if _, err := l.attach(l.prog, idx, OverlayDevice); err != nil {
			return err
		}
		if rollback != nil {
			rollback.add(func() { i.dp.DetachTCX(l.prog, OverlayDevice) })
		}
	}
	return nil
}

// releaseOverlay removes an overlay network's remote endpoints and, with
// no overlay network left, the VXLAN device.
func (i *Instance) releaseOverlay(views *maps.Views, n Network, remaining []Network) error {
	_, _, err := views.SyncRemoteEndpoints([]uint32{n.ID}, nil)
	if hasOverlay(remaining) {
		return err
	}
	errs := []error{err, views.SyncOverlayHosts(nil), views.SetOverlaySelf(netip.Addr{}),
		i.dp.DetachTCX(loader.ProgFromOverlay, OverlayDevice), i.dp.DetachTCX(loader.ProgFromHost, OverlayDevice)}
	errs = append(errs, plumbing.DeleteLink(OverlayDevice))
	return errors.Join(errs...)
}

// EnsureOverlayNetwork makes this host's part of an overlay network (o.VNI
// set) unless it exists; an existing one must have the same VNI and subnet.
func (i *Instance) EnsureOverlayNetwork(o NetworkOptions) (Network, error) {
	if o.VNI == 0 {
		return Network{}, errors.New("an overlay network needs a VNI")
	}
	var n Network
	err := i.withStore(func(st *store) error {
		have, ok, err := st.network(o.Name)
		if err != nil {
			return err
		}
		if !ok {
			n, err = i.createNetwork(st, o)
			return err
		}
		if have.VNI != o.VNI || have.Subnet.String() != o.Subnet || (have.Subnet6.IsValid() && have.Subnet6.String() != o.Subnet6) || have.Subnet6.IsValid() != (o.Subnet6 != "") {
			return fmt.Errorf("network %s exists on this host as %s (VNI %d), not as the cluster's overlay network %s (VNI %d)",
				o.Name, have.Subnet, have.VNI, o.Subnet, o.VNI)
		}
		n = have
		return nil
	})
	return n, err
}

// SyncOverlay makes the datapath's remote endpoints and peer hosts exactly
// the view's, for the overlay networks this host has (remote endpoints of
// others are skipped). It is idempotent: a resync replays the whole view.
func (i *Instance) SyncOverlay(v OverlayView) (OverlaySync, error) {
	var res OverlaySync
	err := i.withStore(func(st *store) error {
		nets, err := st.networks()
		if err != nil {
			return err
		}
		ids := map[string]uint32{}
		var scope []uint32
		for _, n := range nets {
			if n.VNI != 0 {
				ids[n.Name] = n.ID
				scope = append(scope, n.ID)
			}
		}
		if len(scope) == 0 {
			return nil // no datapath to program: nothing would use it
		}
		views, err := i.datapath()
		if err != nil {
			return err
		}
		var want []maps.RemoteEndpoint
		for _, r := range v.Endpoints {
			id, ok := ids[r.Network]
			if !ok {
				res.Skipped++
				continue
			}
			mac, err := net.ParseMAC(r.MAC)
			if err != nil {
				return fmt.Errorf("remote endpoint %s: %w", r.IP, err)
			}
			want = append(want, maps.RemoteEndpoint{IP: r.IP, MAC: mac, NetID: id, Host: r.Host})
		}
		selfErr := views.SetOverlaySelf(v.Self)
		hostsErr := views.SyncOverlayHosts(v.Peers)
		res.Written, res.Deleted, err = views.SyncRemoteEndpoints(scope, want)
		return errors.Join(selfErr, hostsErr, err, i.syncHostPath(v.Self, want))
	})
	return res, err
}

// syncHostPath gives this host's stack its path to the remote endpoints: a
// /32 route each through the VXLAN device, with the host's underlay
// address as source, which the device holds too (masquerade takes a
// device's address); from_host (linked here too, for a device made by a
// release without it) tunnels what the stack sends there.
func (i *Instance) syncHostPath(self netip.Addr, remote []maps.RemoteEndpoint) error {
	l, err := netlink.LinkByName(OverlayDevice)
	if err != nil {
		return nil // no overlay network here yet
	}
	ips := make([]netip.Addr, 0, len(remote))
	for _, r := range remote {
		if r.IP.Is4() { // the host's own IPv6 has no path to other hosts' endpoints
			ips = append(ips, r.IP)
		}
	}
	return errors.Join(
		i.linkOverlayDevice(l.Attrs().Index, nil),
		netlink.LinkSetARPOff(l),
		plumbing.SetSoleAddress(OverlayDevice, self),
		plumbing.SyncHostRoutes(OverlayDevice, self, ips),
	)
}

// OverlayPeer is the traffic with one peer host.
type OverlayPeer = maps.OverlayHostStats

// OverlayPeers lists the peer hosts the datapath knows and their traffic.
func (i *Instance) OverlayPeers() ([]OverlayPeer, error) {
	var out []OverlayPeer
	err := i.withStore(func(st *store) error {
		if nets, err := st.networks(); err != nil || !hasOverlay(nets) {
			return err
		}
		views, err := i.datapath()
		if err != nil {
			return err
		}
		out, err = views.OverlayHosts()
		return err
	})
	slices.SortFunc(out, func(a, b OverlayPeer) int { return a.Host.Compare(b.Host) })
	return out, err
}

// RemoteEndpoints lists the remote endpoints the datapath holds.
func (i *Instance) RemoteEndpoints() ([]RemoteEndpoint, error) {
	var out []RemoteEndpoint
	err := i.withStore(func(st *store) error {
		nets, err := st.networks()
		if err != nil || !hasOverlay(nets) {
			return err
		}
		names := map[uint32]string{}
		for _, n := range nets {
			names[n.ID] = n.Name
		}
		views, err := i.datapath()
		if err != nil {
			return err
		}
		rs, err := views.RemoteEndpoints()
		for _, r := range rs {
			out = append(out, RemoteEndpoint{Network: names[r.NetID], IP: r.IP, MAC: r.MAC.String(), Host: r.Host})
		}
		return err
	})
	slices.SortFunc(out, func(a, b RemoteEndpoint) int { return a.IP.Compare(b.IP) })
	return out, err
}

func hasOverlay(nets []Network) bool {
	return slices.ContainsFunc(nets, func(n Network) bool { return n.VNI != 0 })
}
