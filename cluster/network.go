package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ebpfnet/ebpfnet/datapath"
)

// ErrNotFound is wrapped by errors about missing networks or endpoints.
var ErrNotFound = errors.New("not found")

// ErrExists is returned by CreateNetwork for a name the cluster has.
var ErrExists = errors.New("already exists")

func validName(kind, name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("invalid %s name %q: must be 1-64 characters", kind, name)
	}
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || (i > 0 && (r == '-' || r == '_' || r == '.'))
		if !ok {
			return fmt.Errorf("invalid %s name %q: use letters, digits, '-', '_' and '.', starting with a letter or digit", kind, name)
		}
	}
	return nil
}

func (o NetworkOptions) network() (Network, error) {
	n := Network{Name: o.Name, VNI: o.VNI, ICC: o.ICC, Internal: o.Internal, MTU: o.MTU, BlockBits: o.BlockBits, CreatedBy: o.Host}
	if err := validName("network", o.Name); err != nil {
		return n, err
	}
	switch o.Name {
	case "host", "none", "bridge", "default":
		return n, fmt.Errorf("network name %s is reserved", o.Name)
	}
	if o.Subnet == "" {
		return n, errors.New("overlay network needs --subnet")
	}
	p, err := netip.ParsePrefix(o.Subnet)
	if err != nil || !p.Addr().Is4() {
		return n, fmt.Errorf("invalid subnet %q: want an IPv4 CIDR", o.Subnet)
	}
	if p.Bits() > 29 {
		return n, fmt.Errorf("invalid subnet %s: /29 or larger needed", p)
	}
	n.Subnet = p.Masked()
	if o.Gateway == "" {
		n.Gateway = n.Subnet.Addr().Next()
	} else if n.Gateway, err = netip.ParseAddr(o.Gateway); err != nil || !n.Subnet.Contains(n.Gateway) || n.Gateway == n.Subnet.Addr() || n.Gateway == lastAddr(n.Subnet) {
		return n, fmt.Errorf("invalid gateway %q for subnet %s", o.Gateway, n.Subnet)
	}
	if err := o.network6(&n); err != nil {
		return n, err
	}
	if o.VNI > MaxVNI {
		return n, fmt.Errorf("invalid VNI %d: want 1-%d", o.VNI, MaxVNI)
	}
	if n.BlockBits == 0 {
		n.BlockBits = max(DefaultBlockBits, n.Subnet.Bits())
	}
	if n.BlockBits < n.Subnet.Bits() || n.BlockBits > 30 {
		return n, fmt.Errorf("invalid block size /%d for subnet %s", n.BlockBits, n.Subnet)
	}
	if o.MTU != 0 && (o.MTU < 576 || o.MTU > 65535-datapath.VXLANOverhead) {
		return n, fmt.Errorf("invalid MTU %d", o.MTU)
	}
	if n.ServiceCIDRs, err = datapath.ParseServiceCIDRs(o.ServiceCIDRs, n.Subnet); err != nil {
		return n, err
	}
	return n, nil
}

// network6 gives a dual-stack network its IPv6 subnet and gateway. Every
// IPv4 address of the subnet must have its twin (Network.IP6For), so the
// IPv6 subnet has at least as many host bits; the gateway is the IPv4
// gateway's twin. A random unique local /64 is drawn without an IPv6
// subnet (CreateNetwork draws again on an overlap).
func (o NetworkOptions) network6(n *Network) error {
	if !o.IPv6 {
		if o.Subnet6 != "" || o.Gateway6 != "" {
			return errors.New("an IPv6 subnet or gateway needs --ipv6")
		}
		return nil
	}
	var err error
	if o.Subnet6 == "" {
		n.Subnet6, err = datapath.ChooseSubnet6(nil)
	} else {
		n.Subnet6, err = datapath.ParseSubnet6(o.Subnet6)
	}
	if err != nil {
		return err
	}
	if 128-n.Subnet6.Bits() < 32-n.Subnet.Bits() {
		return fmt.Errorf("invalid IPv6 subnet %s: an overlay network's needs as many host addresses as its IPv4 subnet %s (/%d or shorter)",
			n.Subnet6, n.Subnet, 96+n.Subnet.Bits())
	}
	n.Gateway6 = n.IP6For(n.Gateway)
	if o.Gateway6 != "" {
		if gw, err := netip.ParseAddr(o.Gateway6); err != nil || gw != n.Gateway6 {
			return fmt.Errorf("invalid IPv6 gateway %q: an overlay network's is its IPv4 gateway's twin, %s (omit it)", o.Gateway6, n.Gateway6)
		}
	}
	return nil
}

// CreateNetwork creates an overlay network once for the whole cluster. The
// name, the VNI and the subnet (no overlap with another overlay network) are
// checked and claimed in one transaction; a VNI of 0 takes the lowest free.
func (s *Store) CreateNetwork(ctx context.Context, o NetworkOptions) (Network, error) {
	const op = "create network"
	n, err := o.network()
	if err != nil {
		return n, err
	}
attempts:
	for attempt := 0; attempt < 16; attempt++ {
		nets, rev, err := s.listNetworks(ctx, op)
		if err != nil {
			return n, err
		}
		used := map[uint32]string{}
		for _, other := range nets {
			if other.Name == n.Name {
				return n, fmt.Errorf("network %s %w", n.Name, ErrExists)
			}
			if other.Subnet.Overlaps(n.Subnet) {
				return n, fmt.Errorf("subnet %s overlaps network %s (%s)", n.Subnet, other.Name, other.Subnet)
			}
			if n.Subnet6.IsValid() && other.Subnet6.IsValid() && other.Subnet6.Overlaps(n.Subnet6) {
				if o.Subnet6 == "" { // a random one: draw again
					n.Subnet6, n.Gateway6 = netip.Prefix{}, netip.Addr{}
					if err := o.network6(&n); err != nil {
						return n, err
					}
					continue attempts
				}
				return n, fmt.Errorf("IPv6 subnet %s overlaps network %s (%s)", n.Subnet6, other.Name, other.Subnet6)
			}
			used[other.VNI] = other.Name
		}
		cand := n
		if o.VNI != 0 {
			if other, ok := used[o.VNI]; ok {
				return n, fmt.Errorf("VNI %d is used by network %s", o.VNI, other)
			}
		} else {
			cand.VNI = FirstVNI
			for used[cand.VNI] != "" {
				cand.VNI++
			}
		}
		cand.Created = time.Now().UTC().Truncate(time.Second)
		val, _ := json.Marshal(cand)
		netKey, vniKey := s.key("networks", cand.Name), s.key("vni", strconv.FormatUint(uint64(cand.VNI), 10))
		r, err := s.txn(ctx, op,
			[]clientv3.Cmp{
				clientv3.Compare(clientv3.CreateRevision(netKey), "=", 0),
				clientv3.Compare(clientv3.CreateRevision(vniKey), "=", 0),
				// No network was created or changed since the overlap check.
				clientv3.Compare(clientv3.ModRevision(s.key("networks")+"/"), "<", rev+1).WithPrefix(),
			},
			[]clientv3.Op{clientv3.OpPut(netKey, string(val)), clientv3.OpPut(vniKey, cand.Name)})
		if err != nil {
			return n, err
		}
		if r.Succeeded {
			return cand, nil
		}
	}
	return n, fmt.Errorf("%s %s: too much contention, try again", op, n.Name)
}

func (s *Store) listNetworks(ctx context.Context, op string) ([]Network, int64, error) {
	r, err := s.get(ctx, op, s.key("networks")+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, 0, err
	}
	var out []Network
	for _, kv := range r.Kvs {
		var n Network
		if err := json.Unmarshal(kv.Value, &n); err != nil {
			s.log.Warn("skipping bad network record", "key", string(kv.Key), "err", err)
			continue
		}
		out = append(out, n)
	}
	return out, r.Header.Revision, nil
}

// Networks lists the overlay networks (read from the store).
func (s *Store) Networks(ctx context.Context) ([]Network, error) {
	nets, _, err := s.listNetworks(ctx, "list networks")
	slices.SortFunc(nets, func(a, b Network) int { return strings.Compare(a.Name, b.Name) })
	return nets, err
}

// Network reads one overlay network.
func (s *Store) Network(ctx context.Context, name string) (Network, error) {
	return s.network(ctx, "get network", name)
}

func (s *Store) network(ctx context.Context, op, name string) (Network, error) {
	var n Network
	r, err := s.get(ctx, op, s.key("networks", name))
	if err != nil {
		return n, err
	}
	if len(r.Kvs) == 0 {
		return n, fmt.Errorf("overlay network %s: %w", name, ErrNotFound)
	}
	return n, json.Unmarshal(r.Kvs[0].Value, &n)
}

// RemoveNetwork removes an overlay network and its address blocks; it is
// refused while any host has an endpoint on it.
func (s *Store) RemoveNetwork(ctx context.Context, name string) error {
	const op = "remove network"
	n, err := s.network(ctx, op, name)
	if err != nil {
		return err
	}
	netKey := s.key("networks", name)
	epPrefix := s.key("endpoints", name) + "/"
	r, err := s.txn(ctx, op,
		[]clientv3.Cmp{
			clientv3.Compare(clientv3.CreateRevision(netKey), ">", 0),
			// No key under the prefix: a range compare holds for every key, and for none.
			clientv3.Compare(clientv3.CreateRevision(epPrefix), "=", 0).WithPrefix(),
		},
		[]clientv3.Op{
			clientv3.OpDelete(netKey),
			clientv3.OpDelete(s.key("vni", strconv.FormatUint(uint64(n.VNI), 10))),
			clientv3.OpDelete(s.key("blocks", name)+"/", clientv3.WithPrefix()),
		})
	if err != nil {
		return err
	}
	if !r.Succeeded {
		return fmt.Errorf("network %s has endpoints: detach them first", name)
	}
	return nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
