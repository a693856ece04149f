package netperf

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ebpfnet/ebpfnet/bench/internal/stats"
)

// Reply is a parsed "hello" answer.
type Reply struct {
	Server string `json:"server"`
	Source string `json:"source"` // the client's IP as the server saw it
}

// Ask sends "hello" over network ("tcp4", "udp4", "tcp6" or "udp6") and
// parses the answer.
func Ask(network, addr string, timeout time.Duration) (Reply, error) {
	c, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return Reply{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("hello\n")); err != nil {
		return Reply{}, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return Reply{}, err
	}
	return ParseReply(line)
}

// Net is proto ("tcp" or "udp") with the family of addr: "6" when its host
// is an IPv6 literal ("[fd00::2]:80", "[::]:80"), else "4" (":80" included,
// so a server started without an address listens on IPv4 only, as before).
func Net(proto, addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil && strings.Contains(host, ":") {
		return proto + "6"
	}
	return proto + "4"
}

// ParseReply parses "<name> <ip:port>".
func ParseReply(line string) (Reply, error) {
	name, src, ok := strings.Cut(strings.TrimSpace(line), " ")
	if !ok {
		return Reply{}, fmt.Errorf("malformed reply %q", line)
	}
	host, _, err := net.SplitHostPort(src)
	if err != nil {
		return Reply{}, fmt.Errorf("malformed source in reply %q", line)
	}
	return Reply{Server: name, Source: host}, nil
}

// Check asks and verifies the server name (and the source address the server
// saw, when wantSrc is not empty).
func Check(network, addr, wantName, wantSrc string, timeout time.Duration) (Reply, error) {
	var r Reply
	var err error
	for try := 0; try < 3; try++ { // UDP may lose the first datagram to ARP
		if r, err = Ask(network, addr, timeout); err == nil {
			break
		}
	}
	if err != nil {
		return r, fmt.Errorf("no answer from %s %s: %w", network, addr, err)
	}
	if r.Server != wantName {
		return r, fmt.Errorf("%s %s answered by %q, want %q", network, addr, r.Server, wantName)
	}
	if wantSrc != "" && r.Source != wantSrc {
		return r, fmt.Errorf("%s %s: server saw source %s, want %s", network, addr, r.Source, wantSrc)
	}
	return r, nil
}

// RRResult is a request/response run on one TCP connection.
type RRResult struct {
	RoundTrips int     `json:"round_trips"` // measured (after warm-up)
	Warmup     int     `json:"warmup"`
	AvgUs      float64 `json:"avg_us"`
	P50Us      float64 `json:"p50_us"`
	P99Us      float64 `json:"p99_us"`
	MinUs      float64 `json:"min_us"`
	MaxUs      float64 `json:"max_us"`
	Seconds    float64 `json:"seconds"`
}

// RR does warmup+n round trips of size bytes on one connection, timing each,
// stopping early at maxTime.
func RR(addr string, size, warmup, n int, maxTime time.Duration) (RRResult, error) {
	c, err := net.DialTimeout(Net("tcp", addr), addr, 3*time.Second)
	if err != nil {
		return RRResult{}, err
	}
	defer c.Close()
	c.(*net.TCPConn).SetNoDelay(true)
	start := time.Now()
	c.SetDeadline(start.Add(maxTime + 5*time.Second))
	if _, err := fmt.Fprintf(c, "rr %d\n", size); err != nil {
		return RRResult{}, err
	}
	out, in := make([]byte, size), make([]byte, size)
	for i := range out {
		out[i] = byte(i)
	}
	rtts := make([]float64, 0, n)
	for i := 0; i < warmup+n; i++ {
		t0 := time.Now()
		if _, err := c.Write(out); err != nil {
			return RRResult{}, err
		}
		if _, err := io.ReadFull(c, in); err != nil {
			return RRResult{}, err
		}
		d := time.Since(t0)
		if i >= warmup {
			rtts = append(rtts, float64(d.Nanoseconds())/1e3)
		}
		if time.Since(start) > maxTime {
			break
		}
	}
	if len(rtts) == 0 {
		return RRResult{}, errors.New("no round trips measured within the time bound")
	}
	s := stats.Describe(rtts)
	return RRResult{
		RoundTrips: len(rtts), Warmup: warmup,
		AvgUs: s.Mean, P50Us: s.P50, P99Us: s.P99, MinUs: s.Min, MaxUs: s.Max,
		Seconds: time.Since(start).Seconds(),
	}, nil
}

// ConnResult is a new-connection-per-request run.
type ConnResult struct {
	Conns      int64   `json:"conns"`  // completed request/responses
	Errors     int64   `json:"errors"` // failed attempts
	Seconds    float64 `json:"seconds"`
	ConnPerSec float64 `json:"conn_per_sec"`
	AvgUs      float64 `json:"avg_us"` // connect + request + response + close
	P99Us      float64 `json:"p99_us"`
	FirstError string  `json:"first_error,omitempty"`
}

// ConnRate opens a new TCP connection per request ("hello", check the
// server's name, read until the server closes) from conc workers, stopping
// at maxConns or after dur, whichever comes first.
func ConnRate(addr, wantName string, conc int, maxConns int64, dur time.Duration) (ConnResult, error) {
	var done, errs, started atomic.Int64
	var firstErr atomic.Value
	lat := make([][]float64, conc)
	deadline := time.Now().Add(dur)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			buf := make([]byte, 256)
			for time.Now().Before(deadline) {
				if started.Add(1) > maxConns { // reserve a slot: never more than maxConns
					return
				}
				t0 := time.Now()
				err := oneConn(addr, wantName, buf)
				if err != nil {
					if errs.Add(1) == 1 {
						firstErr.Store(err.Error())
					}
					if errs.Load() > 100 && errs.Load() > done.Load() {
						return // the path is broken; stop hammering
					}
					continue
				}
				done.Add(1)
				lat[w] = append(lat[w], float64(time.Since(t0).Nanoseconds())/1e3)
			}
		}(w)
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	var all []float64
	for _, l := range lat {
		all = append(all, l...)
	}
	r := ConnResult{Conns: done.Load(), Errors: errs.Load(), Seconds: el}
	if v, ok := firstErr.Load().(string); ok {
		r.FirstError = v
	}
	if r.Conns == 0 {
		return r, fmt.Errorf("no connection completed (%d errors, first: %s)", r.Errors, r.FirstError)
	}
	s := stats.Describe(all)
	r.ConnPerSec = float64(r.Conns) / el
	r.AvgUs, r.P99Us = s.Mean, s.P99
	return r, nil
}

func oneConn(addr, wantName string, buf []byte) error {
	c, err := net.DialTimeout(Net("tcp", addr), addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("hello\n")); err != nil {
		return err
	}
	n := 0
	for { // read the whole reply until the server's FIN
		m, err := c.Read(buf[n:])
		n += m
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if n == len(buf) {
			return errors.New("reply too long")
		}
	}
	name, _, _ := strings.Cut(string(buf[:n]), " ")
	if name != wantName {
		return fmt.Errorf("answered by %q, want %q", name, wantName)
	}
	return nil
}

// UDPResult is a UDP blast: packets sent by the client, received by the server.
type UDPResult struct {
	Size        int     `json:"size"`
	Sent        int64   `json:"sent"`
	SendErrors  int64   `json:"send_errors"`
	SendSeconds float64 `json:"send_seconds"`
	SentPPS     float64 `json:"sent_pps"`
	Received    int64   `json:"received"`
	RecvSeconds float64 `json:"recv_seconds"` // first to last packet at the server
	RecvPPS     float64 `json:"recv_pps"`
	Loss        float64 `json:"loss"`
}

// UDPBlast sends size-byte datagrams to udpAddr as fast as one socket can
// for dur (at most maxPkts), then asks the server over TCP (statsAddr) how
// many arrived.
func UDPBlast(udpAddr, statsAddr string, size int, maxPkts int64, dur time.Duration) (UDPResult, error) {
	// Reset the server's counters first.
	if _, err := udpStats(statsAddr); err != nil {
		return UDPResult{}, fmt.Errorf("udpstats before: %w", err)
	}
	c, err := net.Dial(Net("udp", udpAddr), udpAddr)
	if err != nil {
		return UDPResult{}, err
	}
	defer c.Close()
	pkt := make([]byte, size)
	pkt[0] = 'B'
	r := UDPResult{Size: size}
	start := time.Now()
	deadline := start.Add(dur)
	for r.Sent+r.SendErrors < maxPkts {
		if (r.Sent+r.SendErrors)%256 == 0 && time.Now().After(deadline) {
			break
		}
		if _, err := c.Write(pkt); err != nil {
			r.SendErrors++ // ECONNREFUSED from an ICMP error, or ENOBUFS
			continue
		}
		r.Sent++
	}
	r.SendSeconds = time.Since(start).Seconds()
	r.SentPPS = float64(r.Sent) / r.SendSeconds
	time.Sleep(200 * time.Millisecond) // let queues drain
	st, err := udpStats(statsAddr)
	if err != nil {
		return r, fmt.Errorf("udpstats after: %w", err)
	}
	r.Received = st.Packets
	if st.Packets > 1 {
		r.RecvSeconds = float64(st.LastNs-st.FirstNs) / 1e9
	}
	if r.RecvSeconds > 0 {
		r.RecvPPS = float64(r.Received) / r.RecvSeconds
	}
	if r.Sent > 0 {
		r.Loss = 1 - float64(r.Received)/float64(r.Sent)
	}
	if r.Received == 0 {
		return r, fmt.Errorf("server received none of %d datagrams", r.Sent)
	}
	return r, nil
}

func udpStats(addr string) (UDPStats, error) {
	var st UDPStats
	c, err := net.DialTimeout(Net("tcp", addr), addr, 3*time.Second)
	if err != nil {
		return st, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte("udpstats\n")); err != nil {
		return st, err
	}
	err = json.NewDecoder(c).Decode(&st)
	return st, err
}
