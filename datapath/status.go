package datapath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
)

// Endpoint statuses, as `ebpfnet ls` shows them.
const (
	StatusUp            = "up"             // the namespace is there
	StatusRunning       = "running"        // ebpfnet run's namespace with a process in it
	StatusExited        = "exited"         // ebpfnet run's namespace, its command gone
	StatusNamespaceGone = "namespace gone" // the container died without a detach (InUse is false)
)

// EndpointStatus is an endpoint with what is left of it.
type EndpointStatus struct {
	Endpoint
	Status string `json:"status"`
}

// EndpointStatuses lists the endpoints with their status, sorted by name.
func (i *Instance) EndpointStatuses() ([]EndpointStatus, error) {
	eps, err := i.Endpoints()
	if err != nil {
		return nil, err
	}
	var procs map[uint64]int
	out := make([]EndpointStatus, 0, len(eps))
	for _, e := range eps {
		s := EndpointStatus{Endpoint: e, Status: StatusUp}
		switch {
		case !i.InUse(e):
			s.Status = StatusNamespaceGone
		case e.OwnNetns:
			if procs == nil {
				procs = processesByNetns()
			}
			s.Status = StatusRunning
			if procs[e.NetnsIno] == 0 {
				s.Status = StatusExited
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// processesByNetns counts the processes in each network namespace.
func processesByNetns() map[uint64]int {
	out := map[uint64]int{}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		if ino, err := netnsutil.Inode(filepath.Join("/proc", d.Name(), "ns", "net")); err == nil {
			out[ino]++
		}
	}
	return out
}

// Remove detaches endpoints and deletes the namespaces ebpfnet run made for
// them, as docker rm removes containers. A running one is refused unless
// force. It removes what it can and returns the names it removed and an
// error for each one it could not.
func (i *Instance) Remove(force bool, targets ...string) ([]string, error) {
	statuses, err := i.EndpointStatuses()
	if err != nil {
		return nil, err
	}
	byName := map[string]EndpointStatus{}
	for _, s := range statuses {
		byName[s.Name] = s
	}
	var removed []string
	var errs []error
	for _, t := range targets {
		s, ok := byName[t]
		if !ok {
			// Anything detach accepts: a netns path, a PID.
			ep, err := i.findEndpoint(t)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			s = byName[ep.Name]
		}
		if s.Status == StatusRunning && !force {
			errs = append(errs, fmt.Errorf("endpoint %s: its command is running: stop it first or use --force", s.Name))
			continue
		}
		if err := i.remove(s.Endpoint); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, s.Name)
	}
	return removed, errors.Join(errs...)
}

// Prune removes the endpoints nothing uses any more: their namespace is
// gone, or ebpfnet run made it and its command has exited.
func (i *Instance) Prune() ([]string, error) {
	statuses, err := i.EndpointStatuses()
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, s := range statuses {
		if s.Status != StatusNamespaceGone && s.Status != StatusExited {
			continue
		}
		if err := i.remove(s.Endpoint); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, s.Name)
	}
	return removed, errors.Join(errs...)
}

func (i *Instance) remove(ep Endpoint) error {
	if _, err := i.Detach(ep.Name); err != nil {
		return err
	}
	if ep.OwnNetns {
		if err := netnsutil.DeleteNamed(filepath.Base(ep.Netns)); err != nil {
			return fmt.Errorf("endpoint %s: delete its namespace: %w", ep.Name, err)
		}
	}
	return nil
}

func (i *Instance) findEndpoint(target string) (Endpoint, error) {
	var ep Endpoint
	err := i.withStore(func(st *store) (err error) {
		ep, err = findEndpoint(st, target)
		return err
	})
	return ep, err
}
