package integration

import (
	"net"
	"strings"
	"testing"

	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

// TestCNIOverlayIPv6: a dual-stack overlay network through the CNI plugin
// ("driver": "overlay", "ipv6": true): pods of two hosts get an IPv4 and
// its IPv6 twin from the cluster, both in the result with both default
// routes, and reach each other over IPv6 across the hosts; a config that
// disagrees with the cluster's network on IPv6 is refused.
func TestCNIOverlayIPv6(t *testing.T) {
	t.Parallel()
	c, ovs := newOverlayHosts(t, 2)
	var hs []*cniOverlayHost
	for _, h := range ovs {
		h.startDaemon()
		hs = append(hs, newCNIOverlayHost(t, h))
	}
	dual := map[string]any{"ipv6": true, "subnet6": "fd00:250::/112"}
	nsA, a := container(t, c, "a")
	nsB, b := container(t, c, "b")
	rtA, rtB := hs[0].rt("ctr-a", nsA, "web"), hs[1].rt("ctr-b", nsB, "client")
	resA, err := hs[0].add(hs[0].list(dual), rtA)
	if err != nil {
		t.Fatalf("ADD on host 1: %v", err)
	}
	resB, err := hs[1].add(hs[1].list(dual), rtB)
	if err != nil {
		t.Fatalf("ADD on host 2: %v", err)
	}
	for _, r := range []struct {
		name string
		ips  []string
	}{{"a", resultIPs(resA)}, {"b", resultIPs(resB)}} {
		if len(r.ips) != 2 || !strings.HasPrefix(r.ips[0], "10.250.") || !strings.HasPrefix(r.ips[1], "fd00:250::") {
			t.Fatalf("pod %s's addresses %v, want one of 10.250.0.0/16 and its twin in fd00:250::/112", r.name, r.ips)
		}
	}
	if !hasDefault6(resA, "fd00:250::1") {
		t.Errorf("result routes %v: no ::/0 via fd00:250::1", resA.Routes)
	}
	ip6A, ip6B := resA.IPs[1].Address.IP.String(), resB.IPs[1].Address.IP.String()
	testutil.Serve6(t, a, "a", ":7000")
	for _, network := range []string{"tcp6", "udp6"} {
		if r := askEventually(t, b, network, net.JoinHostPort(ip6A, "7000")); r.Server != "a" || r.Source != ip6B {
			t.Errorf("%s b -> a across hosts: reply %+v, want a seeing %s", network, r, ip6B)
		}
	}
	// The cluster's network is dual stack: an IPv4-only config is refused.
	nsC, _ := container(t, c, "c")
	if _, err := hs[1].add(hs[1].list(nil), hs[1].rt("ctr-c", nsC, "c")); err == nil || !strings.Contains(err.Error(), "exists with IPv6 true") {
		t.Errorf("ADD with an IPv4-only config: %v", err)
	}
	if err := hs[0].del(hs[0].list(dual), rtA); err != nil {
		t.Errorf("DEL on host 1: %v", err)
	}
	if err := hs[1].del(hs[1].list(dual), rtB); err != nil {
		t.Errorf("DEL on host 2: %v", err)
	}
}
