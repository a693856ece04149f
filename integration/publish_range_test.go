package integration

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

// Issue 12, port grammar: -p 8000-8010:80 takes one free host port of the
// range (skipping one another endpoint publishes and one a host process
// listens on), -P publishes every --expose'd port on an ephemeral port
// from the namespace's ip_local_port_range, and the chosen ports carry
// real traffic.
func TestPublishHostPortRangeAndPublishAll(t *testing.T) {
	tp := natHost(t)
	a, b, c := tp.AddContainer("a"), tp.AddContainer("b"), tp.AddContainer("c")
	tp.MustEbpfnet("attach", "--network", "n1", "-p", "8000:80", a)
	host := tp.Namespace(tp.Host)
	var l net.Listener
	if err := netnsutil.Do(host, func() (err error) { l, err = net.Listen("tcp4", ":8001"); return err }); err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	tp.MustEbpfnet("attach", "--network", "n1", "-p", "8000-8010:80", b)
	if got := strings.TrimSpace(tp.MustEbpfnet("port", b, "80")); got != "0.0.0.0:8002" {
		t.Fatalf("port %s 80 = %q, want 0.0.0.0:8002 (8000 published by %s, 8001 held by a host process)", b, got, a)
	}
	testutil.Serve(t, tp.Namespace(b), "b", ":80")
	expect(t, testutil.MustAsk(t, tp.Namespace(tp.Ext), "tcp4", hostAddr+":8002"), "b", extAddr)

	// A full range is refused in one line, naming the range.
	_, errOut, err := tp.Ebpfnet("attach", "--network", "n1", "-p", "8000-8001:80", c)
	if err == nil || !strings.Contains(errOut, "no free host port in 8000-8001/tcp") {
		t.Fatalf("attach with a full range: %v %q", err, errOut)
	}

	// -P: ephemeral ports from the host namespace's own range.
	tp.Exec(tp.Host, "sysctl", "-qw", "net.ipv4.ip_local_port_range=41000 41099")
	tp.MustEbpfnet("attach", "--network", "n1", "-P", "--expose", "90", "--expose", "7000-7001/udp", "-p", "9443:443", c)
	lines := strings.Split(strings.TrimSpace(tp.MustEbpfnet("port", "--expand", c)), "\n")
	if len(lines) != 4 {
		t.Fatalf("port %s:\n%s\nwant 443, 90, 7000/udp and 7001/udp", c, strings.Join(lines, "\n"))
	}
	hostPort := map[string]int{}
	for _, line := range lines {
		ctr, pub, _ := strings.Cut(line, " -> ")
		_, p, err := net.SplitHostPort(pub)
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		hostPort[ctr], _ = strconv.Atoi(p)
	}
	if hostPort["443/tcp"] != 9443 {
		t.Errorf("443/tcp on %d, want 9443 as -p asked", hostPort["443/tcp"])
	}
	for _, ctr := range []string{"90/tcp", "7000/udp", "7001/udp"} {
		if p := hostPort[ctr]; p < 41000 || p > 41099 {
			t.Errorf("%s on host port %d, want one of ip_local_port_range 41000-41099", ctr, p)
		}
	}
	testutil.Serve(t, tp.Namespace(c), "c", ":90")
	testutil.Serve(t, tp.Namespace(c), "c", ":7000")
	expect(t, testutil.MustAsk(t, tp.Namespace(tp.Ext), "tcp4", hostAddr+":"+strconv.Itoa(hostPort["90/tcp"])), "c", extAddr)
	expect(t, testutil.MustAsk(t, tp.Namespace(tp.Ext), "udp4", hostAddr+":"+strconv.Itoa(hostPort["7000/udp"])), "c", extAddr)

	// Bad --expose is refused even without -P, and changes nothing.
	d := tp.AddContainer("d")
	if _, errOut, err := tp.Ebpfnet("attach", "--network", "n1", "--expose", "80/sctp", d); err == nil || !strings.Contains(errOut, `invalid --expose "80/sctp"`) {
		t.Fatalf("--expose 80/sctp: %v %q", err, errOut)
	}
	if ls := tp.MustEbpfnet("ls", "-q"); strings.Contains(ls, d) {
		t.Fatalf("a refused attach left %s:\n%s", d, ls)
	}
}
