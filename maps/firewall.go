package maps

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"

	"github.com/ebpfnet/ebpfnet/loader"
)

// FirewallScope is what a firewall entry applies to (bpf/lib/firewall.h):
// every published port, the published ports of one network's containers,
// or one published port.
type FirewallScope struct {
	Kind  loader.FWScopeKind
	Proto uint8  // FWScopePort
	Port  uint16 // FWScopePort: the host port
	NetID uint32 // FWScopeNetwork
}

// FirewallEntry is one compiled rule: sources in Source opening a flow in
// Scope are allowed or denied.
type FirewallEntry struct {
	Scope  FirewallScope
	Source netip.Prefix
	Allow  bool
}

func (e FirewallEntry) key() (loader.FWKey, error) {
	if !e.Source.Addr().Is4() {
		return loader.FWKey{}, fmt.Errorf("firewall source %v is not an IPv4 prefix", e.Source)
	}
	src := e.Source.Masked()
	k := loader.FWKey{
		Prefixlen: uint32(loader.FWScopeBits + src.Bits()),
		Kind:      uint8(e.Scope.Kind),
		Saddr:     BE32(src.Addr()),
	}
	switch e.Scope.Kind {
	case loader.FWScopeAll:
	case loader.FWScopeNetwork:
		k.Id = e.Scope.NetID
	case loader.FWScopePort:
		k.Proto, k.Port = e.Scope.Proto, BE16(e.Scope.Port)
	default:
		return k, fmt.Errorf("firewall scope kind %d unknown", e.Scope.Kind)
	}
	return k, nil
}

func firewallEntryFromKey(k loader.FWKey, r loader.FWRule) FirewallEntry {
	bits := int(k.Prefixlen) - loader.FWScopeBits
	return FirewallEntry{
		Scope: FirewallScope{
			Kind:  loader.FWScopeKind(k.Kind),
			Proto: k.Proto,
			Port:  PortFromBE16(k.Port),
			NetID: k.Id,
		},
		Source: netip.PrefixFrom(AddrFromBE32(k.Saddr), bits),
		Allow:  r.Action == uint32(loader.FWAllow),
	}
}

// FirewallEntries lists the compiled rules in the fw_rules trie.
func (v *Views) FirewallEntries() ([]FirewallEntry, error) {
	var out []FirewallEntry
	var k loader.FWKey
	var r loader.FWRule
	it := v.m.FWRules.Iterate()
	for it.Next(&k, &r) {
		out = append(out, firewallEntryFromKey(k, r))
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list firewall rules: %w", err)
	}
	return out, nil
}

// SyncFirewall makes the fw_rules trie hold exactly want: new and changed
// entries are written first, then stale ones deleted, so a source never
// passes through a moment with neither its old nor its new rule. Every
// entry is checked, and want against the trie's size, before anything is
// written.
func (v *Views) SyncFirewall(want []FirewallEntry) error {
	keep := make(map[loader.FWKey]loader.FWRule, len(want))
	for _, e := range want {
		k, err := e.key()
		if err != nil {
			return err
		}
		r := loader.FWRule{Action: uint32(loader.FWDeny)}
		if e.Allow {
			r.Action = uint32(loader.FWAllow)
		}
		keep[k] = r
	}
	limit := int(v.m.FWRules.MaxEntries())
	if len(keep) > limit {
		return fmt.Errorf("%d firewall entries (implied denies included): the datapath holds at most %d", len(keep), limit)
	}
	have, err := v.FirewallEntries()
	if err != nil {
		return err
	}
	var stale []loader.FWKey
	for _, e := range have {
		if k, err := e.key(); err == nil {
			if _, ok := keep[k]; !ok {
				stale = append(stale, k)
			}
		}
	}
	var errs []error
	deleteStale := func() {
		for _, k := range stale {
			errs = append(errs, ignoreMissing(v.m.FWRules.Delete(&k)))
		}
	}
	// Old and new together would not fit: make room first, accepting the
	// moment in between.
	roomFirst := len(stale)+len(keep) > limit
	if roomFirst {
		deleteStale()
	}
	for k, r := range keep {
		if err := v.m.FWRules.Update(&k, &r, ebpf.UpdateAny); err != nil {
			return errors.Join(append(errs, fmt.Errorf("write firewall rule %v: %w", firewallEntryFromKey(k, r).Source, err))...)
		}
	}
	if !roomFirst {
		deleteStale()
	}
	// Last: a count of 0 lets new flows skip the trie, so it drops to 0
	// only once the trie is empty, and rises only once it is filled.
	n, zero := uint32(len(keep)), uint32(0)
	errs = append(errs, v.m.FWCount.Update(&zero, &n, ebpf.UpdateAny))
	return errors.Join(errs...)
}

// FirewallCount is the rule count the datapath gates the trie on (0: new
// flows skip it).
func (v *Views) FirewallCount() (uint32, error) {
	var zero, n uint32
	if err := v.m.FWCount.Lookup(&zero, &n); err != nil {
		return 0, fmt.Errorf("read firewall rule count: %w", err)
	}
	return n, nil
}
