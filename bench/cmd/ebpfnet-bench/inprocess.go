package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/ebpfnet/ebpfnet/api"
)

// In-process attach: what a container start costs a daemon that is already
// running, with no process started per container. ebpfnet: a request to
// its daemon's API (the daemon keeps the pinned datapath open). The
// iptables and nftables modes: the same veth plumbing made with netlink
// from one process, as dockerd makes it (without published ports Docker adds
// no per-container rule). The CLI rows time the same work plus a process
// start.

// startAPI runs `ebpfnet daemon` in the host namespace, timing steps, and
// connects to its API.
func (e *env) startAPI(ctx context.Context) error {
	sock := filepath.Join(e.stateDir, "api.sock")
	args := []string{"env", "EBPFNET_STEP_TIMES=on", e.bin, "--state-dir", e.stateDir, "--pin-root", e.pinRoot,
		"daemon", "--metrics-addr", "", "--api-socket", sock}
	p, err := e.r.start("ebpfnet daemon", inNS(e.host, args...)...)
	if err != nil {
		return err
	}
	e.daemon, e.api = p, api.NewClient(sock)
	return retry(ctx, 10*time.Second, func() error {
		if p.exited() {
			return fmt.Errorf("ebpfnet daemon exited: %s", p.stderr.String())
		}
		return e.api.Ping(ctx)
	})
}

func (e *env) stopAPI() {
	if e.api != nil {
		e.api.Close()
	}
	e.r.stop(e.daemon)
	e.api, e.daemon = nil, nil
}

// attachInProcess attaches ns (the k-th extra container) in-process; for
// ebpfnet it also returns where the daemon's time went.
func (e *env) attachInProcess(ctx context.Context, ns string, k int) (time.Duration, metrics, error) {
	if e.mode == "ebpfnet" {
		t0 := time.Now()
		_, err := e.api.Attach(ctx, api.AttachRequest{Target: ns, Network: "bench"})
		d := time.Since(t0)
		return d, apiSteps(e.api.LastSteps(), d), err
	}
	d, err := netlinkAttach(e.host, ns, manualVeth(e, ns), fmt.Sprintf("172.30.%d.%d", 200+k/250, 2+k%250))
	return d, nil, err
}

func (e *env) detachInProcess(ctx context.Context, ns string) (time.Duration, metrics, error) {
	if e.mode == "ebpfnet" {
		t0 := time.Now()
		_, err := e.api.Detach(ctx, ns)
		d := time.Since(t0)
		return d, apiSteps(e.api.LastSteps(), d), err
	}
	h, err := hostHandle(e.host)
	if err != nil {
		return 0, nil, err
	}
	defer h.Close()
	t0 := time.Now()
	l, err := h.LinkByName(manualVeth(e, ns))
	if err == nil {
		err = h.LinkDel(l)
	}
	return time.Since(t0), nil, err
}

// apiSteps groups the daemon's step times; the rest of the wall time
// (HTTP, JSON, store reads) is other_ms. There is no process to start or
// end.
func apiSteps(header string, wall time.Duration) metrics {
	var us map[string]float64
	if header == "" || json.Unmarshal([]byte(header), &us) != nil {
		return nil
	}
	return groupSteps(us, float64(wall.Microseconds()))
}

func hostHandle(host string) (*netlink.Handle, error) {
	hns, err := netns.GetFromName(host)
	if err != nil {
		return nil, err
	}
	defer hns.Close()
	return netlink.NewHandleAt(hns)
}

// netlinkAttach plumbs a container as dockerd does, in this process: a veth
// pair with its container end in ns as eth0, the host end on the bridge and
// up, the container's address, link and default route. The host's netlink
// handle is dockerd's standing one, made before the clock starts; the
// container's is opened per sandbox, as dockerd does.
func netlinkAttach(host, ns, veth, ip string) (time.Duration, error) {
	h, err := hostHandle(host)
	if err != nil {
		return 0, err
	}
	defer h.Close()
	br, err := h.LinkByName(bridgeIf)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	err = func() error {
		cns, err := netns.GetFromName(ns)
		if err != nil {
			return err
		}
		defer cns.Close()
		ch, err := netlink.NewHandleAt(cns)
		if err != nil {
			return err
		}
		defer ch.Close()
		la := netlink.NewLinkAttrs()
		la.Name, la.MasterIndex = veth, br.Attrs().Index
		v := &netlink.Veth{LinkAttrs: la, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(cns))}
		if err := h.LinkAdd(v); err != nil {
			return err
		}
		if err := h.LinkSetUp(v); err != nil {
			return err
		}
		eth0, err := ch.LinkByName("eth0")
		if err != nil {
			return err
		}
		addr, err := netlink.ParseAddr(ip + "/16")
		if err != nil {
			return err
		}
		if err := ch.AddrAdd(eth0, addr); err != nil {
			return err
		}
		if err := ch.LinkSetUp(eth0); err != nil {
			return err
		}
		return ch.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: net.ParseIP(gatewayIP)})
	}()
	if err != nil {
		return 0, fmt.Errorf("netlink plumbing of %s: %w", ns, err)
	}
	return time.Since(t0), nil
}
