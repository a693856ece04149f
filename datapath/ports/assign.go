package ports

import (
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Ephemeral host ports for -p without a host port when the namespace's
// ip_local_port_range cannot be read, as Docker falls back to.
const (
	ephemeralLow  = 49153
	ephemeralHigh = 65535
)

// HostIPsOverlap reports whether two bindings' host addresses can both
// receive the same packet: the zero address (both families) overlaps
// everything, 0.0.0.0 every IPv4 address, [::] every IPv6 address.
func HostIPsOverlap(a, b netip.Addr) bool {
	if !a.IsValid() || !b.IsValid() || a == b {
		return true
	}
	if a.Is4() != b.Is4() {
		return false
	}
	return a.IsUnspecified() || b.IsUnspecified()
}

// portTable indexes published ports by protocol and host port, so checking
// a request costs the same with 40000 ports published as with one.
type portTable map[SockKey][]portUse

type portUse struct {
	ip    netip.Addr
	owner string
	// container is the ContainerID of a runtime-held mapping's endpoint:
	// another interface of that container may publish the same binding
	// (see sharesRuntimePort). Empty for every other use.
	container string
}

func newPortTable(hs []Holder) portTable {
	n := 0
	for _, h := range hs {
		n += len(h.Ports)
	}
	t := make(portTable, n)
	for _, h := range hs {
		for _, p := range h.Ports {
			t.add(p, h.Owner, h.runtimeHeldBy(p))
		}
	}
	return t
}

// Holder is who publishes ports, as the port table sees an endpoint.
type Holder struct {
	Owner       string // how errors name it: "endpoint web"
	ContainerID string // the runtime's container, for runtime-held ports
	Ports       []Mapping
}

// runtimeHeldBy is the container whose runtime holds p's host port for
// h, or "".
func (h Holder) runtimeHeldBy(p Mapping) string {
	if p.RuntimeHeld {
		return h.ContainerID
	}
	return ""
}

func (t portTable) add(m Mapping, owner, container string) {
	k := SockKey{m.Proto, m.HostPort}
	t[k] = append(t[k], portUse{m.HostIP, owner, container})
}

// owner is who already publishes m's protocol and port on an address
// overlapping m's, or "". A use that container (the requester) may share
// does not count; shared reports whether there was one.
func (t portTable) owner(m Mapping, container string) (owner string, shared bool) {
	for _, u := range t[SockKey{m.Proto, m.HostPort}] {
		if !HostIPsOverlap(u.ip, m.HostIP) {
			continue
		}
		if sharesRuntimePort(u, m, container) {
			shared = true
			continue
		}
		return u.owner, false
	}
	return "", shared
}

// sharesRuntimePort reports whether container may publish m although u
// already does: both are the same container's runtime-held binding of the
// same host address and port, as when Podman connects a container with
// published ports to a second network (it passes the container's
// portMappings to every network's ADD). The datapath keeps the first
// interface's binding; the others stand by and take over when it goes
// (handOverRuntimePorts).
func sharesRuntimePort(u portUse, m Mapping, container string) bool {
	return container != "" && m.RuntimeHeld && u.container == container && u.ip == m.HostIP
}

// HostPortFree reports whether no socket of the host namespace holds the
// port: a published port must not alias a host service, and a masqueraded
// flow must never answer for one.
type HostPortFree func(proto Protocol, ip netip.Addr, port uint16) error

// HostPortProbe returns a HostPortFree over a snapshot of this (the host's)
// namespace's sockets, read once however many ports are checked. Only
// listening TCP sockets and bound, unconnected UDP sockets conflict: a
// client's TIME-WAIT or connected socket on the port does not, which a bind
// probe would get wrong. Sockets whose inode is in runtimeOwn do not
// conflict either: they are the requesting container's runtime's own
// (runtimesockets.go).
func HostPortProbe(runtimeOwn map[uint64]bool) (HostPortFree, error) {
	held, err := ReadHostSockets()
	if err != nil {
		return nil, err
	}
	local := map[netip.Addr]error{}
	return func(proto Protocol, ip netip.Addr, port uint16) error {
		if ip.IsValid() && !ip.IsUnspecified() {
			err, seen := local[ip]
			if !seen {
				err = checkLocalAddr(ip)
				local[ip] = err
			}
			if err != nil {
				return err
			}
		}
		for _, sock := range held[SockKey{proto, port}] {
			if HostIPsOverlap(sock.Addr, ip) && !runtimeOwn[sock.Inode] {
				return fmt.Errorf("port %d/%s on %s is in use by a process of the host", port, proto, HostAddrString(ip))
			}
		}
		return nil
	}, nil
}

// checkLocalAddr fails unless ip is an address of this host (binding port 0
// on it is how the kernel answers that).
func checkLocalAddr(ip netip.Addr) error {
	network := "udp4"
	if ip.Is6() {
		network = "udp6"
	}
	c, err := net.ListenPacket(network, net.JoinHostPort(ip.String(), "0"))
	if err == nil {
		return c.Close()
	}
	if errors.Is(err, syscall.EADDRNOTAVAIL) {
		return fmt.Errorf("host address %s is not an address of this host", ip)
	}
	return fmt.Errorf("check host address %s: %w", ip, err)
}

// SockKey is a host socket's protocol and port.
type SockKey struct {
	Proto Protocol
	Port  uint16
}

// Socket states in /proc/net/{tcp,udp}: TCP_LISTEN, and TCP_CLOSE, which an
// unconnected (bound) UDP socket shows.
const (
	sockStateListen = 0x0a
	sockStateClose  = 0x07
)

// HostSocket is a listening TCP or bound UDP socket of the host: its local
// address (zero: every address) and its inode, which names the socket as
// long as it is open.
type HostSocket struct {
	Addr  netip.Addr
	Inode uint64
}

// ReadHostSockets lists listening TCP and bound UDP sockets by protocol
// and port; an IPv6 wildcard socket counts as every IPv4 address too (dual
// stack).
func ReadHostSockets() (map[SockKey][]HostSocket, error) {
	out := map[SockKey][]HostSocket{}
	for _, t := range []struct {
		file  string
		proto Protocol
		state uint64
	}{
		{"tcp", TCP, sockStateListen}, {"tcp6", TCP, sockStateListen},
		{"udp", UDP, sockStateClose}, {"udp6", UDP, sockStateClose},
	} {
		// thread-self: the table of the network namespace this thread is in.
		raw, err := os.ReadFile("/proc/thread-self/net/" + t.file)
		if errors.Is(err, os.ErrNotExist) && strings.HasSuffix(t.file, "6") {
			continue // IPv6 disabled
		}
		if err != nil {
			return nil, fmt.Errorf("list host sockets: %w", err)
		}
		for _, line := range strings.Split(string(raw), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 {
				continue
			}
			if st, err := strconv.ParseUint(f[3], 16, 8); err != nil || st != t.state {
				continue
			}
			addr, port, err := parseProcAddr(f[1])
			if err != nil {
				return nil, fmt.Errorf("list host sockets: %s: %w", t.file, err)
			}
			inode, err := strconv.ParseUint(f[9], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("list host sockets: %s: bad inode %q", t.file, f[9])
			}
			k := SockKey{t.proto, port}
			out[k] = append(out[k], HostSocket{addr, inode})
		}
	}
	return out, nil
}

// parseProcAddr reads "0100007F:1F90" (IPv4) or 32 hex digits (IPv6), each
// 32-bit word in host byte order, and the port in hex. IPv4-mapped IPv6
// addresses come back as IPv4; wildcards as the zero Addr.
func parseProcAddr(s string) (netip.Addr, uint16, error) {
	hexAddr, hexPort, ok := strings.Cut(s, ":")
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if !ok || err != nil || (len(hexAddr) != 8 && len(hexAddr) != 32) {
		return netip.Addr{}, 0, fmt.Errorf("bad socket address %q", s)
	}
	raw, err := hex.DecodeString(hexAddr)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("bad socket address %q", s)
	}
	for w := 0; w < len(raw); w += 4 { // host (little-endian) words to network order
		binary.BigEndian.PutUint32(raw[w:], binary.LittleEndian.Uint32(raw[w:]))
	}
	addr, _ := netip.AddrFromSlice(raw)
	addr = addr.Unmap()
	if addr.IsUnspecified() {
		addr = netip.Addr{}
	}
	return addr, uint16(port), nil
}

// assignPort gives r a host port that is not in published and no host
// socket holds: r's own, the first free one of its range (as
// Docker's allocator takes it), or a random ephemeral one.
//
// container is the requester's ContainerID: a port another interface of
// that container publishes runtime-held is not taken (sharesRuntimePort),
// and no host socket is asked about, since that runtime's socket holds it.
func assignPort(r Request, published portTable, free HostPortFree, container string) (Mapping, error) {
	m := r.Mapping
	taken := func() error {
		owner, shared := published.owner(m, container)
		if owner != "" {
			return fmt.Errorf("port %d/%s on %s is already published by %s", m.HostPort, m.Proto, HostAddrString(m.HostIP), owner)
		}
		if shared {
			return nil
		}
		return free(m.Proto, m.HostIP, m.HostPort)
	}
	switch {
	case m.HostPort != 0 && r.HostPortEnd <= m.HostPort:
		return m, taken()
	case m.HostPort != 0:
		var firstErr error
		for p := uint32(r.HostPort); p <= uint32(r.HostPortEnd); p++ {
			m.HostPort = uint16(p)
			err := taken()
			if err == nil {
				return m, nil
			}
			firstErr = cmp.Or(firstErr, err)
		}
		return m, fmt.Errorf("no free host port in %d-%d/%s on %s for container port %d (%v)", r.HostPort, r.HostPortEnd, r.Proto, HostAddrString(r.HostIP), r.ContainerPort, firstErr)
	}
	lo, hi := ephemeralPorts()
	for try := 0; try < 64; try++ {
		m.HostPort = uint16(lo + rand.IntN(hi-lo+1))
		if taken() == nil {
			return m, nil
		}
	}
	return m, fmt.Errorf("no free host port for %d/%s", m.ContainerPort, m.Proto)
}

// ephemeralPorts is the range ephemeral published ports come from: the
// namespace's ip_local_port_range, as Docker's port allocator reads it, or
// Docker's fallback.
func ephemeralPorts() (lo, hi int) {
	raw, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(raw)); len(f) == 2 {
			a, errA := strconv.Atoi(f[0])
			b, errB := strconv.Atoi(f[1])
			if errA == nil && errB == nil && a > 0 && a <= b && b <= 65535 {
				return a, b
			}
		}
	}
	return ephemeralLow, ephemeralHigh
}

// Assign checks requests for conflicts (with others, self's own
// ports and each other) and gives each a host port (assignPort). It
// changes nothing.
func Assign(reqs []Request, others []Holder, self Holder, free HostPortFree) ([]Mapping, error) {
	published := newPortTable(append(others, self)) // the endpoint's own ports conflict too
	out := make([]Mapping, 0, len(reqs))
	twice := self.Owner + " (twice in this command)"
	for _, r := range reqs {
		m, err := assignPort(r, published, free, self.ContainerID)
		if err != nil {
			return nil, err
		}
		published.add(m, twice, "")
		out = append(out, m)
	}
	return out, nil
}
