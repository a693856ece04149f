package datapath

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

// hostIPsOverlap reports whether two bindings' host addresses can both
// receive the same packet: the unspecified address overlaps everything.
func hostIPsOverlap(a, b netip.Addr) bool {
	return !a.IsValid() || !b.IsValid() || a == b
}

// portTable indexes published ports by protocol and host port, so checking
// a request costs the same with 40000 ports published as with one.
type portTable map[sockKey][]portUse

type portUse struct {
	ip    netip.Addr
	owner string
}

func newPortTable(eps []Endpoint) portTable {
	n := 0
	for _, e := range eps {
		n += len(e.Ports)
	}
	t := make(portTable, n)
	for _, e := range eps {
		owner := "endpoint " + e.Name
		for _, p := range e.Ports {
			t.add(p, owner)
		}
	}
	return t
}

func (t portTable) add(m PortMapping, owner string) {
	k := sockKey{m.Proto, m.HostPort}
	t[k] = append(t[k], portUse{m.HostIP, owner})
}

// owner is who already publishes m's protocol and port on an address
// overlapping m's, or "".
func (t portTable) owner(m PortMapping) string {
	for _, u := range t[sockKey{m.Proto, m.HostPort}] {
		if hostIPsOverlap(u.ip, m.HostIP) {
			return u.owner
		}
	}
	return ""
}

// hostPortFree reports whether no socket of the host namespace holds the
// port: a published port must not alias a host service, and a masqueraded
// flow must never answer for one.
type hostPortFree func(proto Protocol, ip netip.Addr, port uint16) error

// hostPortProbe returns a hostPortFree over a snapshot of this (the host's)
// namespace's sockets, read once however many ports are checked. Only
// listening TCP sockets and bound, unconnected UDP sockets conflict: a
// client's TIME-WAIT or connected socket on the port does not, which a bind
// probe would get wrong.
func hostPortProbe() (hostPortFree, error) {
	held, err := readHostSockets()
	if err != nil {
		return nil, err
	}
	local := map[netip.Addr]error{}
	return func(proto Protocol, ip netip.Addr, port uint16) error {
		if ip.IsValid() {
			err, seen := local[ip]
			if !seen {
				err = checkLocalAddr(ip)
				local[ip] = err
			}
			if err != nil {
				return err
			}
		}
		for _, a := range held[sockKey{proto, port}] {
			if hostIPsOverlap(a, ip) {
				return fmt.Errorf("port %d/%s on %s is in use by a process of the host", port, proto, HostAddrString(ip))
			}
		}
		return nil
	}, nil
}

// checkLocalAddr fails unless ip is an address of this host (binding port 0
// on it is how the kernel answers that).
func checkLocalAddr(ip netip.Addr) error {
	c, err := net.ListenPacket("udp4", net.JoinHostPort(ip.String(), "0"))
	if err == nil {
		return c.Close()
	}
	if errors.Is(err, syscall.EADDRNOTAVAIL) {
		return fmt.Errorf("host address %s is not an address of this host", ip)
	}
	return fmt.Errorf("check host address %s: %w", ip, err)
}

type sockKey struct {
	proto Protocol
	port  uint16
}

// Socket states in /proc/net/{tcp,udp}: TCP_LISTEN, and TCP_CLOSE, which an
// unconnected (bound) UDP socket shows.
const (
	sockStateListen = 0x0a
	sockStateClose  = 0x07
)

// readHostSockets lists the local addresses of listening TCP and bound UDP
// sockets by protocol and port; an IPv6 wildcard socket counts as every
// IPv4 address too (dual stack), and a zero address means every address.
func readHostSockets() (map[sockKey][]netip.Addr, error) {
	out := map[sockKey][]netip.Addr{}
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
			if len(f) < 4 {
				continue
			}
			if st, err := strconv.ParseUint(f[3], 16, 8); err != nil || st != t.state {
				continue
			}
			addr, port, err := parseProcAddr(f[1])
			if err != nil {
				return nil, fmt.Errorf("list host sockets: %s: %w", t.file, err)
			}
			out[sockKey{t.proto, port}] = append(out[sockKey{t.proto, port}], addr)
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

// assignPorts checks the requested mappings for conflicts and gives a random
// free host port to those without one. It changes nothing.
func assignPorts(want []PortMapping, eps []Endpoint, self string, free hostPortFree) ([]PortMapping, error) {
	return assignPortRequests(requestsFor(want), eps, Endpoint{Name: self}, free)
}

// assignPort gives r a host port that is not in published and no host
// socket holds: r's own, the first free one of its range (as
// Docker's allocator takes it), or a random ephemeral one.
func assignPort(r PortRequest, published portTable, free hostPortFree) (PortMapping, error) {
	m := r.PortMapping
	taken := func() error {
		if owner := published.owner(m); owner != "" {
			return fmt.Errorf("port %d/%s on %s is already published by %s", m.HostPort, m.Proto, HostAddrString(m.HostIP), owner)
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
