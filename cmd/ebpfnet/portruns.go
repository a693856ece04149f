package main

import (
	"fmt"
	"net/netip"

	"github.com/ebpfnet/ebpfnet/datapath/ports"
)

// portRun is a run of published ports that differ only by consecutive host
// and container ports: a -p 20000-40000:20000-40000 endpoint lists as one
// line, not 20001 (--expand lists them all).
type portRun struct {
	proto             ports.Protocol
	hostIP, ctrIP     netip.Addr
	hostPort, ctrPort uint16
	n                 int
}

func (r *portRun) extends(proto ports.Protocol, hostIP, ctrIP netip.Addr, hostPort, ctrPort uint16) bool {
	return r.proto == proto && r.hostIP == hostIP && r.ctrIP == ctrIP &&
		int(r.hostPort)+r.n == int(hostPort) && int(r.ctrPort)+r.n == int(ctrPort)
}

func portSpan(first uint16, n int) string {
	if n == 1 {
		return fmt.Sprint(first)
	}
	return fmt.Sprintf("%d-%d", first, int(first)+n-1)
}

// groupRuns folds consecutive items into runs; with expand, every item is
// a run of its own.
func groupRuns[T any](items []T, expand bool, key func(T) portRun) []portRun {
	var out []portRun
	for _, it := range items {
		k := key(it)
		if n := len(out); !expand && n > 0 && out[n-1].extends(k.proto, k.hostIP, k.ctrIP, k.hostPort, k.ctrPort) {
			out[n-1].n++
			continue
		}
		k.n = 1
		out = append(out, k)
	}
	return out
}
