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

// scopeKey is a scope's part of both tries' keys: kind, proto, port, id.
func (e FirewallEntry) scopeKey() (kind, proto uint8, port uint16, id uint32, err error) {
	kind = uint8(e.Scope.Kind)
	switch e.Scope.Kind {
	case loader.FWScopeAll:
	case loader.FWScopeNetwork:
		id = e.Scope.NetID
	case loader.FWScopePort:
		proto, port = e.Scope.Proto, BE16(e.Scope.Port)
	default:
		err = fmt.Errorf("firewall scope kind %d unknown", e.Scope.Kind)
	}
	return
}

// key is e's key in fw_rules (an IPv4 source) or fw_rules6 (IPv6): one of
// the two is set. An IPv4-mapped IPv6 prefix is refused: packets carry
// IPv4 sources as IPv4, so it would never match.
func (e FirewallEntry) key() (*loader.FWKey, *loader.FW6Key, error) {
	src := e.Source.Masked()
	if !src.IsValid() || src.Addr().Is4In6() || src.Addr().Zone() != "" {
		return nil, nil, fmt.Errorf("firewall source %v is not an IPv4 or IPv6 prefix", e.Source)
	}
	kind, proto, port, id, err := e.scopeKey()
	if err != nil {
		return nil, nil, err
	}
	prefixlen := uint32(loader.FWScopeBits + src.Bits())
	if src.Addr().Is4() {
		return &loader.FWKey{Prefixlen: prefixlen, Kind: kind, Proto: proto, Port: port, Id: id, Saddr: BE32(src.Addr())}, nil, nil
	}
	return nil, &loader.FW6Key{Prefixlen: prefixlen, Kind: kind, Proto: proto, Port: port, Id: id, Saddr: ip6Key(src.Addr())}, nil
}

func firewallScopeFromKey(kind, proto uint8, port uint16, id uint32) FirewallScope {
	return FirewallScope{Kind: loader.FWScopeKind(kind), Proto: proto, Port: PortFromBE16(port), NetID: id}
}

func firewallEntryFromKey(k loader.FWKey, r loader.FWRule) FirewallEntry {
	return FirewallEntry{
		Scope:  firewallScopeFromKey(k.Kind, k.Proto, k.Port, k.Id),
		Source: netip.PrefixFrom(AddrFromBE32(k.Saddr), int(k.Prefixlen)-loader.FWScopeBits),
		Allow:  r.Action == uint32(loader.FWAllow),
	}
}

func firewallEntryFromKey6(k loader.FW6Key, r loader.FWRule) FirewallEntry {
	return FirewallEntry{
		Scope:  firewallScopeFromKey(k.Kind, k.Proto, k.Port, k.Id),
		Source: netip.PrefixFrom(addrFromIP6(k.Saddr), int(k.Prefixlen)-loader.FWScopeBits),
		Allow:  r.Action == uint32(loader.FWAllow),
	}
}

// FirewallEntries lists the compiled rules in the fw_rules trie, then
// those in fw_rules6.
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
	var k6 loader.FW6Key
	it = v.m.FWRules6.Iterate()
	for it.Next(&k6, &r) {
		out = append(out, firewallEntryFromKey6(k6, r))
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list IPv6 firewall rules: %w", err)
	}
	return out, nil
}

// SyncFirewall makes the fw_rules and fw_rules6 tries hold exactly want
// (each entry in its source's family): new and changed entries are
// written first, then stale ones deleted, so a source never passes through
// a moment with neither its old nor its new rule. Every entry is checked,
// and want against each trie's size, before anything is written. fw_count
// becomes the two tries' entries together.
func (v *Views) SyncFirewall(want []FirewallEntry) error {
	keep4 := map[loader.FWKey]loader.FWRule{}
	keep6 := map[loader.FW6Key]loader.FWRule{}
	for _, e := range want {
		k4, k6, err := e.key()
		if err != nil {
			return err
		}
		r := loader.FWRule{Action: uint32(loader.FWDeny)}
		if e.Allow {
			r.Action = uint32(loader.FWAllow)
		}
		if k4 != nil {
			keep4[*k4] = r
		} else {
			keep6[*k6] = r
		}
	}
	if limit := int(v.m.FWRules.MaxEntries()); len(keep4) > limit {
		return fmt.Errorf("%d IPv4 firewall entries (implied denies included): the datapath holds at most %d", len(keep4), limit)
	}
	if limit := int(v.m.FWRules6.MaxEntries()); len(keep6) > limit {
		return fmt.Errorf("%d IPv6 firewall entries (implied denies included): the datapath holds at most %d", len(keep6), limit)
	}
	have, err := v.FirewallEntries()
	if err != nil {
		return err
	}
	var stale4 []loader.FWKey
	var stale6 []loader.FW6Key
	for _, e := range have {
		k4, k6, err := e.key()
		switch {
		case err != nil:
		case k4 != nil:
			if _, ok := keep4[*k4]; !ok {
				stale4 = append(stale4, *k4)
			}
		default:
			if _, ok := keep6[*k6]; !ok {
				stale6 = append(stale6, *k6)
			}
		}
	}
	// Last: a count of 0 lets new flows skip the tries, so it drops to 0
	// only once they are empty, and rises only once they are filled. A
	// failed sync keeps a count that still judges what remains.
	n, zero := uint32(len(keep4)+len(keep6)), uint32(0)
	var before uint32
	if err := v.m.FWCount.Lookup(&zero, &before); err != nil {
		return fmt.Errorf("read firewall rule count: %w", err)
	}
	var errs []error
	if err := syncTrie(v.m.FWRules, keep4, stale4, firewallEntryFromKey); err != nil {
		errs = append(errs, err)
	}
	if err := syncTrie(v.m.FWRules6, keep6, stale6, firewallEntryFromKey6); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 && n < before {
		n = before // some stale entries may remain: keep judging them
	}
	errs = append(errs, v.m.FWCount.Update(&zero, &n, ebpf.UpdateAny))
	return errors.Join(errs...)
}

// syncTrie writes keep into a firewall trie and deletes stale from it,
// stale first only if both would not fit.
func syncTrie[K comparable](m *ebpf.Map, keep map[K]loader.FWRule, stale []K, entry func(K, loader.FWRule) FirewallEntry) error {
	var errs []error
	deleteStale := func() {
		for _, k := range stale {
			errs = append(errs, ignoreMissing(m.Delete(&k)))
		}
	}
	// Old and new together would not fit: make room first, accepting the
	// moment in between.
	roomFirst := len(stale)+len(keep) > int(m.MaxEntries())
	if roomFirst {
		deleteStale()
	}
	for k, r := range keep {
		if err := m.Update(&k, &r, ebpf.UpdateAny); err != nil {
			return errors.Join(append(errs, fmt.Errorf("write firewall rule %v: %w", entry(k, r).Source, err))...)
		}
	}
	if !roomFirst {
		deleteStale()
	}
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
