package datapath

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/ebpfnet/ebpfnet/datapath/ports"
	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

// The user firewall, ebpfnet's DOCKER-USER: source allow/deny lists for new
// flows from an uplink to published ports (and, on nat-unprotected
// networks, to routed container addresses), judged in from_uplink before
// any translation. Semantics are in bpf/lib/firewall.h; rules are kept in
// the store and compiled into the fw_rules (IPv4 sources) and fw_rules6
// (IPv6) tries.

// FirewallAction is what a rule does with a matching source.
type FirewallAction string

// Firewall actions.
const (
	FirewallAllow FirewallAction = "allow"
	FirewallDeny  FirewallAction = "deny"
)

// FirewallRule is one user rule. Its scope is one published port (Port and
// Protocol), the published ports of one network's containers (Network), or
// every published port (neither).
type FirewallRule struct {
	Port     uint16         `json:"port,omitempty"`
	Protocol ports.Protocol `json:"protocol,omitempty"`
	Network  string         `json:"network,omitempty"`
	Source   netip.Prefix   `json:"source"`
	Action   FirewallAction `json:"action"`
	// Implied marks the deny-everything-else rule a scope with an allow
	// rule gets (listings show it; it cannot be added or removed).
	Implied bool `json:"implied,omitempty"`
}

// Scope is the rule's scope as users write it: "8080/tcp", "network NAME"
// or "all".
func (r FirewallRule) Scope() string {
	switch {
	case r.Port != 0:
		return fmt.Sprintf("%d/%s", r.Port, r.Protocol)
	case r.Network != "":
		return "network " + r.Network
	}
	return "all"
}

func (r FirewallRule) key() string { return r.Scope() + " " + r.Source.String() }

// ParseFirewallPort parses a rule's port scope: PORT[/PROTO], tcp by default.
func ParseFirewallPort(s string) (uint16, ports.Protocol, error) {
	num, proto, hasProto := strings.Cut(s, "/")
	p := ports.TCP
	if hasProto {
		var err error
		if p, err = ports.ParseProtocol(proto); err != nil {
			return 0, 0, fmt.Errorf("--port %q: %w", s, err)
		}
	}
	n, err := strconv.ParseUint(num, 10, 16)
	if err != nil || n == 0 {
		return 0, 0, fmt.Errorf("--port %q: port must be 1-65535", s)
	}
	return uint16(n), p, nil
}

// Every source of each family: "any" names both.
var (
	anyIPv4 = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	anyIPv6 = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
)

// ParseFirewallSources parses a rule's source: an IPv4 or IPv6 address or
// prefix, or "any", which is every source of both families (0.0.0.0/0 and
// ::/0, two rules). A prefix with host bits set is refused: 10.1.2.3/8 is a
// typo more often than a wish for 10.0.0.0/8. So is an IPv4-mapped IPv6
// address (::ffff:198.18.0.1): IPv4 clients are judged by their IPv4
// address, write that.
func ParseFirewallSources(s string) ([]netip.Prefix, error) {
	if s == "any" {
		return []netip.Prefix{anyIPv4, anyIPv6}, nil
	}
	var p netip.Prefix
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("source %q: not an IPv4 or IPv6 address or prefix", s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	} else {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return nil, fmt.Errorf("source %q: not an IPv4 or IPv6 address or prefix", s)
		}
		if p.Masked() != p {
			return nil, fmt.Errorf("source %q has host bits set: did you mean %v?", s, p.Masked())
		}
	}
	if p.Addr().Is4In6() {
		return nil, fmt.Errorf("source %q is an IPv4-mapped IPv6 address: write the IPv4 address (%v)", s, p.Addr().Unmap())
	}
	return []netip.Prefix{p}, nil
}

func (r FirewallRule) validate() error {
	if r.Action != FirewallAllow && r.Action != FirewallDeny {
		return fmt.Errorf("action %q: must be allow or deny", r.Action)
	}
	if !r.Source.IsValid() || r.Source.Masked() != r.Source || r.Source.Addr().Zone() != "" || r.Source.Addr().Is4In6() {
		return fmt.Errorf("source %v: not an IPv4 or IPv6 prefix", r.Source)
	}
	if r.Port != 0 && r.Network != "" {
		return errors.New("a rule is scoped to a port or to a network, not both")
	}
	if r.Port == 0 && r.Protocol != 0 {
		return errors.New("a protocol needs a port")
	}
	if r.Port != 0 && r.Protocol != ports.TCP && r.Protocol != ports.UDP {
		return fmt.Errorf("port %d: protocol must be tcp or udp", r.Port)
	}
	if r.Implied {
		return errors.New("implied rules cannot be added")
	}
	return nil
}

// FirewallAdd adds rules (all or none), or changes the action of the rule
// with the same scope and source. A network scope must name an existing
// network; a port need not be published yet. Flows already open are not
// judged again.
func (i *Instance) FirewallAdd(rules ...FirewallRule) error {
	for _, r := range rules {
		if err := r.validate(); err != nil {
			return err
		}
	}
	return i.withStore(func(st *store) error {
		for _, r := range rules {
			if r.Network == "" {
				continue
			}
			if _, ok, err := st.network(r.Network); err != nil {
				return err
			} else if !ok {
				return notFoundf("network %s not found", r.Network)
			}
		}
		return i.changeFirewall(st, func(b *bolt.Bucket) error {
			for _, r := range rules {
				raw, err := json.Marshal(r)
				if err != nil {
					return err
				}
				if err := b.Put([]byte(r.key()), raw); err != nil {
					return err
				}
			}
			return nil
		})
	})
}

// FirewallRemove removes the rules with rules' scopes and sources (their
// actions are not compared): those of them that exist, an error if none
// does.
func (i *Instance) FirewallRemove(rules ...FirewallRule) error {
	return i.withStore(func(st *store) error {
		return i.changeFirewall(st, func(b *bolt.Bucket) error {
			found := 0
			for _, r := range rules {
				if b.Get([]byte(r.key())) == nil {
					continue
				}
				found++
				if err := b.Delete([]byte(r.key())); err != nil {
					return err
				}
			}
			if found == 0 && len(rules) > 0 {
				r := rules[0]
				return fmt.Errorf("no firewall rule for %s from %v", r.Scope(), r.Source)
			}
			return nil
		})
	})
}

// FirewallFlush removes every rule, or with scoped, every rule of that
// rule's scope (Port/Protocol or Network; neither: the "all" scope). It
// returns how many it removed.
func (i *Instance) FirewallFlush(scoped *FirewallRule) (int, error) {
	n := 0
	err := i.withStore(func(st *store) error {
		return i.changeFirewall(st, func(b *bolt.Bucket) error {
			var doomed [][]byte
			err := b.ForEach(func(k, raw []byte) error {
				var r FirewallRule
				if err := json.Unmarshal(raw, &r); err != nil {
					return err
				}
				if scoped == nil || r.Scope() == scoped.Scope() {
					doomed = append(doomed, k)
				}
				return nil
			})
			for _, k := range doomed {
				err = errors.Join(err, b.Delete(k))
			}
			n = len(doomed)
			return err
		})
	})
	if err != nil {
		n = 0
	}
	return n, err
}

// FirewallRules lists the rules by scope and then source, each scope's
// implied deny after its allow rules.
func (i *Instance) FirewallRules() ([]FirewallRule, error) {
	var out []FirewallRule
	err := i.withStore(func(st *store) (err error) {
		out, err = firewallRules(st)
		return err
	})
	return withImpliedDenies(out), err
}

func firewallRules(st *store) ([]FirewallRule, error) {
	rules, err := list[FirewallRule](st, bucketFirewall)
	sort.Slice(rules, func(a, b int) bool {
		if sa, sb := rules[a].Scope(), rules[b].Scope(); sa != sb {
			return sa < sb
		}
		sa, sb := rules[a].Source, rules[b].Source
		if sa.Addr().Is4() != sb.Addr().Is4() {
			return sa.Addr().Is4()
		}
		return sa.Bits() > sb.Bits() || sa.Bits() == sb.Bits() && sa.Addr().Less(sb.Addr())
	})
	return rules, err
}

// withImpliedDenies adds, after the rules of every scope that allows some
// sources, the deny of everything else: of each family whose every source
// (0.0.0.0/0, ::/0) the scope says nothing of. A scope's allow rules make
// it an allow list for both families, so one naming IPv4 prefixes only
// refuses every IPv6 source, and the other way round; ::/0 allowed opens
// the scope to IPv6 again. Deny rules alone imply nothing.
func withImpliedDenies(rules []FirewallRule) []FirewallRule {
	type scopeState struct{ allows, any4, any6 bool }
	state := map[string]*scopeState{}
	for _, r := range rules {
		s := state[r.Scope()]
		if s == nil {
			s = &scopeState{}
			state[r.Scope()] = s
		}
		s.allows = s.allows || r.Action == FirewallAllow
		s.any4 = s.any4 || r.Source == anyIPv4
		s.any6 = s.any6 || r.Source == anyIPv6
	}
	var out []FirewallRule
	for j, r := range rules {
		out = append(out, r)
		if last := j == len(rules)-1 || rules[j+1].Scope() != r.Scope(); !last {
			continue
		}
		s := state[r.Scope()]
		for _, fam := range []struct {
			named bool
			src   netip.Prefix
		}{{s.any4, anyIPv4}, {s.any6, anyIPv6}} {
			if s.allows && !fam.named {
				out = append(out, FirewallRule{Port: r.Port, Protocol: r.Protocol, Network: r.Network,
					Source: fam.src, Action: FirewallDeny, Implied: true})
			}
		}
	}
	return out
}

// changeFirewall applies change to the stored rules and compiles the result
// into the datapath. If the datapath refuses them, the stored rules are put
// back and compiled again, so a failed command changes nothing.
func (i *Instance) changeFirewall(st *store, change func(*bolt.Bucket) error) error {
	var before map[string][]byte
	if err := st.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFirewall)
		before = map[string][]byte{}
		if err := b.ForEach(func(k, v []byte) error {
			before[string(k)] = bytes.Clone(v)
			return nil
		}); err != nil {
			return err
		}
		return change(b)
	}); err != nil {
		return err
	}
	err := runSteps(nil,
		at("before-firewall-apply"),
		step{do: func() error { return i.applyFirewall(st) }},
		at("after-firewall-apply"),
	)
	if err == nil {
		return nil
	}
	restore := st.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketFirewall); err != nil {
			return err
		}
		b, err := tx.CreateBucket(bucketFirewall)
		if err != nil {
			return err
		}
		for k, v := range before {
			if err := b.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
	if restore == nil {
		restore = i.applyFirewall(st)
	}
	if restore != nil {
		return fmt.Errorf("%w (and putting the old rules back failed: %v)", err, restore)
	}
	return err
}

// applyFirewall compiles the stored rules into the firewall tries. An
// instance with no network has no datapath to apply them to: loading one
// would pin it with nothing to use it, so the rules wait in the store
// (createNetwork compiles them into the datapath it makes).
func (i *Instance) applyFirewall(st *store) error {
	nets, err := st.networks()
	if err != nil || len(nets) == 0 {
		return err
	}
	views, err := i.datapath()
	if err != nil {
		return err
	}
	return syncFirewall(st, views)
}

func syncFirewall(st *store, views *maps.Views) error {
	entries, err := compileFirewall(st)
	if err != nil {
		return err
	}
	if err := views.SyncFirewall(entries); err != nil {
		return fmt.Errorf("apply firewall rules: %w", err)
	}
	return nil
}

// reconcileFirewall compiles the stored rules into the datapath again if
// what it holds differs: a command killed between the store and the kernel,
// or the map changed behind ebpfnet's back (bpftool). It reports whether it
// had to.
func (i *Instance) reconcileFirewall(st *store) (bool, error) {
	nets, err := st.networks()
	if err != nil || len(nets) == 0 {
		return false, err
	}
	views, err := i.datapath()
	if err != nil {
		return false, err
	}
	want, err := compileFirewall(st)
	if err != nil {
		return false, err
	}
	have, err := views.FirewallEntries()
	if err != nil {
		return false, err
	}
	count, err := views.FirewallCount()
	if err != nil {
		return false, err
	}
	if count == uint32(len(want)) && sameFirewallEntries(want, have) {
		return false, nil
	}
	if err := views.SyncFirewall(want); err != nil {
		return true, fmt.Errorf("apply firewall rules: %w", err)
	}
	return true, nil
}

func sameFirewallEntries(a, b []maps.FirewallEntry) bool {
	if len(a) != len(b) {
		return false
	}
	set := make(map[maps.FirewallEntry]bool, len(a))
	for _, e := range a {
		set[e] = true
	}
	for _, e := range b {
		if !set[e] {
			return false
		}
	}
	return true
}

// compileFirewall is what the firewall tries must hold for the stored rules:
// each rule in its scope's key space, and each allow list's implied deny.
func compileFirewall(st *store) ([]maps.FirewallEntry, error) {
	rules, err := firewallRules(st)
	if err != nil {
		return nil, err
	}
	nets, err := st.networks()
	if err != nil {
		return nil, err
	}
	ids := map[string]uint32{}
	for _, n := range nets {
		ids[n.Name] = n.ID
	}
	var entries []maps.FirewallEntry
	for _, r := range withImpliedDenies(rules) {
		e := maps.FirewallEntry{Source: r.Source, Allow: r.Action == FirewallAllow, Scope: maps.FirewallScope{Kind: loader.FWScopeAll}}
		switch {
		case r.Port != 0:
			e.Scope = maps.FirewallScope{Kind: loader.FWScopePort, Proto: uint8(r.Protocol), Port: r.Port}
		case r.Network != "":
			id, ok := ids[r.Network]
			if !ok {
				continue // the network was removed: its rules wait for one of that name
			}
			e.Scope = maps.FirewallScope{Kind: loader.FWScopeNetwork, NetID: id}
		}
		entries = append(entries, e)
	}
	return entries, nil
}
