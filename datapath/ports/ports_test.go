package ports

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestParsePortSpec(t *testing.T) {
	ip := netip.MustParseAddr("198.18.0.2")
	m := func(ms ...Mapping) []Request { return Requests(ms) }
	for _, tc := range []struct {
		spec string
		want []Request
	}{
		{"80", m(Mapping{Proto: TCP, ContainerPort: 80})},
		{"8080:80", m(Mapping{Proto: TCP, HostPort: 8080, ContainerPort: 80})},
		{"8080:80/udp", m(Mapping{Proto: UDP, HostPort: 8080, ContainerPort: 80})},
		{"53/UDP", m(Mapping{Proto: UDP, ContainerPort: 53})},
		{"198.18.0.2:8080:80", m(Mapping{Proto: TCP, HostIP: ip, HostPort: 8080, ContainerPort: 80})},
		{"198.18.0.2::80", m(Mapping{Proto: TCP, HostIP: ip, ContainerPort: 80})},
		// Docker 28: 0.0.0.0 is IPv4 only, [::] IPv6 only, none both.
		{"0.0.0.0:8080:80", m(Mapping{Proto: TCP, HostIP: netip.IPv4Unspecified(), HostPort: 8080, ContainerPort: 80})},
		{"[::]:8080:80", m(Mapping{Proto: TCP, HostIP: netip.IPv6Unspecified(), HostPort: 8080, ContainerPort: 80})},
		{"8000-8002:80-82/tcp", m(
			Mapping{Proto: TCP, HostPort: 8000, ContainerPort: 80},
			Mapping{Proto: TCP, HostPort: 8001, ContainerPort: 81},
			Mapping{Proto: TCP, HostPort: 8002, ContainerPort: 82},
		)},
		// Docker: a host range for one container port takes one port of it.
		{"8000-8010:80", []Request{{Mapping: Mapping{Proto: TCP, HostPort: 8000, ContainerPort: 80}, HostPortEnd: 8010}}},
		{"198.18.0.2:8000-8001:53/udp", []Request{{Mapping: Mapping{Proto: UDP, HostIP: ip, HostPort: 8000, ContainerPort: 53}, HostPortEnd: 8001}}},
		// IPv6 host addresses in brackets, as Docker writes them.
		{"[::1]:8080:80", m(Mapping{Proto: TCP, HostIP: netip.IPv6Loopback(), HostPort: 8080, ContainerPort: 80})},
		{"[2001:db8::5]::53/udp", m(Mapping{Proto: UDP, HostIP: netip.MustParseAddr("2001:db8::5"), ContainerPort: 53})},
		{"[2001:db8::5]:8000-8001:80-81", m(
			Mapping{Proto: TCP, HostIP: netip.MustParseAddr("2001:db8::5"), HostPort: 8000, ContainerPort: 80},
			Mapping{Proto: TCP, HostIP: netip.MustParseAddr("2001:db8::5"), HostPort: 8001, ContainerPort: 81},
		)},
	} {
		got, err := ParseSpec(tc.spec)
		if err != nil {
			t.Errorf("%s: %v", tc.spec, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.spec, got, tc.want)
		}
	}
}

func TestPublishAll(t *testing.T) {
	published, err := ParseSpecs([]string{"8080:80"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := PublishAll([]string{"80", "90", "7000-7001/udp", "90/tcp"}, published)
	if err != nil {
		t.Fatal(err)
	}
	want := []Request{
		{Mapping: Mapping{Proto: TCP, HostPort: 8080, ContainerPort: 80}}, // -p wins over -P
		{Mapping: Mapping{Proto: TCP, ContainerPort: 90}},
		{Mapping: Mapping{Proto: UDP, ContainerPort: 7000}},
		{Mapping: Mapping{Proto: UDP, ContainerPort: 7001}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	for spec, msg := range map[string]string{"0": "not a port number", "80/sctp": "tcp or udp", "9-8": "ends before", "x": "not a port number"} {
		if _, err := PublishAll([]string{spec}, nil); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("--expose %q: %v, want %q", spec, err, msg)
		}
	}
}

func TestParsePortSpecErrors(t *testing.T) {
	for spec, want := range map[string]string{
		"":                       "not a port number",
		"0":                      "not a port number",
		"65536":                  "not a port number",
		"http":                   "not a port number",
		"80/sctp":                "protocol must be tcp or udp",
		"[::1]:80":               "[ADDRESS]:HOSTPORT:CONTAINERPORT",
		"[::1:8080:80":           "[ADDRESS]:HOSTPORT:CONTAINERPORT",
		"[1.2.3.4]:80:80":        "must be an IPv6 address",
		"[::ffff:1.2.3.4]:80:80": "must be an IPv6 address",
		"[fe80::1]:80:80":        "link-local",
		"[ff02::1]:80:80":        "multicast",
		"[::1]:80:80:80":         "[ADDRESS]:HOSTPORT:CONTAINERPORT",
		"::1:8080:80":            "IPv6",
		"1.2.3:8080:80":          "IPv4 address",
		"8000-8002:80-81":        "same length",
		"8000:80-81":             "same length",
		"80-81":                  "needs a host port range",
		"90-80:90-80":            "ends before it starts",
		"a:b:c:d":                "brackets",
		"8080:80:tcp":            "IPv4 address",
		"8080:80/tcp/udp":        "not a port number",
	} {
		_, err := ParseSpec(spec)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to mention %q", spec, err, want)
		}
	}
}

func TestProtocolText(t *testing.T) {
	var m Mapping
	if err := json.Unmarshal([]byte(`{"proto":"UDP","container_port":53}`), &m); err != nil || m.Proto != UDP {
		t.Fatalf("unmarshal: %v %+v", err, m)
	}
	out, err := json.Marshal(Mapping{Proto: TCP, ContainerPort: 80})
	if err != nil || !strings.Contains(string(out), `"proto":"tcp"`) {
		t.Fatalf("marshal: %v %s", err, out)
	}
	if err := json.Unmarshal([]byte(`{"proto":"sctp"}`), &m); err == nil {
		t.Error("sctp accepted")
	}
	if _, err := json.Marshal(Mapping{Proto: 1}); err == nil {
		t.Error("protocol 1 marshalled")
	}
}

func TestCheckPorts(t *testing.T) {
	got, err := Check([]Mapping{{Proto: UDP, HostIP: netip.IPv4Unspecified(), HostPort: 53, ContainerPort: 53},
		{Proto: UDP, HostIP: netip.MustParseAddr("::ffff:0.0.0.0"), HostPort: 54, ContainerPort: 54}})
	if err != nil || got[0].HostIP != netip.IPv4Unspecified() || got[1].HostIP != netip.IPv4Unspecified() {
		t.Errorf("0.0.0.0 (IPv4 only) not kept, or a mapped address not unmapped: %v %+v", err, got)
	}
	if got, err := Check([]Mapping{{Proto: TCP, HostIP: netip.IPv6Loopback(), HostPort: 80, ContainerPort: 80}}); err != nil || got[0].HostIP != netip.IPv6Loopback() {
		t.Errorf("[::1]: %v %+v", err, got)
	}
	for _, bad := range []Mapping{
		{Proto: 1, ContainerPort: 80},
		{Proto: TCP},
		{Proto: TCP, ContainerPort: 80, HostIP: netip.MustParseAddr("fe80::1")},
		{Proto: TCP, ContainerPort: 80, HostIP: netip.MustParseAddr("ff02::1")},
	} {
		if _, err := Check([]Mapping{bad}); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// A big range is stored as runs and read back as every mapping; records
// written before runs (one element per port) still read.
func TestPortListJSON(t *testing.T) {
	ip := netip.MustParseAddr("198.18.0.2")
	var l List
	for p := 20000; p <= 40000; p++ {
		l = append(l, Mapping{Proto: TCP, HostPort: uint16(p), ContainerPort: uint16(p)})
	}
	l = append(l,
		Mapping{Proto: UDP, HostPort: 40000, ContainerPort: 40000},
		Mapping{Proto: UDP, HostPort: 40001, ContainerPort: 40001, RuntimeHeld: true}, // a flag breaks the run
		Mapping{Proto: TCP, HostIP: ip, HostPort: 8080, ContainerPort: 80},
		Mapping{Proto: TCP, HostIP: ip, HostPort: 8081, ContainerPort: 80}, // container port repeats
		Mapping{Proto: TCP, HostPort: 65535, ContainerPort: 65535},
	)
	raw, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) > 600 {
		t.Errorf("%d bytes for %d mappings: not stored as runs\n%s", len(raw), len(l), raw)
	}
	var back List
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, l) {
		t.Fatalf("round trip lost mappings: %d back, %d in", len(back), len(l))
	}
	var legacy List
	if err := json.Unmarshal([]byte(`[{"proto":"tcp","host_port":8080,"container_port":80},{"proto":"udp","host_port":53,"container_port":53}]`), &legacy); err != nil || len(legacy) != 2 || legacy[1].Proto != UDP {
		t.Fatalf("legacy list: %v %+v", err, legacy)
	}
	if err := json.Unmarshal([]byte(`[{"proto":"tcp","host_port":65000,"container_port":80,"count":1000}]`), &legacy); err == nil {
		t.Error("a run past port 65535 was accepted")
	}
}

// Docker 28's host addresses: none overlaps everything, 0.0.0.0 every
// IPv4 address and [::] every IPv6 one, not each other.
func TestHostIPsOverlap(t *testing.T) {
	var none netip.Addr
	v4any, v6any := netip.IPv4Unspecified(), netip.IPv6Unspecified()
	a4, b4 := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3")
	a6 := netip.MustParseAddr("2001:db8::2")
	for _, tc := range []struct {
		a, b netip.Addr
		want bool
	}{
		{none, none, true}, {none, v4any, true}, {none, v6any, true}, {none, a6, true}, {none, a4, true},
		{v4any, v6any, false}, {v4any, a4, true}, {v4any, a6, false},
		{v6any, a6, true}, {v6any, a4, false}, {v6any, netip.IPv6Loopback(), true},
		{a4, b4, false}, {a4, a4, true}, {a6, netip.IPv6Loopback(), false},
	} {
		if got := HostIPsOverlap(tc.a, tc.b); got != tc.want {
			t.Errorf("HostIPsOverlap(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		if got := HostIPsOverlap(tc.b, tc.a); got != tc.want {
			t.Errorf("HostIPsOverlap(%v, %v) = %v, want %v", tc.b, tc.a, got, tc.want)
		}
	}
}

// A binding per family, as Docker and CNI runtimes send them, becomes one
// on every address; an IPv6 binding without its IPv4 twin stays IPv6's.
func TestMergeFamilies(t *testing.T) {
	v4any, v6any := netip.IPv4Unspecified(), netip.IPv6Unspecified()
	in := []Request{
		{Mapping: Mapping{Proto: TCP, HostIP: v6any, HostPort: 8080, ContainerPort: 80}}, // before its twin
		{Mapping: Mapping{Proto: TCP, HostIP: v4any, HostPort: 8080, ContainerPort: 80}},
		{Mapping: Mapping{Proto: UDP, ContainerPort: 53}},
		{Mapping: Mapping{Proto: UDP, HostIP: v6any, ContainerPort: 53}},
		{Mapping: Mapping{Proto: TCP, HostIP: v6any, HostPort: 9090, ContainerPort: 90}}, // alone
		{Mapping: Mapping{Proto: TCP, HostIP: v4any, HostPort: 7070, ContainerPort: 70}}, // alone
		{Mapping: Mapping{Proto: TCP, HostIP: v6any, HostPort: 6060, ContainerPort: 61}}, // another container port
		{Mapping: Mapping{Proto: TCP, HostIP: v4any, HostPort: 6060, ContainerPort: 60}},
	}
	got, merged := MergeFamilies(in)
	want := []Request{
		{Mapping: Mapping{Proto: TCP, HostPort: 8080, ContainerPort: 80}},
		{Mapping: Mapping{Proto: UDP, ContainerPort: 53}},
		{Mapping: Mapping{Proto: TCP, HostIP: v4any, HostPort: 7070, ContainerPort: 70}},
		{Mapping: Mapping{Proto: TCP, HostIP: v4any, HostPort: 6060, ContainerPort: 60}},
		{Mapping: Mapping{Proto: TCP, HostIP: v6any, HostPort: 9090, ContainerPort: 90}},
		{Mapping: Mapping{Proto: TCP, HostIP: v6any, HostPort: 6060, ContainerPort: 61}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if len(merged) != 2 || merged[0].ContainerPort != 80 || merged[1].ContainerPort != 53 {
		t.Errorf("merged %+v, want the IPv6 twins of 80 and 53", merged)
	}
}
