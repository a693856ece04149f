// Package resolver is ebpfnet's DNS: the embedded server, as Docker's (it
// listens, UDP and TCP, port 53, on addresses the caller names, one per
// network, answers names the caller knows for that network and forwards
// the rest to upstream servers); the name index it answers from (Index:
// names, aliases, remote names, who may ask) and the loop that follows a
// Source (Follow); and the files a container's namespace gets (resolv.conf,
// hosts: EtcFiles, ReadResolvConf). It imports nothing of the project:
// datapath adapts its store to Source and writes the files.
package resolver

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// TTL of the answers for names the resolver knows (Docker's 600s).
const TTL = 600

// Answer is what Lookup says about a query from Src on network Network.
type Answer struct {
	// Known: the name is the network's; IPs may still be empty (an IPv6
	// query for an IPv4-only container gets an empty NOERROR).
	Known bool
	IPs   []netip.Addr
	// Names answers a reverse (PTR) lookup.
	Names []string
	// Upstream are the servers to forward to when the name is not known;
	// empty: answer SERVFAIL (e.g. an --internal network).
	Upstream []netip.AddrPort
}

// Query is one question the resolver asks Lookup.
type Query struct {
	Network string
	Src     netip.Addr
	Name    string // lower case, without the trailing dot
	Type    uint16 // dns.TypeA, dns.TypeAAAA, dns.TypePTR, ...
	// ReverseIP is the address a PTR query asks about (in-addr.arpa).
	ReverseIP netip.Addr
}

// Server serves the networks Sync names.
type Server struct {
	Lookup func(Query) Answer
	// Serves reports whether the resolver of network answers a query from
	// src; nil serves everyone. Whoever it turns away gets REFUSED, for
	// every query (UDP and TCP alike), before anything is looked up.
	Serves func(network string, src netip.Addr) bool
	Log    *slog.Logger
	// Port to listen on; 0 is 53.
	Port int
	// Timeout bounds forwarding one query, across every upstream: when
	// none has answered by then, the client gets SERVFAIL. 0 is
	// DefaultForwardTimeout.
	Timeout time.Duration

	mu        sync.Mutex
	listeners map[netip.Addr]*listener
	failed    map[netip.Addr]string // address -> last listen error (logged once)
}

type listener struct {
	network string // whose names it answers
	udp     *dns.Server
	tcp     *dns.Server
}

// Sync makes the server listen on exactly the given addresses, each for
// its network (a dual-stack network has two): new ones are started, gone
// ones or ones now serving another network stopped. An address that cannot
// be bound (not yet on an interface, port taken) is retried on the next
// Sync; the error is logged once.
func (s *Server) Sync(want map[netip.Addr]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listeners == nil {
		s.listeners = map[netip.Addr]*listener{}
		s.failed = map[netip.Addr]string{}
	}
	for addr, l := range s.listeners {
		if name, ok := want[addr]; !ok || name != l.network {
			l.stop()
			delete(s.listeners, addr)
			s.log().Info("dns: stopped", "network", l.network, "addr", addr)
		}
	}
	for addr, name := range want {
		if _, ok := s.listeners[addr]; ok {
			continue
		}
		l, err := s.listen(name, addr)
		if err != nil {
			if s.failed[addr] != err.Error() {
				s.failed[addr] = err.Error()
				s.log().Warn("dns: cannot listen", "network", name, "addr", addr, "err", err)
			}
			continue
		}
		delete(s.failed, addr)
		s.listeners[addr] = l
		s.log().Info("dns: serving", "network", name, "addr", netip.AddrPortFrom(addr, uint16(s.port())))
	}
	for addr := range s.failed {
		if _, ok := want[addr]; !ok {
			delete(s.failed, addr)
		}
	}
}

// Addrs returns what the server listens on: address -> network.
func (s *Server) Addrs() map[netip.Addr]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[netip.Addr]string{}
	for a, l := range s.listeners {
		out[a] = l.network
	}
	return out
}

// Close stops every listener.
func (s *Server) Close() { s.Sync(nil) }

func (s *Server) port() int {
	if s.Port == 0 {
		return 53
	}
	return s.Port
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

func (s *Server) listen(network string, addr netip.Addr) (*listener, error) {
	ap := netip.AddrPortFrom(addr, uint16(s.port())).String()
	pc, err := net.ListenPacket("udp", ap)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", ap)
	if err != nil {
		pc.Close()
		return nil, err
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) { s.handle(network, w, r) })
	l := &listener{
		network: network,
		udp:     &dns.Server{PacketConn: pc, Handler: h},
		tcp:     &dns.Server{Listener: ln, Handler: h, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second},
	}
	go l.udp.ActivateAndServe()
	go l.tcp.ActivateAndServe()
	return l, nil
}

func (l *listener) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	l.udp.ShutdownContext(ctx)
	l.tcp.ShutdownContext(ctx)
}

func (s *Server) handle(network string, w dns.ResponseWriter, r *dns.Msg) {
	src, _ := netip.AddrFromSlice(remoteIP(w.RemoteAddr()))
	src = src.Unmap()
	if s.Serves != nil && !s.Serves(network, src) {
		// REFUSED rather than silence: a client that should not be asking
		// (a container of another network) learns so at once instead of
		// timing out, and the reply, the header and at most the question
		// echoed, is never larger than the query: no amplifier for a
		// spoofed source.
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeRefused)
		w.WriteMsg(m)
		return
	}
	if len(r.Question) != 1 || r.Opcode != dns.OpcodeQuery {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeNotImplemented)
		w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	query := Query{
		Network: network, Src: src, Type: q.Qtype,
		Name: strings.TrimSuffix(strings.ToLower(q.Name), "."),
	}
	if q.Qtype == dns.TypePTR {
		query.ReverseIP = reverseIP(query.Name)
	}
	a := s.Lookup(query)
	if a.Known {
		w.WriteMsg(answer(r, q, a))
		return
	}
	tcp := false
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		tcp = true
	}
	resp, err := s.forward(r, a.Upstream, tcp)
	if err != nil {
		s.log().Debug("dns: forward", "network", network, "name", q.Name, "err", err)
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeServerFailure)
		m.RecursionAvailable = true
		w.WriteMsg(m)
		return
	}
	if !tcp {
		// Fit the client's UDP size; it retries over TCP when truncated.
		size := dns.MinMsgSize
		if o := r.IsEdns0(); o != nil {
			size = int(o.UDPSize())
		}
		resp.Truncate(size)
	}
	w.WriteMsg(resp)
}

func answer(r *dns.Msg, q dns.Question, a Answer) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	m.RecursionAvailable = true
	hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: TTL}
	switch q.Qtype {
	case dns.TypeA, dns.TypeAAAA, dns.TypeANY:
		for _, ip := range a.IPs {
			if ip.Is4() && q.Qtype != dns.TypeAAAA {
				h := hdr
				h.Rrtype = dns.TypeA
				m.Answer = append(m.Answer, &dns.A{Hdr: h, A: ip.AsSlice()})
			} else if ip.Is6() && q.Qtype != dns.TypeA {
				h := hdr
				h.Rrtype = dns.TypeAAAA
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: h, AAAA: ip.AsSlice()})
			}
		}
	case dns.TypePTR:
		for _, n := range a.Names {
			h := hdr
			h.Rrtype = dns.TypePTR
			m.Answer = append(m.Answer, &dns.PTR{Hdr: h, Ptr: dns.Fqdn(n)})
		}
	}
	return m
}

// DefaultForwardTimeout bounds forwarding one query when Server.Timeout is
// 0. A container's resolver waits 5s for an answer before it retries (glibc;
// musl retransmits after 2.5s): SERVFAIL within 2s reaches it before either,
// so a name nobody can answer fails fast instead of hanging the client for
// every retry. A live upstream answers far sooner, even uncached, and a
// client that retries later finds the name in the upstream's cache.
const DefaultForwardTimeout = 2 * time.Second

type forwarded struct {
	resp *dns.Msg
	err  error
}

// forward asks the upstream servers in turn, sharing one time budget: each
// gets an equal share of it before the next is asked as well, the earlier
// ones still listening, and one that fails at once (ICMP unreachable,
// connection refused) hands on at once. The first reply wins; when the
// budget is spent without one, the error says why.
func (s *Server) forward(r *dns.Msg, upstream []netip.AddrPort, tcp bool) (*dns.Msg, error) {
	if len(upstream) == 0 {
		return nil, errors.New("no upstream servers")
	}
	budget := s.Timeout
	if budget == 0 {
		budget = DefaultForwardTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	replies := make(chan forwarded, len(upstream)) // no sender ever blocks
	asked, pending := 0, 0
	askNext := func() {
		u, q := upstream[asked], r.Copy() // a message per exchange: packing is not concurrency-safe
		asked, pending = asked+1, pending+1
		go func() {
			resp, err := exchange(ctx, q, u, tcp)
			replies <- forwarded{resp, err}
		}()
	}
	turn := budget / time.Duration(len(upstream))
	next := time.NewTimer(turn)
	defer next.Stop()
	askNext()
	var errs []error
	for pending > 0 {
		select {
		case f := <-replies:
			pending--
			if f.err == nil {
				f.resp.Id = r.Id
				return f.resp, nil
			}
			errs = append(errs, f.err)
			if asked < len(upstream) {
				askNext()
				next.Reset(turn)
			}
		case <-next.C:
			if asked < len(upstream) {
				askNext()
				next.Reset(turn)
			}
		}
	}
	return nil, errors.Join(errs...)
}

// exchange asks one upstream before ctx's deadline, over TCP when the
// client asked over TCP or the UDP reply was truncated.
func exchange(ctx context.Context, r *dns.Msg, u netip.AddrPort, tcp bool) (*dns.Msg, error) {
	c := &dns.Client{Net: "udp"}
	if tcp {
		c.Net = "tcp"
	}
	resp, _, err := c.ExchangeContext(ctx, r, u.String())
	if err == nil && resp.Truncated && !tcp {
		c.Net = "tcp"
		resp, _, err = c.ExchangeContext(ctx, r, u.String())
	}
	return resp, err
}

func remoteIP(a net.Addr) net.IP {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.IP
	case *net.TCPAddr:
		return a.IP
	}
	return nil
}

// reverseIP reads d.c.b.a.in-addr.arpa.
func reverseIP(name string) netip.Addr {
	if rest, ok := strings.CutSuffix(name, ".ip6.arpa"); ok {
		return reverseIP6(rest)
	}
	rest, ok := strings.CutSuffix(name, ".in-addr.arpa")
	if !ok {
		return netip.Addr{}
	}
	p := strings.Split(rest, ".")
	if len(p) != 4 {
		return netip.Addr{}
	}
	ip, err := netip.ParseAddr(p[3] + "." + p[2] + "." + p[1] + "." + p[0])
	if err != nil {
		return netip.Addr{}
	}
	return ip
}

// reverseIP6 reads the 32 nibbles of an ip6.arpa name, least significant
// first (RFC 3596).
func reverseIP6(nibbles string) netip.Addr {
	p := strings.Split(nibbles, ".")
	if len(p) != 32 {
		return netip.Addr{}
	}
	var b [16]byte
	for i, n := range p {
		v, err := strconv.ParseUint(n, 16, 4)
		if err != nil || len(n) != 1 {
			return netip.Addr{}
		}
		j := 31 - i // nibble index from the most significant
		b[j/2] |= byte(v) << (4 * (1 - j%2))
	}
	return netip.AddrFrom16(b)
}
