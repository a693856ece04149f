package testutil

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
)

// Server is a named TCP and UDP server in a namespace. Each reply is
// "<name> <client address as seen>", so a test asserts which server answered
// and which source address it saw (to check DNAT and SNAT).
type Server struct {
	Name string
	tcp  net.Listener
	udp  net.PacketConn
}

// Serve starts a named server on addr (e.g. ":80") for tcp and udp inside
// the namespace, over IPv4. It stops in t.Cleanup.
func Serve(t testing.TB, ns netnsutil.Namespace, name, addr string) *Server {
	t.Helper()
	return serve(t, ns, name, addr, "4")
}

// Serve6 is Serve over IPv6.
func Serve6(t testing.TB, ns netnsutil.Namespace, name, addr string) *Server {
	t.Helper()
	return serve(t, ns, name, addr, "6")
}

func serve(t testing.TB, ns netnsutil.Namespace, name, addr, family string) *Server {
	t.Helper()
	s := &Server{Name: name}
	err := netnsutil.Do(ns, func() (err error) {
		if s.tcp, err = net.Listen("tcp"+family, addr); err != nil {
			return err
		}
		s.udp, err = net.ListenPacket("udp"+family, addr)
		return err
	})
	if err != nil {
		t.Fatalf("serve %s in %s: %v", addr, ns.Path, err)
	}
	t.Cleanup(func() { s.tcp.Close(); s.udp.Close() })
	go s.serveTCP()
	go s.serveUDP()
	return s
}

func (s *Server) serveTCP() {
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			r := bufio.NewReader(c)
			// One request line, then either a greeting or a byte sink.
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if strings.HasPrefix(line, "sink") {
				n, _ := io.Copy(io.Discard, r)
				fmt.Fprintf(c, "%d\n", n)
				return
			}
			fmt.Fprintf(c, "%s %s\n", s.Name, c.RemoteAddr())
		}()
	}
}

func (s *Server) serveUDP() {
	buf := make([]byte, 65536)
	for {
		n, from, err := s.udp.ReadFrom(buf)
		if err != nil {
			return
		}
		reply := []byte(fmt.Sprintf("%s %s\n", s.Name, from))
		// A large request (AskLarge) gets an answer as large: datagrams
		// beyond the MTU, fragmented both ways.
		if bytes.HasPrefix(buf[:n], []byte(largeRequest)) && n > len(reply) {
			reply = append(reply, bytes.Repeat([]byte{'.'}, n-len(reply))...)
		}
		s.udp.WriteTo(reply, from)
	}
}

// largeRequest starts a UDP request that wants an answer of its own size.
const largeRequest = "large\n"

// AskLarge sends one UDP datagram of size bytes to a named server from ns
// and checks that the answer is as large: beyond the path's MTU, both are
// fragmented. It returns the answer's first line, as Ask.
func AskLarge(ns netnsutil.Namespace, addr string, size int) (string, error) {
	c, err := Dial(ns, "udp4", addr, 3*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	req := append([]byte(largeRequest), bytes.Repeat([]byte{'.'}, max(size-len(largeRequest), 0))...)
	if _, err := c.Write(req); err != nil {
		return "", err
	}
	buf := make([]byte, 65536)
	n, err := c.Read(buf)
	if err != nil {
		return "", err
	}
	line, _, _ := bytes.Cut(buf[:n], []byte("\n"))
	if n != len(req) {
		return string(line), fmt.Errorf("answer of %d bytes to a request of %d", n, len(req))
	}
	return string(line), nil
}

// Dial makes a socket in ns and connects it to addr over network ("tcp4"
// or "udp4"). The socket stays in ns for its whole life.
func Dial(ns netnsutil.Namespace, network, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := netnsutil.Do(ns, func() (err error) {
		c, err = net.DialTimeout(network, addr, timeout)
		return err
	})
	return c, err
}

// DialFrom is Dial from a given local address.
func DialFrom(ns netnsutil.Namespace, network, local, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := netnsutil.Do(ns, func() error {
		d := net.Dialer{Timeout: timeout}
		var err error
		switch network {
		case "udp4":
			d.LocalAddr, err = net.ResolveUDPAddr(network, local)
		default:
			d.LocalAddr, err = net.ResolveTCPAddr(network, local)
		}
		if err != nil {
			return err
		}
		c, err = d.Dial(network, addr)
		return err
	})
	return c, err
}

// AskOn sends one request on an open connection and returns the reply line.
func AskOn(c net.Conn) (string, error) {
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte("hello\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// Ask sends one request to a named server from ns and returns its reply
// line: "<server name> <source address it saw>".
func Ask(ns netnsutil.Namespace, network, addr string) (string, error) {
	c, err := Dial(ns, network, addr, 3*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return AskOn(c)
}

// Reply is a parsed server reply.
type Reply struct {
	Server string
	Source string // the client's IP as the server saw it
}

// MustAsk is Ask that fails the test, parsing the reply.
func MustAsk(t testing.TB, ns netnsutil.Namespace, network, addr string) Reply {
	t.Helper()
	line, err := Ask(ns, network, addr)
	if err != nil {
		t.Fatalf("%s %s from %s: %v", network, addr, ns.Path, err)
	}
	name, src, ok := strings.Cut(line, " ")
	if !ok {
		t.Fatalf("malformed reply %q", line)
	}
	host, _, err := net.SplitHostPort(src)
	if err != nil {
		t.Fatalf("malformed source %q", src)
	}
	return Reply{Server: name, Source: host}
}

// TimesOut reports whether a TCP connection from ns to addr times out, as
// it does when the datapath drops the SYN (a reject would be refused).
func TimesOut(ns netnsutil.Namespace, addr string, timeout time.Duration) bool {
	c, err := Dial(ns, "tcp", addr, timeout) // addr's family
	if err == nil {
		c.Close()
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
