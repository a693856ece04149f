// Package netperf holds the benchmark's own traffic tools: a named TCP/UDP
// server and clients for request/response latency, new-connection rate,
// UDP packet rate and connectivity checks. They run as subcommands of
// ebpfnet-bench inside network namespaces (ip netns exec ... taskset ...),
// each printing one JSON object on stdout.
package netperf

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Server answers on one TCP and one UDP port.
//
// TCP, first line selects the exchange:
//
//	hello\n        -> "<name> <client ip:port>\n", then the server closes
//	                  (server closes first, like HTTP with Connection: close)
//	rr SIZE\n      -> echo loop: read SIZE bytes, write them back, until EOF
//	udpstats\n     -> JSON UDPStats of the blast packets since the last call
//
// UDP: a datagram starting with "hello" gets "<name> <client ip:port>\n";
// any other datagram is a blast packet, counted and not answered.
type Server struct {
	Name string
	tcp  net.Listener
	udp  net.PacketConn

	mu    sync.Mutex
	stats UDPStats
}

// UDPStats counts blast datagrams received.
type UDPStats struct {
	Packets int64 `json:"packets"`
	FirstNs int64 `json:"first_ns"` // unix ns of the first packet
	LastNs  int64 `json:"last_ns"`  // unix ns of the last packet
}

// Listen opens the server's sockets on addr: ":80" listens on IPv4, "[::]:80"
// on IPv6 only (the family follows the address, see Net).
func Listen(name, addr string) (*Server, error) {
	s := &Server{Name: name}
	var err error
	if s.tcp, err = net.Listen(Net("tcp", addr), addr); err != nil {
		return nil, err
	}
	if s.udp, err = net.ListenPacket(Net("udp", addr), addr); err != nil {
		s.tcp.Close()
		return nil, err
	}
	if u, ok := s.udp.(*net.UDPConn); ok {
		u.SetReadBuffer(4 << 20) // capped by net.core.rmem_max; best effort
	}
	return s, nil
}

// Serve runs until the sockets are closed.
func (s *Server) Serve() {
	go s.serveUDP()
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			return
		}
		go s.handle(c)
	}
}

// Close stops the server.
func (s *Server) Close() { s.tcp.Close(); s.udp.Close() }

// ServeUntilSignal serves name on addr until SIGTERM or SIGINT, and a day at
// most: the server process a benchmark starts in a namespace and stops by
// PID.
func ServeUntilSignal(name, addr string) error {
	s, err := Listen(name, addr)
	if err != nil {
		return err
	}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		select {
		case <-sig:
		case <-time.After(24 * time.Hour):
		}
		s.Close()
	}()
	s.Serve()
	return nil
}

func (s *Server) handle(c net.Conn) {
	defer c.Close()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return
	}
	line = strings.TrimSpace(line)
	switch {
	case line == "hello":
		fmt.Fprintf(c, "%s %s\n", s.Name, c.RemoteAddr())
	case strings.HasPrefix(line, "rr "):
		size, err := strconv.Atoi(strings.TrimPrefix(line, "rr "))
		if err != nil || size <= 0 || size > 1<<20 {
			return
		}
		c.SetReadDeadline(time.Time{})
		c.SetDeadline(time.Now().Add(10 * time.Minute)) // bounded
		buf := make([]byte, size)
		for {
			if _, err := io.ReadFull(r, buf); err != nil {
				return
			}
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	case line == "udpstats":
		s.mu.Lock()
		st := s.stats
		s.stats = UDPStats{}
		s.mu.Unlock()
		json.NewEncoder(c).Encode(st)
	}
}

func (s *Server) serveUDP() {
	buf := make([]byte, 65536)
	for {
		n, from, err := s.udp.ReadFrom(buf)
		if err != nil {
			return
		}
		if n >= 5 && string(buf[:5]) == "hello" {
			s.udp.WriteTo([]byte(fmt.Sprintf("%s %s\n", s.Name, from)), from)
			continue
		}
		now := time.Now().UnixNano()
		s.mu.Lock()
		if s.stats.Packets == 0 {
			s.stats.FirstNs = now
		}
		s.stats.Packets++
		s.stats.LastNs = now
		s.mu.Unlock()
	}
}
