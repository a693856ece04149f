package netperf

import (
	"testing"
	"time"
)

// The tools against each other on loopback (no root, no namespaces).
func TestToolsOnLoopback(t *testing.T) {
	s, err := Listen("srv", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	go s.Serve()
	addr := s.tcp.Addr().String()
	udpAddr := s.udp.LocalAddr().String()

	if r, err := Check("tcp4", addr, "srv", "127.0.0.1", time.Second); err != nil || r.Server != "srv" {
		t.Fatalf("check tcp: %+v %v", r, err)
	}
	if _, err := Check("tcp4", addr, "other", "", time.Second); err == nil {
		t.Error("check must fail on a wrong name")
	}
	if _, err := Check("tcp4", addr, "srv", "10.0.0.1", time.Second); err == nil {
		t.Error("check must fail on a wrong source")
	}
	if _, err := Check("udp4", udpAddr, "srv", "127.0.0.1", time.Second); err != nil {
		t.Errorf("check udp: %v", err)
	}

	rr, err := RR(addr, 64, 10, 200, 5*time.Second)
	if err != nil || rr.RoundTrips != 200 || rr.P99Us < rr.P50Us || rr.MinUs <= 0 {
		t.Errorf("rr: %+v %v", rr, err)
	}
	cr, err := ConnRate(addr, "srv", 2, 100, 5*time.Second)
	if err != nil || cr.Conns != 100 || cr.Errors != 0 || cr.ConnPerSec <= 0 {
		t.Errorf("connrate: %+v %v", cr, err)
	}
	if _, err := ConnRate(addr, "other", 1, 5, time.Second); err == nil {
		t.Error("connrate must fail on a wrong name")
	}
	// UDP counters are reset through the TCP port of the same server.
	u, err := UDPBlast(udpAddr, addr, 64, 1000, 5*time.Second)
	if err != nil || u.Sent != 1000 || u.Received == 0 || u.Received > u.Sent {
		t.Errorf("udp: %+v %v", u, err)
	}
}

func TestParseReply(t *testing.T) {
	r, err := ParseReply("c1 198.18.0.1:4242\n")
	if err != nil || r.Server != "c1" || r.Source != "198.18.0.1" {
		t.Errorf("%+v %v", r, err)
	}
	for _, bad := range []string{"", "c1", "c1 nonsense"} {
		if _, err := ParseReply(bad); err == nil {
			t.Errorf("ParseReply(%q) should fail", bad)
		}
	}
}

// The same tools over IPv6: the family follows the address.
func TestToolsOnLoopbackIPv6(t *testing.T) {
	s, err := Listen("srv6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer s.Close()
	go s.Serve()
	addr := s.tcp.Addr().String()
	if r, err := Check(Net("tcp", addr), addr, "srv6", "::1", time.Second); err != nil || r.Server != "srv6" {
		t.Fatalf("check tcp6: %+v %v", r, err)
	}
	if rr, err := RR(addr, 64, 10, 100, 5*time.Second); err != nil || rr.RoundTrips != 100 {
		t.Errorf("rr over IPv6: %+v %v", rr, err)
	}
	if cr, err := ConnRate(addr, "srv6", 2, 50, 5*time.Second); err != nil || cr.Conns != 50 || cr.Errors != 0 {
		t.Errorf("connrate over IPv6: %+v %v", cr, err)
	}
}

func TestNet(t *testing.T) {
	for addr, want := range map[string]string{
		":80": "tcp4", "198.18.0.1:80": "tcp4", "[::]:80": "tcp6", "[2001:db8:18::1]:5201": "tcp6", "garbage": "tcp4",
	} {
		if got := Net("tcp", addr); got != want {
			t.Errorf("Net(tcp, %q) = %s, want %s", addr, got, want)
		}
	}
}
