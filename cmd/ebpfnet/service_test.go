package main

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/datapath"
	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

// goodServiceFile has every field of the format.
const goodServiceFile = `{
  "nodeIPs": ["198.18.0.2", "192.168.7.1"],
  "services": [
    {
      "name": "default/web:http",
      "frontends": ["10.96.0.10:80", "203.0.113.7:80"],
      "nodePort": 30080,
      "endpoints": [
        {"address": "10.244.0.5:8080", "local": true},
        {"address": "10.244.1.7:8080"}
      ],
      "externalTrafficPolicy": "Local",
      "internalTrafficPolicy": "cluster",
      "affinity": "3h"
    },
    {"name": "kube-system/dns:dns", "protocol": "UDP", "frontends": ["10.96.0.10:53"],
     "endpoints": [{"address": "10.244.0.9:53", "local": true}], "internalTrafficPolicy": "Local"},
    {"name": "kube-system/dns:dns-tcp", "frontends": ["10.96.0.10:53"], "endpoints": [], "affinity": "0s"},
    {"nodePort": 30053, "protocol": "udp", "endpoints": [{"address": "10.244.0.9:53"}]}
  ]
}`

func mustAP(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestParseServiceFile(t *testing.T) {
	got, err := parseServiceFile([]byte(goodServiceFile))
	if err != nil {
		t.Fatal(err)
	}
	want := datapath.ServiceTable{
		NodeIPs: []netip.Addr{netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("192.168.7.1")},
		Services: []datapath.Service{
			{Name: "default/web:http", Proto: "tcp", Frontends: []netip.AddrPort{mustAP("10.96.0.10:80"), mustAP("203.0.113.7:80")},
				NodePort: 30080, Backends: []datapath.ServiceBackend{{Addr: mustAP("10.244.0.5:8080"), Local: true}, {Addr: mustAP("10.244.1.7:8080")}},
				ExternalLocal: true, Affinity: 3 * time.Hour},
			{Name: "kube-system/dns:dns", Proto: "udp", Frontends: []netip.AddrPort{mustAP("10.96.0.10:53")},
				Backends: []datapath.ServiceBackend{{Addr: mustAP("10.244.0.9:53"), Local: true}}, InternalLocal: true},
			{Name: "kube-system/dns:dns-tcp", Proto: "tcp", Frontends: []netip.AddrPort{mustAP("10.96.0.10:53")}},
			{Name: "services[3]", Proto: "udp", NodePort: 30053, Backends: []datapath.ServiceBackend{{Addr: mustAP("10.244.0.9:53")}}},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parsed\n%+v\nwant\n%+v", got, want)
	}
	for _, empty := range []string{`{}`, `{"services": []}`, ` {"nodeIPs": [], "services": []}` + "\n\n"} {
		if got, err := parseServiceFile([]byte(empty)); err != nil || len(got.Services)+len(got.NodeIPs) != 0 {
			t.Errorf("%q: %+v, %v; want an empty table", empty, got, err)
		}
	}
}

// Each bad file is refused with every problem named, one per line.
func TestParseServiceFileRefuses(t *testing.T) {
	svc := func(fields string) string { return `{"services": [{"frontends": ["10.96.0.1:80"], ` + fields + `}]}` }
	cases := []struct {
		name, file string
		want       []string // one regexp per line of the error, in order
	}{
		{"empty", ``, []string{`want a JSON object`}},
		{"null", `null`, []string{`want a JSON object`}},
		{"array", `[]`, []string{`want a JSON object`}},
		{"truncated", "{\n\"services\": [", []string{`^line 2, column 14: the JSON ends before the table does$`}},
		{"syntax", "{\n  \"services\": [}\n", []string{`^line 2, column 16: invalid character '}'`}},
		{"unknown field", `{"service": []}`, []string{`unknown field "service"`}},
		{"unknown service field", svc(`"port": 80`), []string{`unknown field "port"`}},
		{"trailing", "{}\n{}", []string{`^line 2, column 1: data after the table's closing brace$`}},
		{"nodePort type", svc(`"nodePort": "30080"`), []string{`^line 1, column \d+: services\.nodePort: want a number, not a JSON string$`}},
		{"affinity type", svc(`"affinity": 10800`), []string{`services\.affinity: want a Go duration string like "3h", not a JSON number`}},
		{"local type", svc(`"endpoints": [{"address": "10.0.0.1:80", "local": "yes"}]`), []string{`services\.endpoints\.local: want true or false`}},
		{"node IPs", `{"nodeIPs": ["fe80::1", "10.0.0.1", "10.0.0.1", "0.0.0.0", "224.0.0.1", "x"]}`, []string{
			`^nodeIPs: "fe80::1" is not an IPv4 address$`, `^nodeIPs: 10\.0\.0\.1 is listed twice$`,
			`^nodeIPs: 0\.0\.0\.0 is not a node's address$`, `^nodeIPs: 224\.0\.0\.1 is not a node's address$`, `^nodeIPs: "x" is not an IPv4 address$`}},
		{"protocol", svc(`"name": "a", "protocol": "sctp"`), []string{`^services\[0\] \(a\): protocol "sctp": want tcp or udp$`}},
		{"frontends", `{"services": [{"frontends": ["10.96.0.1", "10.96.0.1:0", "[::1]:80", "0.0.0.0:80", "*:30080", "10.96.0.2:80", "10.96.0.2:80"]}]}`, []string{
			`^services\[0\]: frontend "10\.96\.0\.1": want an IPv4 ADDR:PORT$`,
			`^services\[0\]: frontend "10\.96\.0\.1:0": want a port of 1-65535$`,
			`^services\[0\]: frontend "\[::1\]:80": want an IPv4 address$`,
			`^services\[0\]: frontend "0\.0\.0\.0:80": 0\.0\.0\.0 is not a unicast address$`,
			`^services\[0\]: frontend "\*:30080": a NodePort is written "nodePort": 30080$`,
			`^services\[0\]: frontend 10\.96\.0\.2:80 is listed twice$`}},
		{"unreachable", `{"services": [{"name": "lost", "endpoints": [{"address": "10.0.0.1:80"}]}]}`, []string{`^services\[0\] \(lost\): no frontend and no nodePort: nothing would reach it$`}},
		{"nodePort range", svc(`"nodePort": 70000`), []string{`^services\[0\]: nodePort 70000: want 1-65535 \(0 or absent: none\)$`}},
		{"endpoints", svc(`"endpoints": [{"address": "10.0.0.1:0"}, {"address": "10.0.0.2"}, {"address": "10.0.0.3:80"}, {"address": "10.0.0.3:80", "local": true}]`), []string{
			`^services\[0\]: endpoint "10\.0\.0\.1:0": want a port of 1-65535$`,
			`^services\[0\]: endpoint "10\.0\.0\.2": want an IPv4 ADDR:PORT$`,
			`^services\[0\]: endpoint 10\.0\.0\.3:80 is listed twice$`}},
		{"policies", svc(`"externalTrafficPolicy": "Remote", "internalTrafficPolicy": "local-only"`), []string{
			`^services\[0\]: externalTrafficPolicy "Remote": want Cluster or Local$`,
			`^services\[0\]: internalTrafficPolicy "local-only": want Cluster or Local$`}},
		{"affinity syntax", svc(`"affinity": "10800"`), []string{`^services\[0\]: affinity "10800": want a Go duration like "3h" or "90s"$`}},
		{"affinity negative", svc(`"affinity": "-1h"`), []string{`^services\[0\]: affinity -1h: want a timeout of 0 \(none\) or more$`}},
		{"affinity fraction", svc(`"affinity": "1500ms"`), []string{`^services\[0\]: affinity 1500ms: want whole seconds`}},
		{"frontend of two", `{"services": [{"name": "a", "frontends": ["10.96.0.1:80"]}, {"name": "b", "frontends": ["10.96.0.2:80", "10.96.0.1:80"]}, {"frontends": ["10.96.0.1:80"], "protocol": "udp"}]}`, []string{
			`^services\[1\] \(b\): frontend 10\.96\.0\.1:80/tcp is services\[0\] \(a\)'s too$`}},
		{"nodePort of two", `{"services": [{"nodePort": 30080}, {"nodePort": 30080, "protocol": "udp"}, {"nodePort": 30080, "frontends": ["10.96.0.3:80"]}]}`, []string{
			`^services\[2\]: nodePort 30080/tcp is services\[0\]'s too$`}},
	}
	for _, c := range cases {
		_, err := parseServiceFile([]byte(c.file))
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		lines := strings.Split(err.Error(), "\n")
		if len(lines) != len(c.want) {
			t.Errorf("%s: %d problem(s), want %d:\n%v", c.name, len(lines), len(c.want), err)
			continue
		}
		for i, re := range c.want {
			if !regexp.MustCompile(re).MatchString(lines[i]) {
				t.Errorf("%s: problem %q does not match %q", c.name, lines[i], re)
			}
		}
	}
}

func TestParseServiceFileBoundsProblems(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"services": [`)
	for i := range 50 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`{"frontends": ["10.96.0.1"]}`)
	}
	b.WriteString(`]}`)
	_, err := parseServiceFile([]byte(b.String()))
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != maxValidationErrors+1 || lines[len(lines)-1] != "and 30 more problem(s)" {
		t.Fatalf("%d lines, last %q", len(lines), lines[len(lines)-1])
	}
}

func TestParseServiceFileCapacity(t *testing.T) {
	f := serviceFile{}
	eps := make([]serviceEndpoint, datapath.MaxServiceBackends+1)
	for i := range eps {
		eps[i].Address = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 244, byte(i >> 8), byte(i)}), 80).String()
	}
	f.Services = append(f.Services, serviceSpec{Frontends: []string{"10.96.0.1:80"}, Endpoints: eps})
	_, err := f.table()
	if err == nil || !strings.Contains(err.Error(), "4097 endpoints: the datapath balances at most 4096 per service") {
		t.Fatalf("err = %v", err)
	}
	f.Services = nil
	for i := range maxServiceFrontends + 1 {
		a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)}), uint16(80+i>>16))
		f.Services = append(f.Services, serviceSpec{Frontends: []string{a.String()}})
	}
	if _, err := f.table(); err == nil || !strings.Contains(err.Error(), "65537 frontends and nodePorts: the datapath holds at most 65536") {
		t.Fatalf("err = %v", err)
	}
}

// What ls -o json prints, sync reads back as the same table.
func TestServiceFileRoundTrip(t *testing.T) {
	table, err := parseServiceFile([]byte(goodServiceFile))
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(serviceFileOf(table))
	if err != nil {
		t.Fatal(err)
	}
	back, err := parseServiceFile(out)
	if err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	if len(back.Services) != len(table.Services) || !reflect.DeepEqual(back.NodeIPs, table.NodeIPs) {
		t.Fatalf("round trip: %+v\nfrom %+v", back, table)
	}
	// serviceFileOf orders by frontend: find each by its name.
	for _, s := range table.Services {
		found := false
		for _, b := range back.Services {
			found = found || reflect.DeepEqual(s, b)
		}
		if !found {
			t.Errorf("%+v lost in the round trip (%s)", s, out)
		}
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		3 * time.Hour: "3h", 90 * time.Minute: "1h30m", 10 * time.Minute: "10m", 90 * time.Second: "1m30s",
		time.Second: "1s", time.Hour + 30*time.Second: "1h0m30s",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("%v: %q, want %q", d, got, want)
		}
		if back, err := time.ParseDuration(shortDuration(d)); err != nil || back != d {
			t.Errorf("%v does not parse back: %v %v", d, back, err)
		}
	}
}

// A refused file never reaches the instance: the pin root here is no
// bpffs, so any attempt to load would fail otherwise.
func TestServiceSyncRefusesBeforeTheKernel(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"services": [{"frontends": ["10.96.0.1:80"], "protocol": "icmp"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.json")
	if err := os.WriteFile(good, []byte(goodServiceFile), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		err  string
		out  string
	}{
		{args: []string{"service", "sync", bad}, err: bad + `: services[0]: protocol "icmp": want tcp or udp`},
		{args: []string{"service", "sync", filepath.Join(dir, "missing.json")}, err: "no such file"},
		{args: []string{"service", "sync"}, err: "accepts 1 arg(s), received 0"},
		{args: []string{"service", "sync", "--dry-run", good}, out: "valid: 4 service(s), 6 frontend(s), 4 endpoint(s), 2 node address(es)\n"},
		{args: []string{"service"}, err: "service needs a subcommand: ls, sync"},
	} {
		out, err := execute(t, c.args...)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%v: %v, want an error with %q", c.args, err, c.err)
		case c.err == "" && (err != nil || out != c.out):
			t.Errorf("%v: %q %v, want %q", c.args, out, err, c.out)
		}
	}
}

// The command on a sandbox host: sync, list in every format, round-trip,
// a pod reaching a ClusterIP set up through it, and removal.
func TestServiceCommand(t *testing.T) {
	tp := newHost(t)
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	table := file("table.json", `{
  "nodeIPs": ["`+testutil.HostIP+`"],
  "services": [
    {"name": "default/web", "frontends": ["10.96.0.10:80"], "nodePort": 30080, "affinity": "3h",
     "endpoints": [{"address": "10.244.0.3:8080", "local": true}, {"address": "10.244.9.9:8080"}],
     "externalTrafficPolicy": "Local", "internalTrafficPolicy": "Local"},
    {"name": "default/empty", "protocol": "udp", "frontends": ["10.96.0.11:53"], "endpoints": []}
  ]
}`)
	const header = `FRONTENDS\s+PROTO\s+AFFINITY\s+EXT TRAFFIC\s+INT TRAFFIC\s+ENDPOINTS\n`
	runCases(t, tp, []cliCase{
		{name: "ls without a network", args: []string{"service", "ls"}, stdout: `^` + header + `$`},
		{name: "ls json without a network", args: []string{"service", "ls", "-o", "json"}, stdout: `^\{\n  "nodeIPs": \[\],\n  "services": \[\]\n\}\n$`},
		{name: "sync without a network", args: []string{"service", "sync", table}, code: 1, stderr: `^ebpfnet: no network or endpoint on this instance`},
		{name: "empty sync without a network", args: []string{"service", "sync", file("empty.json", `{"services": []}`)}, stdout: `^synced: 0 service\(s\)`},
	})
	tp.MustEbpfnet("network", "create", "k8s", "--subnet", "10.244.0.0/24")
	client, backend := tp.AddContainer("client"), tp.AddContainer("backend")
	tp.MustEbpfnet("attach", "--network", "k8s", "--ip", "10.244.0.2", client)
	tp.MustEbpfnet("attach", "--network", "k8s", "--ip", "10.244.0.3", backend)
	testutil.Serve(t, tp.Namespace(backend), "backend", ":8080")
	runCases(t, tp, []cliCase{
		{name: "sync", args: []string{"service", "sync", table}, stdout: `^synced: 2 service\(s\), 3 frontend\(s\), 2 endpoint\(s\), 1 node address\(es\)\n$`},
		{name: "ls", args: []string{"service", "ls"}, stdout: `^` + header +
			`10\.96\.0\.10:80, \*:30080\s+tcp\s+3h\s+Local\s+Local\s+10\.244\.0\.3:8080 \(local\)\n` +
			`\s+10\.244\.9\.9:8080\n` +
			`10\.96\.0\.11:53\s+udp\s+-\s+Cluster\s+Cluster\s+-\n` +
			`\nNODE IPS: 198\.18\.0\.2\n$`},
		{name: "quiet", args: []string{"service", "ls", "-q"}, stdout: `^10\.96\.0\.10:80/tcp\n10\.96\.0\.11:53/udp\n$`},
		{name: "format", args: []string{"service", "ls", "--format", `{{join .Frontends ","}} {{.NodePort}} {{len .Endpoints}} {{.Affinity}}`}, stdout: `^10\.96\.0\.10:80 30080 2 3h\n10\.96\.0\.11:53 0 0 \n$`},
		{name: "json", args: []string{"service", "ls", "--format", "json"}, stdout: `(?s)"nodeIPs": \[\s+"198\.18\.0\.2"\s+\].*"address": "10\.244\.0\.3:8080",\s+"local": true`},
		{name: "bad file changes nothing", args: []string{"service", "sync", file("bad.json", `{"services": [{"frontends": ["10.96.0.12:80"], "endpoints": [{"address": "10.244.0.3"}]}]}`)},
			code: 1, stderr: `^ebpfnet: .*bad\.json: services\[0\]: endpoint "10\.244\.0\.3": want an IPv4 ADDR:PORT\n$`},
		{name: "still two", args: []string{"service", "ls", "-q"}, stdout: `^10\.96\.0\.10:80/tcp\n10\.96\.0\.11:53/udp\n$`},
	})
	// The pod reaches the ClusterIP's local endpoint, through the table the
	// CLI programmed (internal traffic policy Local: the other endpoint,
	// which is nowhere, is never picked).
	if r := testutil.MustAsk(t, tp.Namespace(client), "tcp4", "10.96.0.10:80"); r.Server != "backend" || r.Source != "10.244.0.2" {
		t.Errorf("pod to ClusterIP: %+v", r)
	}

	// ls -o json syncs back to the same listing.
	before := run(t, tp, "service", "ls")
	listed := file("listed.json", run(t, tp, "service", "ls", "-o", "json").stdout)
	runCases(t, tp, []cliCase{{name: "round trip", args: []string{"service", "sync", listed}, stdout: `^synced: 2 service`}})
	if after := run(t, tp, "service", "ls"); after.stdout != before.stdout {
		t.Errorf("after a round trip:\n%s\nbefore:\n%s", after.stdout, before.stdout)
	}

	stdin := tp.EbpfnetCmd("service", "sync", "-")
	stdin.Stdin = strings.NewReader(`{"services": []}`)
	if out, err := stdin.CombinedOutput(); err != nil {
		t.Fatalf("sync from stdin: %v: %s", err, out)
	}
	runCases(t, tp, []cliCase{{name: "emptied", args: []string{"service", "ls"}, stdout: `^` + header + `$`}})
}
