package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ebpfnet/ebpfnet/bench/internal/netperf"
)

// path is how a workload reaches its server in one mode.
type path struct {
	clientNS string
	addr     string // named server ip:port (TCP and UDP)
	iperfIP  string
	wantName string
	wantSrc  string // source address the server must see ("" = any)
	needsPub bool   // goes through a published port
}

func (e *env) ingress() path {
	if e.mode == "routed" { // no published port: straight to the container
		return path{e.ext, fmt.Sprintf("%s:%d", e.c1IP, srvPort), e.c1IP, e.srvName, extIP, false}
	}
	return path{e.ext, fmt.Sprintf("%s:%d", hostIP, pubPort), hostIP, e.srvName, extIP, e.mode != "host"}
}

func (e *env) egress() path {
	ns, src := e.c1, hostIP
	switch e.mode {
	case "host":
		ns = e.host
	case "routed": // not masqueraded
		src = e.c1IP
	}
	return path{ns, fmt.Sprintf("%s:%d", extIP, srvPort), extIP, extName, src, false}
}

// c2c: container to container on one network. In host mode there are no
// containers: the pair is ext -> host, one veth hop between two namespaces.
func (e *env) c2c() path {
	if e.mode == "host" {
		return e.ingress()
	}
	return path{e.c2, fmt.Sprintf("%s:%d", e.c1IP, srvPort), e.c1IP, e.srvName, e.c2IP, false}
}

// check verifies the path with the named server before a measurement.
func (e *env) check(ctx context.Context, p path, network string) error {
	args := []string{e.cfg.self, "check", "-net", network, "-addr", p.addr, "-name", p.wantName}
	if p.wantSrc != "" {
		args = append(args, "-src", p.wantSrc)
	}
	_, err := e.r.run(ctx, 15*time.Second, inNS(p.clientNS, args...)...)
	if err != nil {
		err = fmt.Errorf("connectivity check %s %s from %s: %w", network, p.addr, p.clientNS, err)
		if p.needsPub && e.pubErr != nil {
			err = fmt.Errorf("%w (published ports unavailable: %v)", err, e.pubErr)
		}
	}
	return err
}

// client runs one of our own client tools pinned to the client CPU and
// decodes its JSON.
func (e *env) client(ctx context.Context, ns string, timeout time.Duration, out any, args ...string) (json.RawMessage, error) {
	full := inNS(ns, pinned(e.cfg.clientCPU, append([]string{e.cfg.self}, args...)...)...)
	stdout, err := e.r.run(ctx, timeout, full...)
	if err != nil {
		return nil, err
	}
	raw := json.RawMessage(stdout)
	if err := json.Unmarshal(raw, out); err != nil {
		return nil, fmt.Errorf("decode %s output %q: %w", args[0], stdout, err)
	}
	return raw, nil
}

type metrics map[string]float64

func (e *env) iperf(ctx context.Context, p path) (metrics, json.RawMessage, error) {
	if err := e.check(ctx, p, netperf.Net("tcp", p.addr)); err != nil {
		return nil, nil, err
	}
	c := e.cfg
	iperfArgs := []string{"iperf3", "-c", p.iperfIP, "-p", fmt.Sprint(iperfPort),
		"-t", fmt.Sprint(c.iperfTime), "-O", fmt.Sprint(c.iperfOmit), "-J"}
	if netperf.Net("tcp", p.addr) == "tcp6" {
		iperfArgs = append(iperfArgs, "-6")
	}
	args := inNS(p.clientNS, pinned(c.clientCPU, iperfArgs...)...)
	out, err := e.r.run(ctx, time.Duration(c.iperfTime+c.iperfOmit+20)*time.Second, args...)
	var res struct {
		Error string `json:"error"`
		End   struct {
			SumSent struct {
				Bps         float64 `json:"bits_per_second"`
				Retransmits int     `json:"retransmits"`
			} `json:"sum_sent"`
			SumReceived struct {
				Bps float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if jerr := json.Unmarshal([]byte(out), &res); jerr != nil {
		if err == nil {
			err = jerr
		}
		return nil, nil, fmt.Errorf("iperf3: %v", err)
	}
	if res.Error != "" {
		return nil, nil, fmt.Errorf("iperf3: %s", res.Error)
	}
	if err != nil {
		return nil, nil, err
	}
	if res.End.SumReceived.Bps <= 0 {
		return nil, nil, fmt.Errorf("iperf3: nothing received")
	}
	detail, _ := json.Marshal(map[string]any{
		"received_bps": res.End.SumReceived.Bps, "sent_bps": res.End.SumSent.Bps,
		"retransmits": res.End.SumSent.Retransmits, "seconds": c.iperfTime, "omit": c.iperfOmit,
	})
	return metrics{"gbps": res.End.SumReceived.Bps / 1e9}, detail, nil
}

func (e *env) rr(ctx context.Context, p path, n int) (metrics, json.RawMessage, error) {
	if err := e.check(ctx, p, netperf.Net("tcp", p.addr)); err != nil {
		return nil, nil, err
	}
	var r netperf.RRResult
	c := e.cfg
	raw, err := e.client(ctx, p.clientNS, c.rrMaxTime+20*time.Second, &r, "rr", "-addr", p.addr,
		"-size", fmt.Sprint(c.rrSize), "-warmup", fmt.Sprint(c.rrWarmup), "-n", fmt.Sprint(n), "-max-time", c.rrMaxTime.String())
	if err != nil {
		return nil, nil, err
	}
	return metrics{"avg_us": r.AvgUs, "p99_us": r.P99Us}, raw, nil
}

func (e *env) connrate(ctx context.Context, p path) (metrics, json.RawMessage, error) {
	if err := e.check(ctx, p, netperf.Net("tcp", p.addr)); err != nil {
		return nil, nil, err
	}
	var r netperf.ConnResult
	c := e.cfg
	raw, err := e.client(ctx, p.clientNS, c.connTime+30*time.Second, &r, "connrate", "-addr", p.addr, "-name", p.wantName,
		"-conc", fmt.Sprint(c.connConc), "-max", fmt.Sprint(c.connMax), "-duration", c.connTime.String(), "-warmup", fmt.Sprint(c.connWarmup))
	if err != nil {
		return nil, nil, err
	}
	if r.Errors > r.Conns/100 {
		return nil, raw, fmt.Errorf("connrate: %d of %d connections failed (first: %s)", r.Errors, r.Errors+r.Conns, r.FirstError)
	}
	return metrics{"conn_per_sec": r.ConnPerSec, "conn_avg_us": r.AvgUs, "conn_p99_us": r.P99Us}, raw, nil
}

func (e *env) udp(ctx context.Context, p path) (metrics, json.RawMessage, error) {
	if err := e.check(ctx, p, netperf.Net("udp", p.addr)); err != nil {
		return nil, nil, err
	}
	var r netperf.UDPResult
	c := e.cfg
	raw, err := e.client(ctx, p.clientNS, c.udpTime+30*time.Second, &r, "udp", "-addr", p.addr,
		"-size", fmt.Sprint(c.udpSize), "-max", fmt.Sprint(c.udpMax), "-duration", c.udpTime.String())
	if err != nil {
		return nil, nil, err
	}
	return metrics{"kpps": r.RecvPPS / 1e3, "loss": r.Loss}, raw, nil
}
