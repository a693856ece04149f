package datapath

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/vishvananda/netlink"
	bolt "go.etcd.io/bbolt"
)

// Crash consistency. A command that changes the kernel in several steps
// (attach: veth, map entries, port bindings, TCX link; network create:
// bridge, map entries, uplink) first writes an intent into the store: what
// it is about to make, with the names it chose (veth, bridge, network id,
// address, ports). The record that ends the command and the removal of the
// intent are one transaction (putDone), so the store always either has the
// record or the intent. A command that fails rolls back and removes its
// intent; a command that dies (SIGKILL, OOM, power) leaves the intent.
//
// Commands of one instance hold the store's file lock from before the
// intent until after the record, so an intent seen by a command holding
// the lock belongs to a command that died: the next command (any, at store
// open) or the daemon's next pass rolls it back, as the dead command's own
// rollback would have. Rolling back, not completing, is always right: the
// dead command never reported success.
//
// Cost: one small extra bbolt transaction (one fsync) per attach and per
// network create; the end of the intent rides in the record's transaction.

const (
	intentAttach  = "attach"
	intentNetwork = "network"
)

// intent is what a command is about to make in the kernel.
type intent struct {
	Kind string `json:"kind"`
	// Endpoint: attach. Name, network, IP, MAC, host veth name and ports
	// are known before the kernel is touched; the ifindex is found again
	// from the veth's name or the address's map entry.
	Endpoint *Endpoint `json:"endpoint,omitempty"`
	// Network: network create. Name, id, subnet, bridge and uplink.
	Network *Network  `json:"network,omitempty"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
}

func intentKey(kind, name string) []byte { return []byte(kind + "/" + name) }

func (in intent) key() []byte {
	if in.Kind == intentAttach {
		return intentKey(in.Kind, in.Endpoint.Name)
	}
	return intentKey(in.Kind, in.Network.Name)
}

func (s *store) putIntent(in intent) error {
	in.PID, in.Started = os.Getpid(), time.Now().UTC()
	raw, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return s.updateUnsynced(func(tx *bolt.Tx) error { return tx.Bucket(bucketIntents).Put(in.key(), raw) })
}

func (s *store) deleteIntent(in intent) error {
	return s.updateUnsynced(func(tx *bolt.Tx) error { return tx.Bucket(bucketIntents).Delete(in.key()) })
}

// intents lists the pending intents, attaches first (they use networks).
func (s *store) intents() ([]intent, error) {
	var attaches, nets []intent
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketIntents)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, raw []byte) error {
			var in intent
			if err := json.Unmarshal(raw, &in); err != nil {
				return fmt.Errorf("intent %s: %w", k, err)
			}
			switch {
			case in.Kind == intentAttach && in.Endpoint != nil:
				attaches = append(attaches, in)
			case in.Kind == intentNetwork && in.Network != nil:
				nets = append(nets, in)
			default:
				return fmt.Errorf("intent %s: unknown kind %q", k, in.Kind)
			}
			return nil
		})
	})
	return append(attaches, nets...), err
}

// beginAttach records an attach's intent before its first kernel change;
// the rollback removes it again (added first, so it runs last).
func (i *Instance) beginAttach(st *store, ep Endpoint, ports []PortMapping, rollback *undo) error {
	ep.Ports = ports
	in := intent{Kind: intentAttach, Endpoint: &ep}
	if err := st.putIntent(in); err != nil {
		return fmt.Errorf("record attach intent: %w", err)
	}
	rollback.add(func() {
		if err := st.deleteIntent(in); err != nil {
			i.log.Warn("remove attach intent", "endpoint", ep.Name, "err", err)
		}
	})
	return nil
}

// beginNetwork records a network create's intent before its first kernel
// change.
func (i *Instance) beginNetwork(st *store, n Network, rollback *undo) error {
	in := intent{Kind: intentNetwork, Network: &n}
	if err := st.putIntent(in); err != nil {
		return fmt.Errorf("record network intent: %w", err)
	}
	rollback.add(func() {
		if err := st.deleteIntent(in); err != nil {
			i.log.Warn("remove network intent", "network", n.Name, "err", err)
		}
	})
	return nil
}

// recoverIntents rolls back what commands that died left half made. It runs
// at every store open (a read transaction when there is nothing to do).
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
		i.log.Warn("rolled back what a command that died left half done", "op", in.Kind, "what", string(in.key()), "pid", in.PID, "started", in.Started)
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
// entries and flows of its address. An endpoint record of that name, if
// the store has one, is another attach's and is left alone.
func (i *Instance) undoAttach(st *store, ep Endpoint) error {
	if _, ok, err := st.endpoint(ep.Name); err != nil || ok {
		return err
	}
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
