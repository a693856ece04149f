package integration

// `docker network create -d ebpfnet --ipv6` with a real dockerd: dual-stack
// containers talking IPv6 through the datapath.

import (
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/ebpfnet/ebpfnet/internal/testing/runtimetest"
	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
	"github.com/ebpfnet/ebpfnet/maps"
)

// TestDockerIPv6: a dual-stack Docker network; its containers get Docker's
// IPv6 addresses, the EUI-64 link-local address of their MAC and an IPv6
// default route via the network's IPv6 gateway; they reach each other
// over IPv6 (ICMPv6 by address and by name, TCP with the source kept,
// link-local) through the datapath, which counts it and drops nothing as
// spoofed; -p publishes with Docker 28's host-IP rules (0.0.0.0 IPv4
// only, [::] IPv6 only, both twins once on every address) and on one IPv6
// address; one the host does not hold is refused; nothing is left after rm.
func TestDockerIPv6(t *testing.T) {
	h := newDockerHost(t)
	h.docker("network", "create", "-d", h.name, "--ipv6", "--subnet", "172.30.0.0/24", "--subnet", "fd00:30::/64", "n6")
	if d := strings.TrimSpace(h.docker("network", "inspect", "-f", "{{.EnableIPv6}} {{range .IPAM.Config}}{{.Subnet}} {{end}}", "n6")); d != "true 172.30.0.0/24 fd00:30::/64" {
		t.Fatalf("docker network inspect: %q", d)
	}
	netID := strings.TrimSpace(h.docker("network", "inspect", "-f", "{{.Id}}", "n6"))[:12]
	if ni := h.MustEbpfnet("network", "inspect", netID); !strings.Contains(ni, `"subnet6": "fd00:30::/64"`) || !strings.Contains(ni, `"gateway6": "fd00:30::1"`) {
		t.Fatalf("ebpfnet network inspect %s:\n%s", netID, ni)
	}

	// c2 answers TCP on 7000 with the connections it sees, and HTTP on 80.
	h.docker("run", "-d", "--name", "c1", "--network", "n6", "-p", "8080:80",
		runtimetest.ImageName, "httpd", "-f", "-p", "80", "-h", "/var/www")
	h.docker("run", "-d", "--name", "c2", "--network", "n6", "--ip6", "fd00:30::20",
		runtimetest.ImageName, "sh", "-c", "nc -ll -p 7000 -e netstat -tn & exec httpd -f -p 80 -h /var/www")
	ip1 := strings.TrimSpace(h.docker("inspect", "-f", "{{.NetworkSettings.Networks.n6.GlobalIPv6Address}}", "c1"))
	if !strings.HasPrefix(ip1, "fd00:30::") {
		t.Fatalf("c1's IPv6 address from Docker: %q", ip1)
	}
	const ip2 = "fd00:30::20"
	ep1, ep2 := inspect(t, h.Topology, h.endpointOf("c1", "n6")), inspect(t, h.Topology, h.endpointOf("c2", "n6"))
	if ep1.IP6.String() != ip1 || ep2.IP6.String() != ip2 {
		t.Fatalf("ebpfnet's IPv6 addresses %s, %s, want Docker's %s, %s", ep1.IP6, ep2.IP6, ip1, ip2)
	}

	// Inside: Docker's address, the link-local one the datapath accepts
	// (out of duplicate address detection), nothing else; the IPv6 default
	// route via the gateway.
	for _, c := range []struct {
		name, ip, mac string
	}{{"c1", ip1, ep1.MAC}, {"c2", ip2, ep2.MAC}} {
		if m := strings.TrimSpace(h.docker("inspect", "-f", "{{.NetworkSettings.Networks.n6.MacAddress}}", c.name)); m != c.mac {
			t.Errorf("%s: Docker's MAC %s, ebpfnet's %s", c.name, m, c.mac)
		}
		mac, _ := net.ParseMAC(c.mac)
		ll := maps.LinkLocal(mac).String()
		var addrs string
		err := retry(func() error {
			addrs = h.docker("exec", c.name, "ip", "-6", "-o", "addr", "show", "dev", "eth0")
			if strings.Contains(addrs, "tentative") {
				return fmt.Errorf("tentative")
			}
			return nil
		})
		if err != nil || strings.Count(addrs, "inet6") != 2 || !strings.Contains(addrs, c.ip+"/64") || !strings.Contains(addrs, ll+"/64") {
			t.Errorf("%s's IPv6 addresses, want %s/64 and %s/64 (%v):\n%s", c.name, c.ip, ll, err, addrs)
		}
		if r := h.docker("exec", c.name, "ip", "-6", "route", "show", "default"); !strings.Contains(r, "via fd00:30::1 dev eth0") {
			t.Errorf("%s's IPv6 default route: %q, want via fd00:30::1", c.name, r)
		}
	}

	v := h.Views()
	spoofedIP, spoofedND := dropCount(t, v, "spoofed_ip"), dropCount(t, v, "spoofed_nd")
	rxBefore := inspect(t, h.Topology, ep2.Name).Rx.Packets
	t.Run("ping by address", func(t *testing.T) {
		if out, err := h.execRetry("c1", "ping", "-6", "-c", "3", "-W", "2", ip2); err != nil {
			t.Errorf("c1 -> c2 over IPv6: %v\n%s", err, out)
		}
	})
	t.Run("ping by name", func(t *testing.T) {
		out, _, err := h.dk.Cmd("exec", "c1", "ping", "-6", "-c", "1", "-W", "2", "c2")
		if err == nil && strings.Contains(out, ip2) {
			t.Logf("Docker's DNS answered AAAA: %s", strings.SplitN(out, "\n", 2)[0])
			return
		}
		// Whether Docker's embedded DNS answers AAAA is Docker's, not ours.
		ns, _, _ := h.dk.Cmd("exec", "c1", "nslookup", "-type=AAAA", "c2", "127.0.0.11")
		if strings.Contains(ns, ip2) {
			t.Errorf("Docker's DNS answers c2 AAAA %s, yet ping -6 c2 failed: %v\n%s", ip2, err, out)
		} else {
			t.Logf("Docker's DNS has no AAAA for c2: %s", ns)
		}
	})
	t.Run("tcp keeps the source", func(t *testing.T) {
		var out string
		err := retry(func() (err error) {
			out, _, err = h.dk.Cmd("exec", "c1", "sh", "-c", "timeout 5 nc "+ip2+" 7000")
			if err == nil && !strings.Contains(out, ":7000") {
				err = fmt.Errorf("no connection listed")
			}
			return err
		})
		if err != nil || !strings.Contains(out, ip1) {
			t.Errorf("c2's view of a TCP connection from c1 (want peer %s): %v\n%s", ip1, err, out)
		}
		if out, err := h.execRetry("c1", "timeout", "5", "wget", "-qO-", "http://["+ip2+"]/index.html"); err != nil || strings.TrimSpace(out) != "ebpfnet-test" {
			t.Errorf("c1 -> http://[%s]/: %q %v", ip2, out, err)
		}
	})
	t.Run("link-local", func(t *testing.T) {
		mac2, _ := net.ParseMAC(ep2.MAC)
		if out, err := h.execRetry("c1", "ping", "-6", "-c", "2", "-W", "2", maps.LinkLocal(mac2).String()+"%eth0"); err != nil {
			t.Errorf("c1 -> c2's link-local address: %v\n%s", err, out)
		}
	})
	t.Run("the gateway", func(t *testing.T) {
		if out, err := h.execRetry("c1", "ping", "-6", "-c", "1", "-W", "2", "fd00:30::1"); err != nil {
			t.Errorf("c1 -> fd00:30::1: %v\n%s", err, out)
		}
	})
	// The datapath carried it, and took none of it for spoofing.
	if got := inspect(t, h.Topology, ep2.Name).Rx.Packets - rxBefore; got < 8 {
		t.Errorf("the datapath delivered %d packets to c2, want at least the pings and a TCP connection", got)
	}
	if d := dropCount(t, v, "spoofed_ip") - spoofedIP; d != 0 {
		t.Errorf("%d spoofed_ip drops from Docker's containers", d)
	}
	if d := dropCount(t, v, "spoofed_nd") - spoofedND; d != 0 {
		t.Errorf("%d spoofed_nd drops from Docker's containers", d)
	}
	// Spoofing is still caught: an address Docker did not give c1, added
	// from the host (the container may not).
	sandbox := strings.TrimSpace(h.docker("inspect", "-f", "{{.NetworkSettings.SandboxKey}}", "c1"))
	inC1 := func(args ...string) (string, error) {
		out, err := exec.Command(runtimetest.NsenterBin, append([]string{"--net=" + sandbox, "--"}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := inC1("ip", "addr", "add", "fd00:30::77/64", "dev", "eth0", "nodad"); err != nil {
		t.Fatalf("add a spoofed address to c1: %v %s", err, out)
	}
	if out, err := inC1("ping", "-6", "-c", "1", "-W", "1", "-I", "fd00:30::77", ip2); err == nil {
		t.Errorf("a ping from a spoofed IPv6 source went through:\n%s", out)
	}
	if dropCount(t, v, "spoofed_ip") == spoofedIP {
		t.Error("no spoofed_ip drop counted for a spoofed IPv6 source")
	}
	inC1("ip", "addr", "del", "fd00:30::77/64", "dev", "eth0")

	t.Run("published ports", func(t *testing.T) {
		// -p 8080:80 on a dual-stack network: IPv4 from outside.
		if out, err := h.wget("http://" + testutil.HostIP + ":8080/index.html"); err != nil || out != "ebpfnet-test" {
			t.Errorf("outside -> 8080: %q %v", out, err)
		}
		// Docker 28's rules: [::] beside 0.0.0.0 is one binding on every
		// address, [::] alone IPv6 only, [::1] the host alone over IPv6.
		h.docker("run", "-d", "--name", "c3", "--network", "n6", "-p", "0.0.0.0:8081:80", "-p", "[::]:8081:80", "-p", "[::]:8082:80",
			"-p", "[::1]:8083:80", runtimetest.ImageName, "httpd", "-f", "-p", "80", "-h", "/var/www")
		p := strings.Fields(strings.ReplaceAll(h.MustEbpfnet("port", h.endpointOf("c3", "n6")), " -> ", "->"))
		slices.Sort(p) // in dockerd's order
		if strings.Join(p, " ") != "80/tcp->0.0.0.0:8081 80/tcp->[::1]:8083 80/tcp->[::]:8082" {
			t.Errorf("ports of c3: %q, want 8081 on every address, 8082 on [::], 8083 on [::1]", p)
		}
		if out, err := h.wget("http://" + testutil.HostIP + ":8081/index.html"); err != nil || out != "ebpfnet-test" {
			t.Errorf("outside -> 8081: %q %v", out, err)
		}
		if out, err := h.wget("http://" + testutil.HostIP + ":8082/index.html"); err == nil {
			t.Errorf("outside -> %s:8082 (published on [::] alone) answered: %q", testutil.HostIP, out)
		}
		// Over IPv6 too, DNATed in eBPF: the containers are dual stack.
		dualStackUplink(h.Topology)
		for _, port := range []string{"8080", "8081", "8082"} {
			if out, err := h.wget("http://[" + hostIP6 + "]:" + port + "/index.html"); err != nil || out != "ebpfnet-test" {
				t.Errorf("outside -> [%s]:%s: %q %v", hostIP6, port, out, err)
			}
		}
		if out, err := h.wget("http://[" + hostIP6 + "]:8083/index.html"); err == nil {
			t.Errorf("outside -> [%s]:8083 (published on [::1]) answered: %q", hostIP6, out)
		}
		// An IPv6 host address the host does not hold: refused, the
		// container not started.
		_, stderr, err := h.dk.Cmd("run", "-d", "--name", "c4", "--network", "n6", "-p", "[2001:db8:99::1]:8084:80", runtimetest.ImageName, "sleep", "600")
		if err == nil || !strings.Contains(stderr, "not an address of this host") {
			t.Errorf("-p [2001:db8:99::1]:8084:80: %v %q, want a refusal", err, stderr)
		}
		h.dk.Cmd("rm", "-f", "c3", "c4")
	})
	h.noNetfilter("8080", "8081")

	h.docker("rm", "-f", "c1", "c2")
	h.docker("network", "rm", "n6")
	h.gone()
}
