package datapath

import (
	"fmt"
	"strings"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
)

// NetworkMode is what Docker's --network value means: a mode, and for
// bridge mode the network (empty: the default network), for container mode
// the endpoint whose namespace is shared.
type NetworkMode struct {
	Mode      Mode
	Network   string
	Container string
}

// ParseNetworkMode reads a --network value as Docker does: bridge, host,
// none, container:NAME, or the name of a network (bridge mode on it).
func ParseNetworkMode(v string) (NetworkMode, error) {
	if name, ok := strings.CutPrefix(v, "container:"); ok {
		if err := netnsutil.ValidName(name); err != nil {
			return NetworkMode{}, fmt.Errorf("--network=container:NAME: %w", err)
		}
		return NetworkMode{Mode: ModeContainer, Container: name}, nil
	}
	switch Mode(v) {
	case ModeBridge:
		return NetworkMode{Mode: ModeBridge}, nil
	case ModeHost, ModeNone:
		return NetworkMode{Mode: Mode(v)}, nil
	}
	if err := netnsutil.ValidName(v); err != nil {
		return NetworkMode{}, fmt.Errorf("invalid --network %q: want bridge, host, none, container:NAME or a network's name", v)
	}
	return NetworkMode{Mode: ModeBridge, Network: v}, nil
}

// reservedNetworkNames are the --network values that are modes, not
// networks, so no network may take them (Docker refuses them too).
var reservedNetworkNames = []string{string(ModeHost), string(ModeNone)}

// EndpointNetns is the path of the network namespace of the endpoint
// target names (ebpfnet run --network=container:NAME joins it).
func (i *Instance) EndpointNetns(target string) (string, error) {
	var netns string
	err := i.withStore(func(st *store) error {
		ep, err := findEndpoint(st, target)
		netns = ep.Netns
		return err
	})
	return netns, err
}
