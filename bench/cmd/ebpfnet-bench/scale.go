package main

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// setDummies makes n other ports published (besides the measured ones).
func (e *env) setDummies(ctx context.Context, n int) error {
	if e.dummies == n {
		return nil
	}
	switch e.mode {
	case "iptables", "nftables":
		return e.applyRules(ctx, n)
	case "ebpfnet":
		return e.setEbpfnetDummies(ctx, n)
	}
	return errSkip
}

// setEbpfnetDummies publishes n ports as port ranges of 1000 on dummy
// containers (<p>-d0, <p>-d1, ...): -p 10000-10999:10000-10999 and so on.
func (e *env) setEbpfnetDummies(ctx context.Context, n int) error {
	want := (n + dummyChunk - 1) / dummyChunk
	if n%dummyChunk != 0 {
		return fmt.Errorf("ebpfnet dummies: N=%d is not a multiple of %d", n, dummyChunk)
	}
	for len(e.dummyNS) > want { // shrink
		ns := e.dummyNS[len(e.dummyNS)-1]
		if _, _, err := e.ebpfnet(ctx, "detach", ns); err != nil {
			e.logf("!! %s: %v", e.mode, err)
		}
		e.r.run(ctx, 20*time.Second, "ip", "netns", "delete", ns)
		e.dummyNS = e.dummyNS[:len(e.dummyNS)-1]
		e.dummies = len(e.dummyNS) * dummyChunk
	}
	for k := len(e.dummyNS); k < want; k++ {
		ns := fmt.Sprintf("%s-d%d", e.prefix, k)
		if err := e.addNetns(ctx, ns); err != nil {
			return err
		}
		lo := dummyBase + k*dummyChunk
		spec := fmt.Sprintf("%d-%d:%d-%d", lo, lo+dummyChunk-1, lo, lo+dummyChunk-1)
		if _, _, err := e.ebpfnet(ctx, "attach", "--net=bridge", "--network", "bench", "-p", spec, ns); err != nil {
			e.r.run(ctx, 20*time.Second, "ip", "netns", "delete", ns)
			return fmt.Errorf("publishing %d other ports (%d done): %w", n, e.dummies, err)
		}
		e.dummyNS = append(e.dummyNS, ns)
		e.dummies = len(e.dummyNS) * dummyChunk
	}
	return nil
}

const onePort = 9000 // the "one more" published port

// publishOne times publishing one more port with n others in place, then
// removes it again (untimed).
func (e *env) publishOne(ctx context.Context) (time.Duration, error) {
	b := binding{"tcp", onePort, "172.30.9.2", srvPort}
	switch e.mode {
	case "iptables":
		var script []string
		cmds := iptablesPublishCmds(b)
		for i := 0; i < len(cmds); i += 2 {
			script = append(script, shellJoin(cmds[i])+" 2>/dev/null || "+shellJoin(cmds[i+1]))
		}
		d, _, err := e.r.timed(ctx, 120*time.Second, inNS(e.host, "sh", "-ec", strings.Join(script, "\n"))...)
		if err != nil {
			return 0, err
		}
		return d, e.applyRules(ctx, e.dummies)
	case "nftables":
		out, err := e.sh(ctx, e.host, "nft", "-a", "list", "chain", "ip", "docker-bridges", "filter-forward-in__"+bridgeIf)
		if err != nil {
			return 0, err
		}
		m := dropHandleRe.FindStringSubmatch(out)
		if m == nil {
			return 0, fmt.Errorf("no UNPUBLISHED PORT DROP rule in filter-forward-in__%s", bridgeIf)
		}
		t0 := time.Now()
		if _, err := e.r.runStdin(ctx, 120*time.Second, nftPublish(b, m[1]), inNS(e.host, "nft", "-f", "-")...); err != nil {
			return 0, err
		}
		d := time.Since(t0)
		return d, e.applyRules(ctx, e.dummies)
	case "ebpfnet":
		ns := e.prefix + "-pub"
		if err := e.addNetns(ctx, ns); err != nil {
			return 0, err
		}
		defer e.r.run(context.Background(), 20*time.Second, "ip", "netns", "delete", ns)
		d, _, err := e.ebpfnet(ctx, "attach", "--net=bridge", "--network", "bench", "-p", fmt.Sprintf("%d:%d", onePort, srvPort), ns)
		if err != nil {
			return 0, err
		}
		_, _, err = e.ebpfnet(ctx, "detach", ns)
		return d, err
	}
	return 0, errSkip
}

// attachResult is what attachOne measured.
type attachResult struct {
	attach, detach           time.Duration
	attachSteps, detachSteps metrics // ebpfnet: where the time went
	ls                       time.Duration
	mapBytes                 uint64 // ebpfnet: kernel memory of its maps
	// The same container attached and detached in-process (inprocess.go).
	attachIn, detachIn           time.Duration
	attachInSteps, detachInSteps metrics // ebpfnet: the daemon's steps
}

// attachOne times attaching one more container with n others attached
// (besides c1, c2 and any dummies), then detaching it again; for ebpfnet
// also `ebpfnet ls` with the n+1 attached and the maps' memory.
func (e *env) attachOne(ctx context.Context, n int) (attachResult, error) {
	var res attachResult
	if e.mode == "host" {
		return res, errSkip
	}
	for len(e.extra) > n {
		ns := e.extra[len(e.extra)-1]
		if e.mode == "ebpfnet" {
			var err error
			if e.api != nil {
				_, _, err = e.detachInProcess(ctx, ns)
			} else {
				_, _, err = e.ebpfnet(ctx, "detach", ns)
			}
			if err != nil {
				e.logf("!! %s: %v", e.mode, err)
			}
		}
		e.r.run(ctx, 20*time.Second, "ip", "netns", "delete", ns)
		e.extra = e.extra[:len(e.extra)-1]
	}
	for k := len(e.extra); k < n; k++ {
		ns := fmt.Sprintf("%s-a%d", e.prefix, k)
		if err := e.addNetns(ctx, ns); err != nil {
			return res, err
		}
		e.extra = append(e.extra, ns)
		// The others are attached the fast way (in-process where there
		// is one): only the measured attach is the subject.
		attach := e.attach
		if e.mode != "ebpfnet" || e.api != nil {
			attach = func(ctx context.Context, ns string, k int) (time.Duration, error) {
				d, _, err := e.attachInProcess(ctx, ns, k)
				return d, err
			}
		}
		if _, err := attach(ctx, ns, k); err != nil {
			return res, fmt.Errorf("attaching container %d of %d: %w", k+1, n, err)
		}
	}
	ns := e.prefix + "-ax"
	if err := e.addNetns(ctx, ns); err != nil {
		return res, err
	}
	defer e.r.run(context.Background(), 20*time.Second, "ip", "netns", "delete", ns)
	var err error
	if res.attach, err = e.attach(ctx, ns, n); err != nil {
		return res, err
	}
	if e.mode != "ebpfnet" {
		if res.detach, _, err = e.r.timed(ctx, 20*time.Second, inNS(e.host, "ip", "link", "del", manualVeth(e, ns))...); err != nil {
			return res, err
		}
		return res, e.inProcessOne(ctx, n, &res)
	}
	res.attachSteps = e.lastSteps
	if res.ls, _, err = e.ebpfnet(ctx, "ls"); err != nil {
		return res, err
	}
	if res.mapBytes, _, err = pinnedMapBytes(e.pinRoot); err != nil {
		return res, err
	}
	res.detach, _, err = e.ebpfnet(ctx, "detach", ns)
	res.detachSteps = e.lastSteps
	if err != nil {
		return res, err
	}
	return res, e.inProcessOne(ctx, n, &res)
}

// inProcessOne attaches and detaches one more container in-process
// (inprocess.go), with n others attached.
func (e *env) inProcessOne(ctx context.Context, n int, res *attachResult) error {
	if e.mode == "ebpfnet" && e.api == nil {
		return nil // no daemon: the attach part runs it
	}
	ns := e.prefix + "-ay"
	if err := e.addNetns(ctx, ns); err != nil {
		return err
	}
	defer e.r.run(context.Background(), 20*time.Second, "ip", "netns", "delete", ns)
	if e.api != nil {
		// The CLI rows' processes wrote the store, so the daemon decodes
		// its records once (~5 ms at 1000 endpoints); a runtime that only
		// uses the API never meets that. One list, untimed, is that decode.
		if _, err := e.api.Endpoints(ctx); err != nil {
			return err
		}
	}
	var err error
	if res.attachIn, res.attachInSteps, err = e.attachInProcess(ctx, ns, n); err != nil {
		return err
	}
	res.detachIn, res.detachInSteps, err = e.detachInProcess(ctx, ns)
	return err
}

func (e *env) attach(ctx context.Context, ns string, k int) (time.Duration, error) {
	if e.mode == "ebpfnet" {
		d, _, err := e.ebpfnet(ctx, "attach", "--net=bridge", "--network", "bench", ns)
		return d, err
	}
	// 172.30.200.2 and up, 250 to a /24: room for thousands.
	return e.manualAttach(ctx, ns, fmt.Sprintf("172.30.%d.%d", 200+k/250, 2+k%250))
}

// shellJoin quotes args for sh.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " !'\"$*?;&|<>()") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

// The port range of the bulk publishing row: -p 20000-40000 for TCP and
// UDP, 40002 bindings to one container.
const rangeLo, rangeHi = 20000, 40000

func rangeBindings() []binding {
	var bs []binding
	for _, proto := range []string{"tcp", "udp"} {
		for p := rangeLo; p <= rangeHi; p++ {
			bs = append(bs, binding{proto, p, "172.30.9.3", p})
		}
	}
	return bs
}

// publishRange times publishing the range and removing it again. The
// iptables and nftables modes load Docker's rules for the 40002 bindings
// (and the measured ones) in one iptables-restore or nft -f, the fastest
// way those rules can be made; Docker itself runs iptables once per rule
// (and, with its userland proxy, starts a docker-proxy per port).
func (e *env) publishRange(ctx context.Context) (publish, unpublish time.Duration, err error) {
	if err := e.setDummies(ctx, 0); err != nil && err != errSkip {
		return 0, 0, err
	}
	switch e.mode {
	case "iptables", "nftables":
		bs := append(rangeBindings(), e.measuredBindings()...)
		load := func(bs []binding) (time.Duration, error) {
			if e.mode == "iptables" {
				d, _, err := e.r.timedStdin(ctx, 300*time.Second, iptablesRules(bs), inNS(e.host, "iptables-restore", "--wait")...)
				return d, err
			}
			d, _, err := e.r.timedStdin(ctx, 300*time.Second, nftRules(bs), inNS(e.host, "nft", "-f", "-")...)
			return d, err
		}
		if publish, err = load(bs); err != nil {
			return 0, 0, err
		}
		unpublish, err = load(e.measuredBindings())
		return publish, unpublish, err
	case "ebpfnet":
		ns := e.prefix + "-rng"
		if err := e.addNetns(ctx, ns); err != nil {
			return 0, 0, err
		}
		defer e.r.run(context.Background(), 20*time.Second, "ip", "netns", "delete", ns)
		spec := fmt.Sprintf("%d-%d:%d-%d", rangeLo, rangeHi, rangeLo, rangeHi)
		if publish, _, err = e.ebpfnet(ctx, "attach", "--net=bridge", "--network", "bench", "-p", spec, "-p", spec+"/udp", ns); err != nil {
			return 0, 0, err
		}
		unpublish, _, err = e.ebpfnet(ctx, "detach", ns)
		return publish, unpublish, err
	}
	return 0, 0, errSkip
}
