package datapath

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/ebpfnet/ebpfnet/datapath/ports"
	boltstore "github.com/ebpfnet/ebpfnet/datapath/store"
)

// Crash consistency. A command that changes the kernel in several steps
// (attach: veth, map entries, port bindings, program; network create:
// bridge, map entries, uplink) first writes an intent into the store: what
// it is about to make, with the names it chose (veth, bridge, network id,
// address, ports). The record that ends the command and the removal of the
// intent are one transaction (putDone), so the store always either has the
// record or the intent. A bridge attach writes its record early, synced,
// right after the intent and beside its kernel changes
// (putPendingEndpoint), and once they are made writes the completed record
// and ends the intent in one transaction (finishAttach); in between the
// store has both, and an intent with a record of its veth is an attach
// that did not finish (undoAttach takes the record with it).
// A command that fails rolls back and removes its intent; a command that
// dies (SIGKILL, OOM, power) leaves the intent.
//
// Commands of one instance hold the store's file lock from before the
// intent until after the record, so an intent seen by a command holding
// the lock belongs to a command that died: the next command (any, at store
// open) or the daemon's next pass rolls it back, as the dead command's own
// rollback would have. Rolling back, not completing, is always right: the
// dead command never reported success.
//
// Cost: one small extra bbolt transaction (unsynced, see
// store.UpdateUnsynced, some 25 µs) per attach, detach, network create and
// rm; the end of the intent rides in the record's transaction. A bridge
// attach has one synced transaction, the first record's (its fsyncs run
// beside the kernel changes), and one unsynced one that completes the
// record and ends the intent.
//
// Durability. The intent is unsynced: it guards against a command killed
// half way, and what it describes (veth, maps, program) does not survive a
// reboot either. The first record is synced before the attach reports
// (with it the intent, written before it into the same file). The
// completed record and the intent's end are not: a power loss may bring
// back the first record with its intent, and the next command rolls the
// attach back, which is right for an endpoint whose veth, maps and
// namespace died with the machine (the same as before, when the intent's
// end was already unsynced). The two records differ only in what the
// kernel changes found out (ifindexes, the netns cookie, which interface
// holds the default route), state of the kernel that a reboot wipes.
//
// Removals (detach, network rm) write an intent too, and the removal of
// the record ends it in the same transaction. Their intents are finished,
// not rolled back: the user asked for the thing to go, and what a removal
// that died left (a network without its bridge, an endpoint without its
// veth) cannot serve anyway. A removal that fails with an error removes
// its intent and keeps the record, as before, so the user sees the error
// and retries; the daemon repairs a network that lost its bridge
// (repairNetworks).

const (
	intentAttach        = "attach"
	intentNetwork       = "network"
	intentDetach        = "detach"
	intentNetworkRemove = "network-rm"
)

// intent is what a command is about to make in, or remove from, the kernel.
type intent struct {
	Kind string `json:"kind"`
	// Endpoint: attach. Name, network, IP, MAC, host veth name and ports
	// are known before the kernel is touched; the ifindex is found again
	// from the veth's name or the address's map entry. Detach: the record.
	Endpoint *Endpoint `json:"endpoint,omitempty"`
	// Network: network create (name, id, subnet, bridge and uplink) and
	// network rm (the record).
	Network *Network  `json:"network,omitempty"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
}

func (in intent) key() []byte {
	if in.Endpoint != nil {
		return boltstore.IntentKey(in.Kind, in.Endpoint.Name)
	}
	return boltstore.IntentKey(in.Kind, in.Network.Name)
}

func (s *store) putIntent(in intent) error {
	in.PID, in.Started = os.Getpid(), time.Now().UTC()
	return s.PutIntent(in.key(), in)
}

func (s *store) deleteIntent(in intent) error { return s.DeleteIntent(in.key()) }

// intents lists the pending intents, endpoints' first (they use networks):
// attaches, detaches, network creates, network removals.
func (s *store) intents() ([]intent, error) {
	order := []string{intentAttach, intentDetach, intentNetwork, intentNetworkRemove}
	byKind := map[string][]intent{}
	err := s.ForEachIntent(func(k, raw []byte) error {
		var in intent
		if err := json.Unmarshal(raw, &in); err != nil {
			return fmt.Errorf("intent %s: %w", k, err)
		}
		endpointKind := in.Kind == intentAttach || in.Kind == intentDetach
		networkKind := in.Kind == intentNetwork || in.Kind == intentNetworkRemove
		if !(endpointKind && in.Endpoint != nil || networkKind && in.Network != nil) {
			return fmt.Errorf("intent %s: unknown kind %q", k, in.Kind)
		}
		byKind[in.Kind] = append(byKind[in.Kind], in)
		return nil
	})
	var out []intent
	for _, kind := range order {
		out = append(out, byKind[kind]...)
	}
	return out, err
}

// attachIntent is the step that records an attach's intent before its
// first kernel change; its undo, the rollback's last, removes it again.
func (i *Instance) attachIntent(st *store, ep Endpoint, ports []ports.Mapping) step {
	ep.Ports = ports
	in := intent{Kind: intentAttach, Endpoint: &ep}
	return step{name: "store write",
		do: func() error {
			if err := st.putIntent(in); err != nil {
				return fmt.Errorf("record attach intent: %w", err)
			}
			return nil
		},
		undo: func() {
			if err := st.deleteIntent(in); err != nil {
				i.log.Warn("remove attach intent", "endpoint", ep.Name, "err", err)
			}
		},
	}
}

// networkIntent is the step that records a network create's intent before
// its first kernel change.
func (i *Instance) networkIntent(st *store, n Network) step {
	in := intent{Kind: intentNetwork, Network: &n}
	return step{
		do: func() error {
			if err := st.putIntent(in); err != nil {
				return fmt.Errorf("record network intent: %w", err)
			}
			return nil
		},
		undo: func() {
			if err := st.deleteIntent(in); err != nil {
				i.log.Warn("remove network intent", "network", n.Name, "err", err)
			}
		},
	}
}

// beginRemoval records a detach's or network rm's intent before its first
// kernel change. The record's deletion ends it (delDone); done removes it
// when the removal failed with an error instead.
func (i *Instance) beginRemoval(st *store, in intent) (done func(), err error) {
	if err := st.putIntent(in); err != nil {
		return nil, fmt.Errorf("record %s intent: %w", in.Kind, err)
	}
	return func() {
		if err := st.deleteIntent(in); err != nil {
			i.log.Warn("remove intent", "what", string(in.key()), "err", err)
		}
	}, nil
}

// recoverIntents rolls back what commands that died left half made, and
// finishes the removals they left half done. It runs at every store open
// (a read transaction when there is nothing to do).
func (i *Instance) recoverIntents(st *store) error {
	ins, err := st.intents()
	if err != nil || len(ins) == 0 {
		return err
	}
	var errs []error
	for _, in := range ins {
		var err error
		switch in.Kind {
		case intentAttach:
			err = i.undoAttach(st, *in.Endpoint)
		case intentNetwork:
			err = i.undoNetwork(st, *in.Network)
		case intentDetach:
			err = i.finishDetach(st, *in.Endpoint)
		case intentNetworkRemove:
			err = i.finishNetworkRemove(st, *in.Network)
		}
		if err != nil {
			// Kept: the next command tries again.
			errs = append(errs, fmt.Errorf("roll back %s %s: %w", in.Kind, in.key(), err))
			continue
		}
		if err := st.deleteIntent(in); err != nil {
			errs = append(errs, err)
			continue
		}
		i.log.Warn("rolled back or finished what a command that died left half done", "op", in.Kind, "what", string(in.key()), "pid", in.PID, "started", in.Started)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// What the dead commands left but no intent named (a crash of an older
	// version, a half-made default network): compare kernel and store.
	if err := i.sweepOrphans(st); err != nil {
		return err
	}
	return i.releaseIfUnused(st)
}

// undoAttach removes what an attach that died may have made: the link pin,
// the veth pair (the container's eth0 with it), the endpoint and port map
// entries and flows of its address, and its record if it wrote it already
// (putPendingEndpoint: a record of the intent's veth). A record of that
// name for another veth is another attach's and is left alone.
func (i *Instance) undoAttach(st *store, ep Endpoint) error {
	stored, pending, err := st.endpoint(ep.Name)
	if err != nil {
		return err
	}
	if pending && stored.HostVeth != ep.HostVeth {
		return nil
	}
	if pending {
		ep = stored // it knows more to remove: the etc files, the ports
	}
	if err := i.undoAttachKernel(ep); err != nil {
		return err
	}
	if pending {
		return st.dropEndpoint(ep.Name)
	}
	return nil
}

// undoAttachKernel is undoAttach's kernel side.
func (i *Instance) undoAttachKernel(ep Endpoint) error {
	views, err := i.datapath()
	if err != nil {
		return err
	}
	ep.HostIfindex = 0
	if l, err := netlink.LinkByName(ep.HostVeth); err == nil {
		ep.HostIfindex = l.Attrs().Index
	} else if e, err := views.LookupEndpointIP(ep.IP); err == nil {
		ep.HostIfindex = e.Ifindex
	}
	return i.teardown(ep)
}

// undoNetwork removes what a network create that died may have made: its
// map entries (the id is never reused), the uplink's program if no stored
// network uses the uplink, and the bridge (its name did not exist before
// the intent; with it goes the subnet's route).
func (i *Instance) undoNetwork(st *store, n Network) error {
	if _, ok, err := st.network(n.Name); err != nil || ok {
		return err
	}
	return i.removeNetwork(st, n)
}

// finishDetach completes a detach that died: the rest of the kernel side
// (teardown skips what is gone already) and the record, whose deletion
// ends the intent. A record of that name for another veth is another
// endpoint's and stays.
func (i *Instance) finishDetach(st *store, ep Endpoint) error {
	stored, ok, err := st.endpoint(ep.Name)
	if err != nil {
		return err
	}
	if ok && stored.HostVeth != ep.HostVeth {
		return nil
	}
	if err := i.teardown(ep); err != nil {
		return err
	}
	if !ok {
		return nil
	}
	if err := st.deleteEndpoint(ep.Name); err != nil {
		return err
	}
	i.afterDetach(st, ep)
	return nil
}

// finishNetworkRemove completes a network rm that died: the datapath's
// entries, the uplink if no other network uses it, the bridge and the
// record. rm checked that no endpoint used the network and held the lock
// until it died, and this runs before any other command: an endpoint on
// it now would be a surprise, and keeps the network as it is.
func (i *Instance) finishNetworkRemove(st *store, n Network) error {
	stored, ok, err := st.network(n.Name)
	if err != nil {
		return err
	}
	if ok && stored.ID != n.ID {
		return nil // another network of that name
	}
	eps, err := st.endpoints()
	if err != nil {
		return err
	}
	if slices.ContainsFunc(eps, func(e Endpoint) bool { return e.Network == n.Name }) {
		i.log.Warn("a network rm died, but the network has endpoints: kept", "network", n.Name)
		return nil
	}
	if err := i.removeNetwork(st, n); err != nil {
		return err
	}
	return i.applyFirewall(st)
}
