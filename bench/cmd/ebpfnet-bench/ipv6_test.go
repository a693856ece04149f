package main

import (
	"strings"
	"testing"
)

func TestIp6tablesRules(t *testing.T) {
	e := &env{c1IP6: c1IP6}
	r := ip6tablesRules(e.measuredBindings6())
	for _, want := range []string{
		"-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n",
		"-A OUTPUT ! -d ::1/128 -m addrtype --dst-type LOCAL -j DOCKER\n",
		"-A POSTROUTING -s fd00:30::/64 ! -o docker0 -j MASQUERADE\n",
		"-A DOCKER -i docker0 -j RETURN\n",
		"-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00:30::2]:80\n",
		"-A DOCKER ! -i docker0 -p udp -m udp --dport 8080 -j DNAT --to-destination [fd00:30::2]:80\n",
		":FORWARD DROP [0:0]\n",
		"-A FORWARD -j DOCKER-USER\n",
		"-A FORWARD -d fd00:30::/64 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n",
		"-A FORWARD -d fd00:30::/64 -j DOCKER\n",
		"-A FORWARD -i docker0 ! -o docker0 -j ACCEPT\n",
		"-A FORWARD -i docker0 -o docker0 -j ACCEPT\n",
		"-A DOCKER -d fd00:30::2/128 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT\n",
		"-A DOCKER ! -i docker0 -o docker0 -j DROP\n",
		"-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2\n",
		"-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP\n",
	} {
		if !strings.Contains(r, want) {
			t.Errorf("ip6tables rules lack %q", want)
		}
	}
	// No IPv4 address, and no per-port hairpin masquerade (Docker 28,
	// userland proxy on).
	if strings.Contains(r, "172.30.") || strings.Contains(r, "127.0.0.0/8") {
		t.Error("IPv4 address in the ip6tables rules")
	}
	if n := strings.Count(r, "MASQUERADE"); n != 1 {
		t.Errorf("%d MASQUERADE rules, want the subnet's only", n)
	}
	// The per-port ACCEPTs come before the chain's direct-access DROP.
	if strings.Index(r, "--dport 5201 -j ACCEPT") > strings.Index(r, "-o docker0 -j DROP\n-A DOCKER-ISOLATION") {
		t.Error("per-port ACCEPT after the DOCKER chain's DROP")
	}
	if strings.Count(r, "COMMIT\n") != 2 || !strings.HasPrefix(r, "*nat\n") || !strings.Contains(r, "*filter\n") {
		t.Errorf("not an ip6tables-restore input:\n%s", r)
	}
}

func TestAttachedIPs(t *testing.T) {
	ip, ip6, err := attachedIPs("bnx-c1 bench6 172.30.0.2 fd00:30::2\n")
	if err != nil || ip != "172.30.0.2" || ip6 != "fd00:30::2" {
		t.Errorf("attachedIPs = %q %q %v", ip, ip6, err)
	}
	for _, bad := range []string{"c1 bench 172.30.0.2", "c1 bench 172.30.0.2 172.30.0.3", ""} {
		if _, _, err := attachedIPs(bad); err == nil {
			t.Errorf("attachedIPs(%q) should fail", bad)
		}
	}
}

func TestIPv6Paths(t *testing.T) {
	cfg := &config{}
	for _, mode := range []string{"host", "iptables", "ebpfnet"} {
		e := newEnv(mode, "bn0000x", cfg, nil, nil)
		e.c1IP6, e.c2IP6 = c1IP6, c2IP6
		s, c := e.snat6(), e.c2c6()
		if s.addr != "[2001:db8:18::1]:80" || s.wantSrc != hostIP6 || s.wantName != extName {
			t.Errorf("%s snat6 = %+v", mode, s)
		}
		wantClient, wantC2C, wantSrc := e.c1, "[fd00:30::2]:80", c2IP6
		if mode == "host" {
			wantClient, wantC2C, wantSrc = e.host, "[2001:db8:18::2]:80", extIP6
		}
		if s.clientNS != wantClient || c.addr != wantC2C || c.wantSrc != wantSrc {
			t.Errorf("%s: snat6 from %s, c2c6 %+v", mode, s.clientNS, c)
		}
	}
}

func TestIPv6Ratios(t *testing.T) {
	last := map[string]metrics{
		"snat6_tcp/ebpfnet": {"gbps": 6}, "snat6_tcp/iptables": {"gbps": 4},
		"c2c6_rr/ebpfnet": {"avg_us": 80}, "c2c6_rr/iptables": {"avg_us": 100},
		"dnat6_tcp/ebpfnet": {"gbps": 9}, "dnat6_tcp/iptables": {"gbps": 6},
		"dnat6_connrate/ebpfnet": {"conn_per_sec": 3000}, "dnat6_connrate/iptables": {"conn_per_sec": 2000},
	}
	r, _, err := ipv6Ratios(last)
	if err != nil || r["snat_tcp_ratio"] != 1.5 || r["c2c_rr_ratio"] != 0.8 ||
		r["dnat_tcp_ratio"] != 1.5 || r["dnat_conn_ratio"] != 1.5 {
		t.Errorf("ratios %v %v", r, err)
	}
	if _, ok := r["c2c_tcp_ratio"]; ok {
		t.Error("a ratio without both measurements")
	}
	if _, _, err := ipv6Ratios(map[string]metrics{}); err == nil {
		t.Error("no measurements must fail")
	}
}

func TestDNAT6Path(t *testing.T) {
	cfg := &config{}
	for _, mode := range []string{"host", "iptables", "ebpfnet"} {
		e := newEnv(mode, "bn0000x", cfg, nil, nil)
		e.c1IP6 = c1IP6
		p := e.dnat6()
		want := "[2001:db8:18::2]:8080"
		if mode == "host" {
			want = "[2001:db8:18::2]:80"
		}
		if p.clientNS != e.ext || p.addr != want || p.iperfIP != hostIP6 || p.wantSrc != extIP6 ||
			p.wantName != e.srvName || p.needsPub != (mode != "host") {
			t.Errorf("%s dnat6 = %+v", mode, p)
		}
	}
}

func TestPublishArgs(t *testing.T) {
	got := strings.Join(publishArgs(), " ")
	if got != "-p 8080:80 -p 8080:80/udp -p 5201:5201" {
		t.Errorf("publishArgs = %q", got)
	}
}
