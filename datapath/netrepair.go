package datapath

import (
	"fmt"

	"github.com/vishvananda/netlink"

	"github.com/ebpfnet/ebpfnet/datapath/plumbing"
)

// repairNetworks makes the bridge of every stored network that lost it
// again, and with it what the datapath and the endpoints need of it: the
// network's map entry (the bridge's ifindex), the uplink, the endpoints'
// veths as its ports. A network is left without its bridge by a network rm
// that failed half way or died before intents covered removals, or by
// `ip link del` behind ebpfnet's back; until repaired, every attach to it
// fails ("bridge ebpfnetN of network N is missing"). A removal that died
// with its intent is finished instead, before this runs (recoverIntents).
// The daemon runs it each pass; errors are logged, the next pass retries.
func (i *Instance) repairNetworks(st *store) {
	nets, err := st.networks()
	if err != nil {
		i.log.Warn("reconcile: list networks", "err", err)
		return
	}
	for _, n := range nets {
		if _, err := netlink.LinkByName(n.Bridge); err == nil {
			continue
		}
		if err := i.rebuildBridge(st, n); err != nil {
			i.log.Warn("reconcile: network lost its bridge and it could not be made again", "network", n.Name, "bridge", n.Bridge, "err", err)
			continue
		}
		i.log.Warn("reconcile: network had lost its bridge: made it again", "network", n.Name, "bridge", n.Bridge)
	}
}

// rebuildBridge makes n's bridge anew and points the datapath and n's
// endpoints at it. It undoes the bridge if anything fails.
func (i *Instance) rebuildBridge(st *store, n Network) error {
	views, err := i.datapath()
	if err != nil {
		return err
	}
	var rollback undo
	defer rollback.run()
	bridge, err := makeBridge(n, &rollback)
	if err != nil {
		return err
	}
	overlayIfindex := 0
	if n.VNI != 0 {
		if overlayIfindex, err = i.ensureOverlayDevice(n.MTU+VXLANOverhead, &rollback); err != nil {
			return err
		}
	}
	if err := views.PutNetwork(networkEntry(n, bridge, overlayIfindex)); err != nil {
		return err
	}
	if !n.Internal {
		if err := i.ensureUplink(n.Uplink, &rollback); err != nil {
			return err
		}
	}
	if err := enslaveEndpoints(st, n, bridge); err != nil {
		return err
	}
	rollback = nil
	return nil
}

// enslaveEndpoints makes the host veths of n's endpoints ports of bridge
// again (a deleted bridge releases its ports).
func enslaveEndpoints(st *store, n Network, bridge netlink.Link) error {
	eps, err := st.endpoints()
	if err != nil {
		return err
	}
	for _, e := range eps {
		if e.Network != n.Name || e.HostVeth == "" {
			continue
		}
		// A vanished veth is the endpoint's liveness, not the network's.
		if err := plumbing.Enslave(e.HostVeth, bridge, n.hairpin()); err != nil {
			return fmt.Errorf("add %s of endpoint %s to bridge %s: %w", e.HostVeth, e.Name, n.Bridge, err)
		}
	}
	return nil
}
