package main

import (
	"fmt"
	"net/netip"

	"github.com/spf13/pflag"

	"github.com/ebpfnet/ebpfnet/datapath"
)

// dnsFlags are Docker's name-resolution flags of attach and run:
// --network-alias, --dns and --add-host.
type dnsFlags struct {
	aliases, dns, hosts []string
}

func (d *dnsFlags) register(f *pflag.FlagSet) {
	f.StringArrayVar(&d.aliases, "network-alias", nil, "another name the endpoint has on its network (user-defined networks resolve it)")
	f.StringArrayVar(&d.dns, "dns", nil, "a DNS server for the container instead of the host's")
	f.StringArrayVar(&d.hosts, "add-host", nil, "a line for the container's /etc/hosts: NAME:IP (IP may be host-gateway)")
}

// options turns the flags into datapath's form.
func (d *dnsFlags) options() (datapath.DNSOptions, error) {
	o := datapath.DNSOptions{Aliases: d.aliases, ExtraHosts: d.hosts}
	for _, s := range d.dns {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return o, fmt.Errorf("--dns %q: not an IP address", s)
		}
		o.DNS = append(o.DNS, a)
	}
	return o, datapath.CheckDNSOptions(o)
}

// args repeats the flags for a child ebpfnet (run -d).
func (d *dnsFlags) args() []string {
	var out []string
	for _, a := range d.aliases {
		out = append(out, "--network-alias", a)
	}
	for _, a := range d.dns {
		out = append(out, "--dns", a)
	}
	for _, a := range d.hosts {
		out = append(out, "--add-host", a)
	}
	return out
}

// aliasFlag makes --network-alias another spelling of network connect's
// --alias (Docker's name there), both filling one list.
func aliasFlag(f *pflag.FlagSet) {
	f.SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if name == "network-alias" {
			name = "alias"
		}
		return pflag.NormalizedName(name)
	})
}

// resolverFlags are the daemon's flags for the embedded resolver.
func resolverFlags(f *pflag.FlagSet, o *datapath.ServeOptions) {
	o.DNS = true
	f.BoolVar(&o.DNS, "embedded-dns", o.DNS, "serve DNS on each user-defined network's gateway (container names, aliases; other names forwarded to the host's resolvers)")
	f.IntVar(&o.DNSPort, "dns-port", 53, "port of the embedded DNS resolver")
	f.Lookup("dns-port").Hidden = true // for tests
}
