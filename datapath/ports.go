package datapath

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// PortMapping is one published port, as `docker port` shows it.
type PortMapping struct {
	Proto         string     `json:"proto"`            // "tcp" or "udp"
	HostIP        netip.Addr `json:"host_ip,omitzero"` // zero: every host address
	HostPort      uint16     `json:"host_port"`        // 0 until assigned
	ContainerPort uint16     `json:"container_port"`
}

func (m PortMapping) String() string {
	return fmt.Sprintf("%d/%s -> %s:%d", m.ContainerPort, m.Proto, hostString(m.HostIP), m.HostPort)
}

// ParsePortSpec parses Docker's -p grammar:
// [hostIP:][hostPort[-end]:]containerPort[-end][/tcp|/udp]. A range expands
// to one mapping per port; an omitted host port stays 0 (assigned at attach).
func ParsePortSpec(spec string) ([]PortMapping, error) {
	bad := func(why string) error { return fmt.Errorf("invalid port spec %q: %s", spec, why) }
	rest, proto := spec, "tcp"
	if i := strings.LastIndexByte(spec, '/'); i >= 0 {
		rest, proto = spec[:i], strings.ToLower(spec[i+1:])
		if proto != "tcp" && proto != "udp" {
			return nil, bad("protocol must be tcp or udp")
		}
	}
	if strings.HasPrefix(rest, "[") {
		return nil, bad("IPv6 host addresses are not supported yet")
	}
	var hostIP, hostPorts, ctrPorts string
	switch parts := strings.Split(rest, ":"); len(parts) {
	case 1:
		ctrPorts = parts[0]
	case 2:
		hostPorts, ctrPorts = parts[0], parts[1]
	case 3:
		hostIP, hostPorts, ctrPorts = parts[0], parts[1], parts[2]
	default: // more colons: only an IPv6 host address has them
		return nil, bad("IPv6 host addresses are not supported yet (or too many ':')")
	}
	var ip netip.Addr
	if hostIP != "" {
		a, err := netip.ParseAddr(hostIP)
		if err != nil || !a.Is4() {
			return nil, bad("host address must be an IPv4 address")
		}
		if !a.IsUnspecified() {
			ip = a
		}
	}
	cLo, cHi, err := parseRange(ctrPorts)
	if err != nil {
		return nil, bad("container port: " + err.Error())
	}
	var hLo, hHi uint16
	if hostPorts != "" {
		if hLo, hHi, err = parseRange(hostPorts); err != nil {
			return nil, bad("host port: " + err.Error())
		}
		if hHi-hLo != cHi-cLo {
			return nil, bad("host and container port ranges must have the same length")
		}
	} else if cHi != cLo {
		return nil, bad("a container port range needs a host port range of the same length")
	}
	var out []PortMapping
	for i := uint32(0); i <= uint32(cHi-cLo); i++ {
		m := PortMapping{Proto: proto, HostIP: ip, ContainerPort: cLo + uint16(i)}
		if hLo != 0 {
			m.HostPort = hLo + uint16(i)
		}
		out = append(out, m)
	}
	return out, nil
}

func parseRange(s string) (lo, hi uint16, err error) {
	a, b, isRange := strings.Cut(s, "-")
	if lo, err = parsePort(a); err != nil {
		return 0, 0, err
	}
	hi = lo
	if isRange {
		if hi, err = parsePort(b); err != nil {
			return 0, 0, err
		}
		if hi < lo {
			return 0, 0, fmt.Errorf("range %s ends before it starts", s)
		}
	}
	return lo, hi, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a port number (1-65535)", s)
	}
	return uint16(n), nil
}
