package datapath

import (
	"fmt"
	"strings"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
)

// ConnectOptions are the flags of `ebpfnet network connect`.
type ConnectOptions struct {
	Network string
	Target  string   // an endpoint's name, or anything attach takes
	IP      string   // empty: allocate
	IP6     string   // on a dual-stack network; empty: allocate
	Aliases []string // --alias: more names on this network
}

// Connect gives an attached namespace an interface on one more network, as
// docker network connect does: the next free ethN, an address on the
// network, its subnet's route (the default route stays with the first
// network), isolation from the other networks as for any endpoint. The
// endpoint is named TARGET.NETWORK.
func (i *Instance) Connect(o ConnectOptions) (Endpoint, error) {
	if o.Network == "" {
		return Endpoint{}, fmt.Errorf("network connect needs a network")
	}
	first, err := i.findEndpoint(o.Target)
	if err != nil {
		return Endpoint{}, err
	}
	eps, err := i.Endpoints()
	if err != nil {
		return Endpoint{}, err
	}
	used := map[string]bool{}
	for _, e := range eps {
		if e.NetnsIno != first.NetnsIno {
			continue
		}
		if e.Network == o.Network {
			return Endpoint{}, fmt.Errorf("endpoint %s is already connected to network %s (as %s)", first.Name, o.Network, e.Name)
		}
		if e.Mode == ModeBridge {
			used[e.Interface()] = true
		}
	}
	if first.Mode != ModeBridge {
		return Endpoint{}, fmt.Errorf("endpoint %s is in %s mode: only bridge-mode endpoints connect to more networks", first.Name, first.Mode)
	}
	ifName := ""
	for n := 1; ifName == ""; n++ {
		if c := fmt.Sprintf("eth%d", n); !used[c] {
			ifName = c
		}
	}
	name := baseName(first) + "." + o.Network
	if err := netnsutil.ValidName(name); err != nil {
		return Endpoint{}, fmt.Errorf("endpoint name: %w", err)
	}
	ep, err := i.Attach(AttachOptions{
		Mode: ModeBridge, Network: o.Network, IP: o.IP, IP6: o.IP6, Target: first.Netns, Name: name,
		IfName: ifName, ContainerID: first.ContainerID, DNSOptions: DNSOptions{Aliases: o.Aliases},
	})
	if err != nil {
		return ep, err
	}
	return ep, i.refreshEtc(first.NetnsIno)
}

// refreshEtc gives a namespace whose networks changed its new resolv.conf
// and hosts: the new address named, the embedded resolver if it joined its
// first user-defined network (as Docker's sandbox rebuilds them).
func (i *Instance) refreshEtc(netnsIno uint64) error {
	err := i.withStore(func(st *store) error { return i.refreshEtcFiles(st, netnsIno) })
	if err != nil {
		return fmt.Errorf("rewrite resolv.conf and hosts: %w", err)
	}
	return nil
}

// Disconnect removes a namespace's interface on one network, as docker
// network disconnect does.
func (i *Instance) Disconnect(network, target string) (Endpoint, error) {
	first, err := i.findEndpoint(target)
	if err != nil {
		return Endpoint{}, err
	}
	eps, err := i.Endpoints()
	if err != nil {
		return Endpoint{}, err
	}
	for _, e := range eps {
		if e.NetnsIno == first.NetnsIno && e.Network == network {
			ep, err := i.Detach(e.Name)
			if err != nil {
				return ep, err
			}
			return ep, i.refreshEtc(first.NetnsIno)
		}
	}
	return Endpoint{}, fmt.Errorf("endpoint %s is not connected to network %s", first.Name, network)
}

// baseName is an endpoint's name without a connected network's suffix.
func baseName(e Endpoint) string {
	if e.Network != "" {
		if base, ok := strings.CutSuffix(e.Name, "."+e.Network); ok {
			return base
		}
	}
	return e.Name
}
