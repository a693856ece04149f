package resolver

import (
	"net"
	"net/netip"
	"testing"

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
