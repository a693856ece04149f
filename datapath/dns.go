package datapath

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
	"github.com/ebpfnet/ebpfnet/resolver"
)

// DNSOptions are Docker's name-resolution flags of attach, run and network
// connect (Aliases only).
type DNSOptions struct {
	// Aliases are more names the endpoint has on its network
	// (--network-alias).
	Aliases []string
	// DNS are the servers the container uses instead of the host's
	// (--dns): in its resolv.conf on the default network, as the embedded
	// resolver's upstream on user-defined networks.
	DNS []netip.Addr
	// ExtraHosts are NAME:IP lines for the container's /etc/hosts
	// (--add-host); IP may be host-gateway (the network's gateway).
	ExtraHosts []string
}

// EtcNetnsDir is where `ip netns exec NAME` finds the files it bind-mounts
// over /etc (resolv.conf, hosts).
var EtcNetnsDir = "/etc/netns"

// HostResolvConf is the resolv.conf the host's resolvers are read from.
var HostResolvConf = "/etc/resolv.conf"

// CheckDNSOptions validates the flags.
func CheckDNSOptions(o DNSOptions) error {
	for _, a := range o.Aliases {
		if err := resolver.ValidName(a); err != nil {
			return fmt.Errorf("--network-alias %q: %w", a, err)
		}
	}
	for _, d := range o.DNS {
		if !d.IsValid() {
			return errors.New("--dns: invalid address")
		}
	}
	for _, h := range o.ExtraHosts {
		if _, _, err := resolver.ParseExtraHost(h); err != nil {
			return err
		}
	}
	return nil
}

// etcFiles renders the files of ep's namespace (resolver.EtcFiles): ep,
// whose --dns and --add-host apply, and the endpoints connected reaches.
func etcFiles(ep Endpoint, connected []Endpoint, nets map[string]Network, host resolver.ResolvConf) (resolv, hosts string) {
	var eps []resolver.EtcEndpoint
	for _, e := range append([]Endpoint{ep}, connected...) {
		x := resolver.EtcEndpoint{Name: e.Name, HostName: baseName(e), IP: e.IP, IP6: e.IP6, Aliases: e.Aliases}
		if n, ok := nets[e.Network]; ok && e.Mode == ModeBridge && n.Name != DefaultNetwork {
			x.Network, x.Resolver = n.Name, n.resolver()
		}
		eps = append(eps, x)
	}
	return resolver.EtcFiles(eps, ep.DNS, ep.ExtraHosts, nets[ep.Network].resolver(), host)
}

// EtcDir is /etc/netns/NAME for an endpoint in a named namespace (one
// `ip netns exec` can enter), else "".
func EtcDir(netnsRef string) string {
	dir, name := filepath.Split(netnsRef)
	if filepath.Clean(dir) != netnsutil.RunDir || netnsutil.ValidName(name) != nil {
		return ""
	}
	return filepath.Join(EtcNetnsDir, name)
}

// writeEtcFiles gives an endpoint's named namespace its resolv.conf and
// hosts under /etc/netns/NAME, leaving alone files ebpfnet did not write.
// It records the directory in ep.EtcDir.
func (i *Instance) writeEtcFiles(ep *Endpoint, st *store) error {
	dir := EtcDir(ep.Netns)
	if dir == "" {
		return nil
	}
	all, err := st.endpointsView() // read only
	if err != nil {
		return err
	}
	var connected []Endpoint
	for _, e := range all {
		if e.NetnsIno == ep.NetnsIno && e.Name != ep.Name && e.Mode == ModeBridge {
			connected = append(connected, e)
		}
	}
	slices.SortFunc(connected, func(a, b Endpoint) int { return strings.Compare(a.Interface(), b.Interface()) })
	nets := map[string]Network{}
	list, err := st.networks()
	if err != nil {
		return err
	}
	for _, n := range list {
		nets[n.Name] = n
	}
	host, err := resolver.ReadResolvConf(HostResolvConf)
	if err != nil {
		return err
	}
	resolv, hosts := etcFiles(*ep, connected, nets, host)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	wrote := false
	for f, content := range map[string]string{"resolv.conf": resolv, "hosts": hosts} {
		p := filepath.Join(dir, f)
		if !resolver.Ours(p) {
			i.log.Warn("leaving a file ebpfnet did not write", "file", p)
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
		wrote = true
	}
	if wrote {
		ep.EtcDir = dir
	}
	return nil
}

// refreshEtcFiles rewrites the resolv.conf and hosts of the namespace
// whose identity is netnsIno after `network connect` or `disconnect`
// changed its endpoints: they belong to the endpoint that wrote them.
func (i *Instance) refreshEtcFiles(st *store, netnsIno uint64) error {
	eps, err := st.endpoints()
	if err != nil {
		return err
	}
	for _, e := range eps {
		if e.NetnsIno == netnsIno && e.EtcDir != "" {
			return i.writeEtcFiles(&e, st)
		}
	}
	return nil
}

// removeEtcFiles removes what writeEtcFiles wrote for ep.
func removeEtcFiles(ep Endpoint) error {
	if ep.EtcDir == "" || ep.EtcDir != EtcDir(ep.Netns) {
		return nil
	}
	var errs []error
	for _, f := range []string{"resolv.conf", "hosts"} {
		p := filepath.Join(ep.EtcDir, f)
		if _, err := os.Stat(p); err == nil && resolver.Ours(p) {
			errs = append(errs, os.Remove(p))
		}
	}
	os.Remove(ep.EtcDir) // only if empty
	return errors.Join(errs...)
}
