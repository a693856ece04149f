package main

import (
	"strings"
	"testing"
)

func TestIptablesRules(t *testing.T) {
	bs := append(dummyBindings(2), binding{"tcp", 8080, "172.30.0.2", 80})
	r := iptablesRules(bs)
	for _, want := range []string{
		"-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n",
		"-A POSTROUTING -s 172.30.0.0/16 ! -o docker0 -j MASQUERADE\n",
		"-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.30.0.2:80\n",
		"-A DOCKER -d 172.30.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT\n",
		"-A POSTROUTING -s 172.30.0.2/32 -d 172.30.0.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE\n",
		"-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n",
		"-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP\n",
		":FORWARD DROP [0:0]\n",
	} {
		if !strings.Contains(r, want) {
			t.Errorf("rules lack %q", want)
		}
	}
	// The other ports' rules come before the measured port's.
	if strings.Index(r, "--dport 10001 -j DNAT") > strings.Index(r, "--dport 8080 -j DNAT") {
		t.Error("measured DNAT rule should come last")
	}
	if n := strings.Count(r, "-j DNAT"); n != 3 {
		t.Errorf("%d DNAT rules, want 3", n)
	}
}

func TestNftRules(t *testing.T) {
	r := nftRules(append(dummyBindings(1001), binding{"udp", 8080, "172.30.0.2", 80}))
	for _, want := range []string{
		"delete table ip docker-bridges\n",
		"udp dport 8080 counter dnat to 172.30.0.2:80",
		"ip daddr 172.30.0.2 udp dport 80 counter accept",
		`counter drop comment "UNPUBLISHED PORT DROP"`,
		`oifname != "docker0" ip saddr 172.30.0.0/16 counter masquerade`,
	} {
		if !strings.Contains(r, want) {
			t.Errorf("nft rules lack %q", want)
		}
	}
	// One DROP DIRECT ACCESS per container: 2 dummy containers + c1.
	if n := strings.Count(r, "DROP DIRECT ACCESS"); n != 3 {
		t.Errorf("%d direct-access drops, want 3", n)
	}
	p := nftPublish(binding{"tcp", 9000, "172.30.9.2", 80}, "42")
	if !strings.Contains(p, "filter-forward-in__docker0 position 42 ip daddr 172.30.9.2 tcp dport 80 counter accept") {
		t.Errorf("publish: %s", p)
	}
	if m := dropHandleRe.FindStringSubmatch(`counter packets 0 bytes 0 drop comment "UNPUBLISHED PORT DROP" # handle 17`); m == nil || m[1] != "17" {
		t.Errorf("drop handle: %v", m)
	}
}

func TestShort(t *testing.T) {
	got := short([]string{"ip", "netns", "exec", "p-host", "/work/bin/ebpfnet", "--state-dir", "/tmp/x", "--pin-root", "/sys/fs/bpf/y", "attach", "c1"})
	if got != "[p-host] ebpfnet attach c1" {
		t.Errorf("short = %q", got)
	}
}
