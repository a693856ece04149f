package resolver

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fakeWriter records the reply; no socket is needed to test the handler.
type fakeWriter struct {
	dns.ResponseWriter
	remote net.Addr
	msg    *dns.Msg
}

func (w *fakeWriter) RemoteAddr() net.Addr      { return w.remote }
func (w *fakeWriter) WriteMsg(m *dns.Msg) error { w.msg = m; return nil }

func ask(s *Server, name string, qtype uint16) *dns.Msg {
	r := new(dns.Msg)
	r.SetQuestion(dns.Fqdn(name), qtype)
	w := &fakeWriter{remote: &net.UDPAddr{IP: net.IPv4(172, 30, 0, 9), Port: 4000}}
	s.handle("n1", w, r)
	return w.msg
}

func TestHandle(t *testing.T) {
	var got Query
	s := &Server{Lookup: func(q Query) Answer {
		got = q
		switch q.Name {
		case "web":
			return Answer{Known: true, IPs: []netip.Addr{netip.MustParseAddr("172.30.0.2")}}
		case "2.0.30.172.in-addr.arpa":
			return Answer{Known: true, Names: []string{"web.n1"}}
		}
		return Answer{} // no upstream
	}}
	m := ask(s, "WEB", dns.TypeA)
	if got.Network != "n1" || got.Src != netip.MustParseAddr("172.30.0.9") || got.Name != "web" {
		t.Errorf("query: %+v", got)
	}
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != "172.30.0.2" || m.Answer[0].Header().Ttl != TTL {
		t.Errorf("A web: %v", m)
	}
	if m := ask(s, "web", dns.TypeAAAA); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 0 {
		t.Errorf("AAAA web: %v, want an empty NOERROR", m)
	}
	if m := ask(s, "2.0.30.172.in-addr.arpa", dns.TypePTR); len(m.Answer) != 1 || m.Answer[0].(*dns.PTR).Ptr != "web.n1." || got.ReverseIP != netip.MustParseAddr("172.30.0.2") {
		t.Errorf("PTR: %v (%+v)", m, got)
	}
	if m := ask(s, "example.org", dns.TypeA); m.Rcode != dns.RcodeServerFailure {
		t.Errorf("unknown name without upstream: %v, want SERVFAIL", m)
	}
}

// Whom Serves turns away gets REFUSED, whatever it asks, and Lookup is
// never asked.
func TestHandleRefusesWhomItDoesNotServe(t *testing.T) {
	looked := false
	s := &Server{
		Lookup: func(Query) Answer { looked = true; return Answer{Known: true} },
		Serves: func(network string, src netip.Addr) bool {
			return network == "n1" && src == netip.MustParseAddr("172.30.0.2")
		},
	}
	for _, qtype := range []uint16{dns.TypeA, dns.TypePTR, dns.TypeANY} {
		m := ask(s, "web", qtype) // from 172.30.0.9: not served
		if m.Rcode != dns.RcodeRefused || len(m.Answer) != 0 || m.RecursionAvailable {
			t.Errorf("type %d from a stranger: %v, want a bare REFUSED", qtype, m)
		}
	}
	if looked {
		t.Error("Lookup asked for a stranger's query")
	}
}

// silentUpstream is a DNS server on loopback that reads queries and never
// answers, as a resolver behind a firewall that drops.
func silentUpstream(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}

// answeringUpstream answers every A query with 192.0.2.7.
func answeringUpstream(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		rr, _ := dns.NewRR(r.Question[0].Name + " 60 IN A 192.0.2.7")
		m.Answer = append(m.Answer, rr)
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}

// refusingUpstream is a loopback port nobody listens on: the kernel answers
// with ICMP port unreachable.
func refusingUpstream(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddrPort(pc.LocalAddr().String())
	pc.Close()
	return a
}

func forwardingServer(up ...netip.AddrPort) *Server {
	return &Server{Lookup: func(Query) Answer { return Answer{Upstream: up} }}
}

// Forwarding is bounded as a whole: upstreams that never answer give
// SERVFAIL within the budget, not a timeout per upstream.
func TestForwardGivesUpWithinItsBudget(t *testing.T) {
	s := forwardingServer(silentUpstream(t), silentUpstream(t), silentUpstream(t))
	s.Timeout = 600 * time.Millisecond
	start := time.Now()
	m := ask(s, "example.org", dns.TypeA)
	if took := time.Since(start); m.Rcode != dns.RcodeServerFailure || took > 1500*time.Millisecond {
		t.Errorf("three silent upstreams: %v after %v, want SERVFAIL within the 600ms budget", m, took)
	}
}

// A silent upstream delays the next one by its share of the budget only;
// one that refuses hands on at once.
func TestForwardMovesOnFromDeadUpstreams(t *testing.T) {
	s := forwardingServer(silentUpstream(t), answeringUpstream(t))
	s.Timeout = 2 * time.Second
	start := time.Now()
	m := ask(s, "example.org", dns.TypeA)
	if took := time.Since(start); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 || took > 1900*time.Millisecond {
		t.Errorf("silent then answering upstream: %v after %v, want the answer after about 1s", m, took)
	}

	s = forwardingServer(refusingUpstream(t), answeringUpstream(t))
	s.Timeout = 10 * time.Second
	start = time.Now()
	m = ask(s, "example.org", dns.TypeA)
	if took := time.Since(start); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 || took > 2*time.Second {
		t.Errorf("refusing then answering upstream: %v after %v, want the answer at once", m, took)
	}
}
