package datapath

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

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
		x := resolver.EtcEndpoint{Name: e.Name, HostName: baseName(e), IP: e.IP, Aliases: e.Aliases}
		if n, ok := nets[e.Network]; ok && e.Mode == ModeBridge && n.Name != DefaultNetwork && n.Gateway.IsValid() {
			x.Network, x.Resolver = n.Name, n.Gateway
		}
		eps = append(eps, x)
	}
	return resolver.EtcFiles(eps, ep.DNS, ep.ExtraHosts, nets[ep.Network].Gateway, host)
}

// etcDirFor is /etc/netns/NAME for an endpoint in a named namespace (one
// `ip netns exec` can enter), else "".
func etcDirFor(netnsRef string) string {
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
	dir := etcDirFor(ep.Netns)
	if dir == "" {
		return nil
	}
	all, err := st.endpoints()
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
	if ep.EtcDir == "" || ep.EtcDir != etcDirFor(ep.Netns) {
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

// startWithEtc starts cmd in ns as `ip netns exec` does: when etcDir (the
// namespace's /etc/netns/NAME) holds resolv.conf or hosts, cmd gets a
// private mount namespace with them bound over /etc's.
func startWithEtc(ns netnsutil.Namespace, cmd *exec.Cmd, etcDir string) error {
	var binds [][2]string
	for _, f := range []string{"resolv.conf", "hosts"} {
		src, dst := filepath.Join(etcDir, f), filepath.Join("/etc", f)
		if etcDir == "" {
			break
		}
		if _, err := os.Stat(src); err == nil {
			if _, err := os.Stat(dst); err == nil {
				binds = append(binds, [2]string{src, dst})
			}
		}
	}
	if len(binds) == 0 {
		return netnsutil.Start(ns, cmd)
	}
	errc := make(chan error, 1)
	go func() {
		// The thread's mount namespace changes for good: it is never
		// unlocked, so it dies with this goroutine. The main thread is not
		// ended that way (see package mountns): hand the work on.
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			errc <- startWithEtc(ns, cmd, etcDir)
			runtime.UnlockOSThread()
			return
		}
		errc <- func() error {
			if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
				return fmt.Errorf("unshare mount namespace: %w", err)
			}
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
				return fmt.Errorf("make mounts private: %w", err)
			}
			for _, b := range binds {
				if err := unix.Mount(b[0], b[1], "", unix.MS_BIND, ""); err != nil {
					return fmt.Errorf("bind %s over %s: %w", b[0], b[1], err)
				}
			}
			return netnsutil.Start(ns, cmd)
		}()
	}()
	return <-errc
}
