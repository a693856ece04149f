package datapath

import (
	"context"
	"errors"
	"time"

	"github.com/ebpfnet/ebpfnet/loader"
)

// ServeOptions tune the control plane's background work.
type ServeOptions struct {
	// GCInterval is how often conntrack is collected and endpoints whose
	// namespace vanished are freed; 0 means 10s.
	GCInterval time.Duration
	// StrainInterval is how often the NAT allocator's strain is checked;
	// 0 means 1s.
	StrainInterval time.Duration
	Timeouts       Timeouts
	// OnGC, if set, is told about every collection (e.g. for metrics).
	OnGC func(GCResult)
	// DNS runs the embedded resolver (dnsserve.go) on each user-defined
	// network's gateway, port DNSPort (0: 53).
	DNS     bool
	DNSPort int
}

// Serve keeps the instance healthy until ctx ends: it restores state first
// (frees endpoints whose namespace vanished), then expires idle conntrack
// entries every GCInterval, early when NAT port allocation strains, and
// reconciles again. Forwarding never depends on it: the datapath is pinned.
// On return it releases the pinned datapath if no network is left.
func (i *Instance) Serve(ctx context.Context, o ServeOptions) error {
	if err := CheckTimeouts(o.Timeouts); err != nil {
		return err
	}
	if o.GCInterval <= 0 {
		o.GCInterval = 10 * time.Second
	}
	if o.StrainInterval <= 0 {
		o.StrainInterval = time.Second
	}
	if _, err := i.datapath(); err != nil {
		return err
	}
	// The kept host netlink sockets, opened now rather than in the
	// first request's attach.
	loader.HostNetlink()
	reconcile := func() error {
		gone, err := i.Reconcile()
		if len(gone) > 0 {
			i.log.Info("freed endpoints whose namespace vanished", "endpoints", gone)
		}
		return err
	}
	gc := func() {
		if i.idle() {
			return
		}
		r, err := i.GC(o.Timeouts)
		if err != nil {
			i.log.Warn("conntrack gc", "err", err)
			return
		}
		if o.OnGC != nil {
			o.OnGC(r)
		}
		if r.Expired > 0 {
			i.log.Debug("conntrack gc", "expired", r.Expired, "took", r.Duration)
		}
	}
	if err := reconcile(); err != nil {
		return err
	}
	// Only after state is restored: expire what is expired, never wipe.
	gc()
	if o.DNS {
		dnsCtx, stopDNS := context.WithCancel(ctx)
		dnsDone := make(chan struct{})
		go func() { defer close(dnsDone); i.serveDNS(dnsCtx, o.DNSPort) }()
		defer func() { stopDNS(); <-dnsDone }()
	}

	tick := time.NewTicker(o.GCInterval)
	defer tick.Stop()
	// Allocations that needed half the retry budget mean the table is
	// crowded for some destination: collect early, as Cilium does.
	strain := time.NewTicker(o.StrainInterval)
	defer strain.Stop()
	strained, _ := i.natStrain()
	for {
		select {
		case <-ctx.Done():
			return i.ReleaseIfUnused()
		case <-strain.C:
			if i.idle() {
				continue
			}
			if s, err := i.natStrain(); err == nil && s > strained {
				strained = s
				i.log.Info("NAT port allocation under strain: conntrack gc early")
				gc()
			}
		case <-tick.C:
			gc()
			if err := reconcile(); err != nil && !errors.Is(err, context.Canceled) {
				i.log.Warn("reconcile", "err", err)
			}
		}
	}
}
