package datapath

import (
	"encoding/json"
	"net/netip"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/ebpfnet/ebpfnet/datapath/ports"
	"github.com/ebpfnet/ebpfnet/maps"
)

// Runtime-held ports (ports.Mapping.RuntimeHeld) across a runtime's DEL and
// ADD. Podman binds each published host port with a socket conmon holds
// for the container's whole life. `podman network reload` is a CNI DEL and
// then an ADD with the same portMappings while conmon still holds them, so
// the ADD's check for host sockets on the port would find conmon's and
// refuse, leaving the container without its interface. A DEL therefore
// remembers which sockets held the container's runtime-held ports (by
// inode: the kernel names an open socket by it, and no other socket has it
// while it is open), and that container's next ADD does not count those
// sockets as a host service. Any other socket on the port still conflicts.
//
// A container on two networks (`podman network connect`) asks both for
// the same ports: the datapath keeps one binding per host port, the first
// interface's; the other interface's record lists the port too and stands
// by (ports.Assign), and takes the binding over when the first
// interface goes (handOverRuntimePorts).

type runtimeSocketsRecord struct {
	Inodes []uint64 `json:"inodes"`
}

// runtimeSocketsOf returns the sockets remembered for container.
func (s *store) runtimeSocketsOf(container string) (map[uint64]bool, error) {
	if container == "" {
		return nil, nil
	}
	rec, found, err := get[runtimeSocketsRecord](s, bucketRuntimeSockets, container)
	if err != nil || !found {
		return nil, err
	}
	out := make(map[uint64]bool, len(rec.Inodes))
	for _, ino := range rec.Inodes {
		out[ino] = true
	}
	return out, nil
}

// rememberRuntimeSockets records the host sockets that hold ep's
// runtime-held ports now, before ep is removed, and forgets the sockets of
// earlier removals that are closed by now.
func (i *Instance) rememberRuntimeSockets(st *store, ep Endpoint) error {
	if ep.ContainerID == "" || !slices.ContainsFunc(ep.Ports, func(p ports.Mapping) bool { return p.RuntimeHeld }) {
		return nil
	}
	held, err := ports.ReadHostSockets()
	if err != nil {
		return err
	}
	open := map[uint64]bool{}
	var holding []uint64
	for k, socks := range held {
		for _, sock := range socks {
			open[sock.Inode] = true
			if slices.ContainsFunc(ep.Ports, func(p ports.Mapping) bool {
				return p.RuntimeHeld && p.Proto == k.Proto && p.HostPort == k.Port && ports.HostIPsOverlap(p.HostIP, sock.Addr)
			}) {
				holding = append(holding, sock.Inode)
			}
		}
	}
	return st.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRuntimeSockets)
		if err := pruneClosedSockets(b, open); err != nil {
			return err
		}
		if len(holding) == 0 {
			return nil
		}
		var rec runtimeSocketsRecord
		if raw := b.Get([]byte(ep.ContainerID)); raw != nil {
			if err := json.Unmarshal(raw, &rec); err != nil {
				return err
			}
		}
		for _, ino := range holding {
			if !slices.Contains(rec.Inodes, ino) {
				rec.Inodes = append(rec.Inodes, ino)
			}
		}
		raw, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return b.Put([]byte(ep.ContainerID), raw)
	})
}

// pruneClosedSockets drops remembered sockets that are not open any more:
// an inode is only a socket's name while it is open.
func pruneClosedSockets(b *bolt.Bucket, open map[uint64]bool) error {
	var drop [][]byte
	rewrite := map[string][]byte{}
	err := b.ForEach(func(k, raw []byte) error {
		var rec runtimeSocketsRecord
		if err := json.Unmarshal(raw, &rec); err != nil {
			return err
		}
		live := slices.DeleteFunc(slices.Clone(rec.Inodes), func(ino uint64) bool { return !open[ino] })
		switch {
		case len(live) == 0:
			drop = append(drop, slices.Clone(k))
		case len(live) < len(rec.Inodes):
			raw, err := json.Marshal(runtimeSocketsRecord{Inodes: live})
			if err != nil {
				return err
			}
			rewrite[string(k)] = raw
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range drop {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	for k, raw := range rewrite {
		if err := b.Put([]byte(k), raw); err != nil {
			return err
		}
	}
	return nil
}

// sameHostPort reports whether two mappings bind the same host port on the
// same host address.
func sameHostPort(a, b ports.Mapping) bool {
	return a.Proto == b.Proto && a.HostPort == b.HostPort && a.HostIP == b.HostIP
}

// standbyFor returns the endpoint of eps (another interface of ep's
// container) that publishes m runtime-held already, so ep's m stands by.
func standbyFor(m ports.Mapping, ep Endpoint, eps []Endpoint) (Endpoint, bool) {
	if !m.RuntimeHeld || ep.ContainerID == "" {
		return Endpoint{}, false
	}
	for _, e := range eps {
		if e.Name != ep.Name && e.ContainerID == ep.ContainerID && slices.ContainsFunc(e.Ports, func(p ports.Mapping) bool {
			return p.RuntimeHeld && sameHostPort(p, m)
		}) {
			return e, true
		}
	}
	return Endpoint{}, false
}

// activePorts are the mappings of ep the datapath must bind for it: all
// but those another interface of the container binds already.
func activePorts(ep Endpoint, eps []Endpoint) []ports.Mapping {
	out := make([]ports.Mapping, 0, len(ep.Ports))
	for _, p := range ep.Ports {
		if _, standby := standbyFor(p, ep, eps); !standby {
			out = append(out, p)
		}
	}
	return out
}

// boundPorts are the bindings of ep's ports that the datapath holds for
// ep: a runtime-held port another interface of the container binds is
// not ep's to remove. Only runtime-held ports need the datapath's table
// read.
func boundPorts(views *maps.Views, ep Endpoint) ([]maps.PortEntry, error) {
	all := bindings(ep.Ports, ep)
	if !slices.ContainsFunc(ep.Ports, func(p ports.Mapping) bool { return p.RuntimeHeld }) {
		return all, nil
	}
	installed, err := views.PortEntries()
	if err != nil {
		return nil, err
	}
	to := map[maps.PortEntry]netip.Addr{}
	for _, b := range installed {
		to[portKeyOf(b)] = b.ContainerIP
	}
	out := all[:0]
	for _, b := range all {
		if !b.RuntimeHeld || to[portKeyOf(b)] == ep.IP {
			out = append(out, b)
		}
	}
	return out, nil
}

// portKeyOf is b reduced to what the datapath keys it by.
func portKeyOf(b maps.PortEntry) maps.PortEntry {
	b = normalBinding(b)
	return maps.PortEntry{Proto: b.Proto, HostIP: b.HostIP, HostPort: b.HostPort}
}

// handOverRuntimePorts binds the runtime-held ports a removed endpoint
// left unbound to another interface of its container that stands by for
// them, so the port keeps answering when the container leaves one of its
// networks.
func (i *Instance) handOverRuntimePorts(st *store, gone Endpoint) error {
	if gone.ContainerID == "" || !slices.ContainsFunc(gone.Ports, func(p ports.Mapping) bool { return p.RuntimeHeld }) {
		return nil
	}
	eps, err := st.endpoints()
	if err != nil {
		return err
	}
	views, err := i.datapath()
	if err != nil {
		return err
	}
	installed, err := views.PortEntries()
	if err != nil {
		return err
	}
	bound := map[maps.PortEntry]bool{}
	for _, b := range installed {
		bound[portKeyOf(b)] = true
	}
	var take []maps.PortEntry
	for _, p := range gone.Ports {
		heir, ok := standbyFor(p, gone, eps)
		if !ok || bound[portKeyOf(binding(p, gone))] {
			continue
		}
		k := slices.IndexFunc(heir.Ports, func(q ports.Mapping) bool { return q.RuntimeHeld && sameHostPort(q, p) })
		take = append(take, binding(heir.Ports[k], heir))
	}
	if len(take) == 0 {
		return nil
	}
	if err := views.PutPortEntries(take); err != nil {
		return err
	}
	i.log.Info("runtime-held ports handed over to another interface of the container", "from", gone.Name, "ports", len(take))
	return nil
}
