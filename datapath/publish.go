package datapath

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"syscall"
)

// Ephemeral host ports for -p without a host port, as Docker uses.
const (
	ephemeralLow  = 49153
	ephemeralHigh = 65535
)

// hostIPsOverlap reports whether two bindings' host addresses can both
// receive the same packet: the unspecified address overlaps everything.
func hostIPsOverlap(a, b netip.Addr) bool {
	return !a.IsValid() || !b.IsValid() || a == b
}

// portOwner finds who already publishes proto/port on an address
// overlapping ip, among eps and the mappings accepted so far.
func portOwner(m PortMapping, eps []Endpoint, pending []PortMapping, self string) string {
	for _, e := range eps {
		for _, p := range e.Ports {
			if p.Proto == m.Proto && p.HostPort == m.HostPort && hostIPsOverlap(p.HostIP, m.HostIP) {
				return "endpoint " + e.Name
			}
		}
	}
	for _, p := range pending {
		if p.Proto == m.Proto && p.HostPort == m.HostPort && hostIPsOverlap(p.HostIP, m.HostIP) {
			return "endpoint " + self + " (twice in this command)"
		}
	}
	return ""
}

// hostPortFree reports whether no socket of the host namespace holds the
// port: a published port must not alias a host service, and a masqueraded
// flow must never answer for one.
type hostPortFree func(proto Protocol, ip netip.Addr, port uint16) error

// probeHostPort tries to bind the port in this (the host's) namespace.
func probeHostPort(proto Protocol, ip netip.Addr, port uint16) error {
	host := HostAddrString(ip)
	addr := net.JoinHostPort(host, strconv.Itoa(int(port)))
	var err error
	if proto == UDP {
		var c net.PacketConn
		if c, err = net.ListenPacket("udp4", addr); err == nil {
			c.Close()
		}
	} else {
		var l net.Listener
		if l, err = net.Listen("tcp4", addr); err == nil {
			l.Close()
		}
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("port %d/%s on %s is in use by a process of the host", port, proto, host)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return fmt.Errorf("host address %s is not an address of this host", host)
	}
	return fmt.Errorf("check port %d/%s on %s: %w", port, proto, host, err)
}

// assignPorts checks the requested mappings for conflicts and gives a random
// free host port to those without one. It changes nothing.
func assignPorts(want []PortMapping, eps []Endpoint, self string, free hostPortFree) ([]PortMapping, error) {
	var out []PortMapping
	for _, m := range want {
		if m.HostPort != 0 {
			if owner := portOwner(m, eps, out, self); owner != "" {
				return nil, fmt.Errorf("port %d/%s on %s is already published by %s", m.HostPort, m.Proto, HostAddrString(m.HostIP), owner)
			}
			if err := free(m.Proto, m.HostIP, m.HostPort); err != nil {
				return nil, err
			}
			out = append(out, m)
			continue
		}
		found := false
		for try := 0; try < 64 && !found; try++ {
			m.HostPort = uint16(ephemeralLow + rand.IntN(ephemeralHigh-ephemeralLow+1))
			found = portOwner(m, eps, out, self) == "" && free(m.Proto, m.HostIP, m.HostPort) == nil
		}
		if !found {
			return nil, fmt.Errorf("no free host port for %d/%s", m.ContainerPort, m.Proto)
		}
		out = append(out, m)
	}
	return out, nil
}
