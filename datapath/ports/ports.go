// Package ports is published ports: their vocabulary (Protocol, Mapping,
// Request, List and its store encoding), parsing Docker's -p and --expose
// specs, and assigning host ports (conflicts with other holders and with
// the host's own sockets, ranges, ephemeral ports). It changes nothing in
// the kernel: datapath writes what it assigns into the maps. Front ends may
// use it directly; datapath re-exports the types they show.
package ports

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/ebpfnet/ebpfnet/maps"
)

// Protocol is the transport protocol of a published port. It reads and
// writes as Docker spells it ("tcp", "udp"), in flags, JSON and the store.
type Protocol uint8

// Published ports are TCP or UDP.
const (
	TCP Protocol = syscall.IPPROTO_TCP
	UDP Protocol = syscall.IPPROTO_UDP
)

// ParseProtocol parses "tcp" or "udp", in any case.
func ParseProtocol(s string) (Protocol, error) {
	switch strings.ToLower(s) {
	case "tcp":
		return TCP, nil
	case "udp":
		return UDP, nil
	}
	return 0, fmt.Errorf("protocol %q: must be tcp or udp", s)
}

func (p Protocol) String() string { return maps.ProtoName(uint8(p)) }

// MarshalText implements encoding.TextMarshaler.
func (p Protocol) MarshalText() ([]byte, error) {
	if p != TCP && p != UDP {
		return nil, fmt.Errorf("protocol %d: not tcp or udp", uint8(p))
	}
	return []byte(p.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (p *Protocol) UnmarshalText(b []byte) error {
	v, err := ParseProtocol(string(b))
	*p = v
	return err
}

// HostAddrString formats a published port's host address: the zero address
// means every address of the host, written as Docker writes it (0.0.0.0),
// an IPv6 address in brackets.
func HostAddrString(ip netip.Addr) string { return maps.HostAddrString(ip) }

// Mapping is one published port, as `docker port` shows it.
type Mapping struct {
	Proto Protocol `json:"proto"`
	// HostIP zero: every host address, both families; 0.0.0.0: every
	// IPv4 address; [::]: every IPv6 address (Docker 28's rules).
	HostIP        netip.Addr `json:"host_ip,omitzero"`
	HostPort      uint16     `json:"host_port"` // 0 until assigned
	ContainerPort uint16     `json:"container_port"`
	// RuntimeHeld: the runtime that asked for the port reserves it with a
	// socket of its own (Podman), so the host's bind of it is let through.
	RuntimeHeld bool `json:"runtime_held,omitempty"`
}

// List is an endpoint's published ports. In JSON (the store, inspect)
// a run of mappings that differ only by consecutive host and container
// ports is one element with a "count", so the record of a -p
// 20000-40000:20000-40000 endpoint is a few bytes, not megabytes to encode
// and write on every command; decoding expands the runs again.
type List []Mapping

type portRun struct {
	Mapping
	Count int `json:"count,omitempty"` // 0 or 1: one mapping
}

// MarshalJSON writes runs.
func (l List) MarshalJSON() ([]byte, error) {
	runs := make([]portRun, 0, 1)
	for _, m := range l {
		if n := len(runs); n > 0 {
			last := &runs[n-1]
			next := last.Mapping
			next.HostPort += uint16(last.Count)
			next.ContainerPort += uint16(last.Count)
			if next == m && m.HostPort != 0 && int(last.HostPort)+last.Count <= 65535 {
				last.Count++
				continue
			}
		}
		runs = append(runs, portRun{m, 1})
	}
	for j := range runs {
		if runs[j].Count == 1 {
			runs[j].Count = 0
		}
	}
	return json.Marshal(runs)
}

// UnmarshalJSON expands runs (and reads lists written before runs).
func (l *List) UnmarshalJSON(b []byte) error {
	var runs []portRun
	if err := json.Unmarshal(b, &runs); err != nil {
		return err
	}
	out := List{}
	for _, r := range runs {
		if r.Count < 0 || int(r.HostPort)+r.Count > 65536 || int(r.ContainerPort)+r.Count > 65536 {
			return fmt.Errorf("port run %v x%d leaves the port range", r.Mapping, r.Count)
		}
		for k := 0; k < max(1, r.Count); k++ {
			m := r.Mapping
			m.HostPort += uint16(k)
			m.ContainerPort += uint16(k)
			out = append(out, m)
		}
	}
	*l = out
	return nil
}

func (m Mapping) String() string {
	return fmt.Sprintf("%d/%s -> %s:%d", m.ContainerPort, m.Proto, HostAddrString(m.HostIP), m.HostPort)
}

// Check validates mappings that need not come from ParseSpec (a CNI
// or Docker front end builds them itself) and returns them with IPv4-mapped
// host addresses written as IPv4. 0.0.0.0 (every IPv4 address) and [::]
// (every IPv6 address) stay apart from the zero address (both).
func Check(ms []Mapping) ([]Mapping, error) {
	out := make([]Mapping, 0, len(ms))
	for _, m := range ms {
		m, err := checkPort(m)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// checkPort is Check for one mapping.
func checkPort(m Mapping) (Mapping, error) {
	if m.Proto != TCP && m.Proto != UDP {
		return m, fmt.Errorf("published port %d: protocol %s: must be tcp or udp", m.ContainerPort, m.Proto)
	}
	if m.ContainerPort == 0 {
		return m, errors.New("published port: container port 0 is not a port number (1-65535)")
	}
	if m.HostIP.IsValid() {
		m.HostIP = m.HostIP.Unmap()
		if err := checkHostAddr(m.HostIP); err != nil {
			return m, fmt.Errorf("published port %d: %w", m.ContainerPort, err)
		}
	}
	return m, nil
}

// checkHostAddr refuses host addresses a port cannot be published on: a
// zone, multicast, an IPv6 link-local address (it needs a zone). Whether
// the address is the host's is checked at assignment (HostPortProbe).
func checkHostAddr(a netip.Addr) error {
	switch {
	case a.Zone() != "":
		return fmt.Errorf("host address %s: a zone is not supported", a)
	case a.IsMulticast():
		return fmt.Errorf("host address %s is a multicast address", a)
	case a.Is6() && a.IsLinkLocalUnicast():
		return fmt.Errorf("host address %s is an IPv6 link-local address", a)
	}
	return nil
}

// ParseSpecs parses several -p values.
func ParseSpecs(specs []string) ([]Request, error) {
	parsed := make([][]Request, 0, len(specs))
	n := 0
	for _, spec := range specs {
		rs, err := ParseSpec(spec)
		if err != nil {
			return nil, err
		}
		parsed = append(parsed, rs)
		n += len(rs)
	}
	if n == 0 {
		return nil, nil
	}
	out := make([]Request, 0, n) // one allocation for a 40000-port range
	for _, rs := range parsed {
		out = append(out, rs...)
	}
	return out, nil
}

// ParseSpec parses Docker's -p grammar:
// [hostIP:][hostPort[-end]:]containerPort[-end][/tcp|/udp], an IPv6 hostIP
// in brackets ([::1]:8080:80). Ranges of equal
// length expand to one request per port; a host port range with one
// container port asks for one free host port of the range (Docker's
// -p 8000-8010:80); an omitted host port stays 0 (an ephemeral port is
// assigned at attach).
func ParseSpec(spec string) ([]Request, error) {
	bad := func(why string) error { return fmt.Errorf("invalid port spec %q: %s", spec, why) }
	rest, proto := spec, TCP
	if i := strings.LastIndexByte(spec, '/'); i >= 0 {
		var err error
		rest = spec[:i]
		if proto, err = ParseProtocol(spec[i+1:]); err != nil {
			return nil, bad("protocol must be tcp or udp")
		}
	}
	var hostIP, hostPorts, ctrPorts string
	if strings.HasPrefix(rest, "[") { // [IPv6]:hostPort:containerPort, as Docker writes it
		end := strings.IndexByte(rest, ']')
		if end < 0 || !strings.HasPrefix(rest[end+1:], ":") {
			return nil, bad("an IPv6 host address is written [ADDRESS]:HOSTPORT:CONTAINERPORT")
		}
		hostIP = rest[1:end]
		var ok bool
		if hostPorts, ctrPorts, ok = strings.Cut(rest[end+2:], ":"); !ok || strings.Contains(ctrPorts, ":") {
			return nil, bad("an IPv6 host address is written [ADDRESS]:HOSTPORT:CONTAINERPORT")
		}
		if a, err := netip.ParseAddr(hostIP); err != nil || !a.Is6() || a.Is4In6() {
			return nil, bad("host address in brackets must be an IPv6 address")
		}
	} else {
		switch parts := strings.Split(rest, ":"); len(parts) {
		case 1:
			ctrPorts = parts[0]
		case 2:
			hostPorts, ctrPorts = parts[0], parts[1]
		case 3:
			hostIP, hostPorts, ctrPorts = parts[0], parts[1], parts[2]
		default: // more colons: an IPv6 host address without brackets
			return nil, bad("write an IPv6 host address in brackets: [ADDRESS]:HOSTPORT:CONTAINERPORT")
		}
		if hostIP != "" {
			if a, err := netip.ParseAddr(hostIP); err != nil || !a.Is4() {
				return nil, bad("host address must be an IPv4 address, or an IPv6 address in brackets")
			}
		}
	}
	var ip netip.Addr
	if hostIP != "" {
		a, err := netip.ParseAddr(hostIP)
		if err != nil {
			return nil, bad("invalid host address")
		}
		if err := checkHostAddr(a); err != nil {
			return nil, bad(err.Error())
		}
		ip = a // 0.0.0.0: IPv4 only, [::]: IPv6 only, as Docker 28
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
		if cHi == cLo && hHi != hLo {
			return []Request{{Mapping: Mapping{Proto: proto, HostIP: ip, HostPort: hLo, ContainerPort: cLo}, HostPortEnd: hHi}}, nil
		}
		if hHi-hLo != cHi-cLo {
			return nil, bad("host and container port ranges must have the same length")
		}
	} else if cHi != cLo {
		return nil, bad("a container port range needs a host port range of the same length")
	}
	out := make([]Request, 0, int(cHi-cLo)+1)
	for i := uint32(0); i <= uint32(cHi-cLo); i++ {
		m := Mapping{Proto: proto, HostIP: ip, ContainerPort: cLo + uint16(i)}
		if hLo != 0 {
			m.HostPort = hLo + uint16(i)
		}
		out = append(out, Request{Mapping: m})
	}
	return out, nil
}

// PublishAll is Docker's -P: every exposed port (--expose
// PORT[-END][/PROTO]) that published does not already publish gets an
// ephemeral host port.
func PublishAll(exposed []string, published []Request) ([]Request, error) {
	out := published
	for _, spec := range exposed {
		rest, proto := spec, TCP
		if i := strings.LastIndexByte(spec, '/'); i >= 0 {
			var err error
			rest = spec[:i]
			if proto, err = ParseProtocol(spec[i+1:]); err != nil {
				return nil, fmt.Errorf("invalid --expose %q: protocol must be tcp or udp", spec)
			}
		}
		lo, hi, err := parseRange(rest)
		if err != nil {
			return nil, fmt.Errorf("invalid --expose %q: %v", spec, err)
		}
		for p := uint32(lo); p <= uint32(hi); p++ {
			r := Request{Mapping: Mapping{Proto: proto, ContainerPort: uint16(p)}}
			if !slices.ContainsFunc(out, func(o Request) bool { return o.Proto == r.Proto && o.ContainerPort == r.ContainerPort }) {
				out = append(out, r)
			}
		}
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

// ParseContainerPort parses PORT[/PROTO] as `docker port` takes it.
func ParseContainerPort(s string) (Mapping, error) {
	port, proto := s, "tcp"
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		port, proto = s[:i], s[i+1:]
	}
	p, err := ParseProtocol(proto)
	if err != nil {
		return Mapping{}, fmt.Errorf("invalid port %q: %w", s, err)
	}
	n, err := parsePort(port)
	if err != nil {
		return Mapping{}, fmt.Errorf("invalid port %q: %w", s, err)
	}
	return Mapping{Proto: p, ContainerPort: n}, nil
}

// Request asks for a published port. A HostPortEnd above HostPort asks
// for the first free host port of HostPort..HostPortEnd (Docker's
// -p 8000-8010:80); HostPort 0 asks for any free ephemeral port.
type Request struct {
	Mapping
	HostPortEnd uint16
}

// CheckRequests is Check for requests, whose host port may be a
// range to pick from.
func CheckRequests(reqs []Request) ([]Request, error) {
	out := make([]Request, 0, len(reqs))
	for _, r := range reqs {
		m, err := checkPort(r.Mapping)
		if err != nil {
			return nil, err
		}
		r.Mapping = m
		if r.HostPortEnd != 0 && r.HostPortEnd < r.HostPort {
			return nil, fmt.Errorf("published port %d/%s: host port range %d-%d ends before it starts", r.ContainerPort, r.Proto, r.HostPort, r.HostPortEnd)
		}
		out = append(out, r)
	}
	return out, nil
}

// Requests makes requests of plain mappings.
func Requests(ms []Mapping) []Request {
	out := make([]Request, 0, len(ms))
	for _, m := range ms {
		out = append(out, Request{Mapping: m})
	}
	return out
}

// SatisfiedBy reports whether the published port m answers the request.
func (r Request) SatisfiedBy(m Mapping) bool {
	if m.Proto != r.Proto || m.HostIP != r.HostIP || m.ContainerPort != r.ContainerPort {
		return false
	}
	switch {
	case r.HostPort == 0:
		return true
	case r.HostPortEnd > r.HostPort:
		return m.HostPort >= r.HostPort && m.HostPort <= r.HostPortEnd
	}
	return m.HostPort == r.HostPort
}

// IPv6 reports whether m is published on IPv6 alone: on [::] or one IPv6
// address.
func (m Mapping) IPv6() bool { return m.HostIP.Is6() && !m.HostIP.Is4In6() }

// MergeFamilies joins a request on every IPv4 address (no host address or
// 0.0.0.0) and its twin on every IPv6 address ([::]), equal but for the
// host address, into one with no host address, which serves both
// families with one host port: Docker and CNI runtimes send a binding per
// family. It returns the requests left and the IPv6 twins merged away.
func MergeFamilies(reqs []Request) (out []Request, merged []Request) {
	out = make([]Request, 0, len(reqs))
	for _, r := range reqs {
		if r.HostIP == netip.IPv6Unspecified() {
			continue
		}
		out = append(out, r)
	}
	for _, r := range reqs {
		if r.HostIP != netip.IPv6Unspecified() {
			continue
		}
		j := slices.IndexFunc(out, func(o Request) bool {
			o2 := o
			o2.HostIP = r.HostIP
			return o2 == r && (!o.HostIP.IsValid() || o.HostIP == netip.IPv4Unspecified())
		})
		if j < 0 {
			out = append(out, r)
			continue
		}
		out[j].HostIP = netip.Addr{}
		merged = append(merged, r)
	}
	return out, merged
}
