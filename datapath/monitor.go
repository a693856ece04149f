package datapath

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ebpfnet/ebpfnet/maps"
)

// Event is one datapath event as the ring buffer carries it.
type Event = maps.Event

// MonitorEvent is a datapath event with the names the kernel does not know.
type MonitorEvent struct {
	Event
	Interface string // the interface the packet arrived on, or its ifindex
	Endpoint  string // the endpoint whose host veth that is, if any
}

// monitorLease is how long the datapath keeps emitting events without a
// renewal, so a monitor that dies stops the events soon after.
const monitorLease = 3 * time.Second

// Monitor streams datapath events (drops with reason, new NAT flows) to fn
// until ctx ends or fn returns an error. The datapath emits events only
// while a monitor holds its lease, at most rate per second per CPU. The ring
// buffer has one reader's worth of events, so a second monitor of the same
// instance is refused rather than given half of them.
func (i *Instance) Monitor(ctx context.Context, rate uint32, fn func(MonitorEvent) error) error {
	unlock, err := i.lockMonitor()
	if err != nil {
		return err
	}
	defer unlock()
	views, err := i.datapath()
	if err != nil {
		return err
	}
	rd, err := views.OpenMonitor()
	if err != nil {
		return err
	}
	defer rd.Close()
	renew := func() error { return views.EnableMonitor(maps.Monotonic()+monitorLease, rate) }
	if err := renew(); err != nil {
		return err
	}
	defer views.DisableMonitor()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				rd.Close()
				return
			case <-t.C:
				if err := renew(); err != nil {
					i.log.Warn("monitor: renew lease", "err", err)
				}
			}
		}
	}()
	names := newEndpointNames(i)
	for {
		ev, err := rd.Read()
		if errors.Is(err, maps.ErrClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		me := MonitorEvent{Event: ev, Interface: fmt.Sprint(ev.Ifindex), Endpoint: names.lookup(ev.Ifindex)}
		if l, err := net.InterfaceByIndex(ev.Ifindex); err == nil {
			me.Interface = l.Name
		}
		if err := fn(me); err != nil {
			return err
		}
	}
}

// lockMonitor takes the instance's monitor lock without waiting.
func (i *Instance) lockMonitor() (unlock func(), err error) {
	if err := os.MkdirAll(i.cfg.StateDir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(i.cfg.StateDir, "monitor.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, errors.New("another monitor is running on this instance (events are not shared; stop it first)")
		}
		return nil, fmt.Errorf("lock monitor: %w", err)
	}
	return func() { f.Close() }, nil
}

// endpointNames maps host veth ifindexes to endpoint names, reloading from
// the store at most once a second when it meets an unknown ifindex.
type endpointNames struct {
	inst   *Instance
	byIdx  map[int]string
	loaded time.Time
}

func newEndpointNames(i *Instance) *endpointNames {
	n := &endpointNames{inst: i}
	n.load()
	return n
}

func (n *endpointNames) load() {
	n.byIdx, n.loaded = map[int]string{}, time.Now()
	eps, _ := n.inst.Endpoints()
	for _, e := range eps {
		if e.Mode == ModeBridge {
			n.byIdx[e.HostIfindex] = e.Name
		}
	}
}

func (n *endpointNames) lookup(ifindex int) string {
	name, ok := n.byIdx[ifindex]
	if !ok && time.Since(n.loaded) > time.Second {
		n.load()
		name = n.byIdx[ifindex]
	}
	return name
}
