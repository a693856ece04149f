package ports

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func noHostSockets(Protocol, netip.Addr, uint16) error { return nil }

func TestAssignPortsConflicts(t *testing.T) {
	h1 := netip.MustParseAddr("198.18.0.2")
	h2 := netip.MustParseAddr("198.18.0.3")
	eps := []Holder{
		{Owner: "endpoint web", Ports: []Mapping{{Proto: TCP, HostPort: 8080, ContainerPort: 80}}},
		{Owner: "endpoint dns", Ports: []Mapping{{Proto: UDP, HostIP: h1, HostPort: 53, ContainerPort: 53}}},
	}
	for _, tc := range []struct {
		want []Mapping
		err  string
	}{
		{[]Mapping{{Proto: TCP, HostPort: 8080, ContainerPort: 80}}, "8080/tcp on 0.0.0.0 is already published by endpoint web"},
		{[]Mapping{{Proto: TCP, HostIP: h1, HostPort: 8080, ContainerPort: 80}}, "by endpoint web"},
		{[]Mapping{{Proto: UDP, HostPort: 53, ContainerPort: 53}}, "by endpoint dns"},
		{[]Mapping{{Proto: TCP, HostPort: 9000, ContainerPort: 1}, {Proto: TCP, HostPort: 9000, ContainerPort: 2}}, "twice"},
		// No conflict: other proto, other specific address.
		{[]Mapping{{Proto: UDP, HostPort: 8080, ContainerPort: 80}}, ""},
		{[]Mapping{{Proto: UDP, HostIP: h2, HostPort: 53, ContainerPort: 53}}, ""},
	} {
		_, err := Assign(Requests(tc.want), eps, Holder{Owner: "endpoint new"}, noHostSockets)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%+v: error %v, want %q", tc.want, err, tc.err)
		}
	}
}

func TestAssignPortsRandomHostPort(t *testing.T) {
	got, err := Assign(Requests([]Mapping{{Proto: TCP, ContainerPort: 80}, {Proto: TCP, ContainerPort: 81}}), nil, Holder{Owner: "endpoint x"}, noHostSockets)
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := ephemeralPorts() // this namespace's ip_local_port_range
	for _, m := range got {
		if int(m.HostPort) < lo || int(m.HostPort) > hi {
			t.Errorf("host port %d outside the ephemeral range %d-%d", m.HostPort, lo, hi)
		}
	}
	if got[0].HostPort == got[1].HostPort {
		t.Errorf("two mappings got the same host port %d", got[0].HostPort)
	}
}

func TestParseProcAddr(t *testing.T) {
	for in, want := range map[string]netip.AddrPort{
		"0100007F:1F90":                         netip.MustParseAddrPort("127.0.0.1:8080"),
		"00000000:0035":                         netip.AddrPortFrom(netip.Addr{}, 53),
		"0000000000000000FFFF00000200A8C0:01BB": netip.MustParseAddrPort("192.168.0.2:443"),
		"00000000000000000000000000000000:0016": netip.AddrPortFrom(netip.Addr{}, 22),
		"000080FE00000000FF005450B6AD1DFE:0050": netip.MustParseAddrPort("[fe80::5054:ff:fe1d:adb6]:80"),
	} {
		addr, port, err := parseProcAddr(in)
		if err != nil || netip.AddrPortFrom(addr, port) != want {
			t.Errorf("parseProcAddr(%s) = %v:%d, %v; want %v", in, addr, port, err, want)
		}
	}
	for _, bad := range []string{"", "0100007F", "01007F:1F90", "0100007F:XYZ", "0100007G:0050"} {
		if _, _, err := parseProcAddr(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// A container's runtime-held port may be published by another interface of
// the same container (Podman's network connect), by nothing else.
func TestAssignPortsSharesRuntimeHeldWithinContainer(t *testing.T) {
	held := Mapping{Proto: TCP, HostPort: 8080, ContainerPort: 80, RuntimeHeld: true}
	eps := []Holder{{Owner: "endpoint c1-eth0", ContainerID: "c1", Ports: []Mapping{held}}}
	hostSocket := func(Protocol, netip.Addr, uint16) error { return errors.New("in use by a process of the host") }
	plain := held
	plain.RuntimeHeld = false
	h1 := held
	h1.HostIP = netip.MustParseAddr("198.18.0.2")
	for _, tc := range []struct {
		name, container string
		want            Mapping
		err             string
	}{
		// The runtime's socket holds the port: no host probe for a sibling.
		{"sibling", "c1", held, ""},
		{"other container", "c2", held, "already published by endpoint c1-eth0"},
		{"not runtime-held", "c1", plain, "already published by endpoint c1-eth0"},
		{"other address", "c1", h1, "already published by endpoint c1-eth0"},
		{"no container", "", held, "already published by endpoint c1-eth0"},
	} {
		_, err := Assign(Requests([]Mapping{tc.want}), eps, Holder{Owner: "endpoint new", ContainerID: tc.container}, hostSocket)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
		}
	}
	twice := []Mapping{held, held}
	if _, err := Assign(Requests(twice), nil, Holder{Owner: "endpoint new", ContainerID: "c1"}, noHostSockets); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("one interface asking twice: %v", err)
	}
}
