package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// EndpointRequest asks for an address on an overlay network.
type EndpointRequest struct {
	Name string
	// MAC defaults to 02:42 followed by the address, as Docker does.
	MAC string
	// IP, if valid, is the address wanted; it must be free and in a block
	// of this host or an unclaimed one.
	IP netip.Addr
	// IP6, if valid, is the IPv6 address wanted on a dual-stack network:
	// it asks for the IPv4 address it is the twin of (Network.IP4For).
	IP6 netip.Addr
}

// netAlloc is what a host knows of its blocks in one network. Only the
// block's host allocates from a block, so this knowledge is complete but
// for crashes; the endpoint transaction (create-if-absent, block unchanged)
// makes a wrong guess fail instead of handing an address out twice.
type netAlloc struct {
	net     Network
	blocks  []ownedBlock
	claimed map[netip.Prefix]string // every claimed block -> host
	used    map[netip.Addr]bool     // addresses in this host's blocks
}

type ownedBlock struct {
	cidr netip.Prefix
	rev  int64 // ModRevision of the block key
}

func (m *Member) blockKey(network string, b netip.Prefix) string {
	return m.s.key("blocks", network, b.Addr().String())
}

// load reads the network's blocks and this host's addresses in them.
func (m *Member) load(ctx context.Context, op string, n Network) (*netAlloc, error) {
	s := m.s
	a := &netAlloc{net: n, claimed: map[netip.Prefix]string{}, used: map[netip.Addr]bool{}}
	r, err := s.get(ctx, op, s.key("blocks", n.Name)+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	for _, kv := range r.Kvs {
		var b Block
		if json.Unmarshal(kv.Value, &b) != nil {
			continue
		}
		a.claimed[b.CIDR] = b.Host
		if b.Host == m.o.Name {
			a.blocks = append(a.blocks, ownedBlock{b.CIDR, kv.ModRevision})
		}
	}
	r, err = s.get(ctx, op, s.key("endpoints", n.Name)+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	for _, kv := range r.Kvs {
		var e Endpoint
		if json.Unmarshal(kv.Value, &e) == nil && a.owned(e.IP) != nil {
			a.used[e.IP] = true
		}
	}
	return a, nil
}

func (a *netAlloc) owned(ip netip.Addr) *ownedBlock {
	for i := range a.blocks {
		if a.blocks[i].cidr.Contains(ip) {
			return &a.blocks[i]
		}
	}
	return nil
}

func (a *netAlloc) usable(ip netip.Addr) bool {
	return a.net.Subnet.Contains(ip) && ip != a.net.Subnet.Addr() && ip != lastAddr(a.net.Subnet) && ip != a.net.Gateway
}

// pick finds a free address in this host's blocks.
func (a *netAlloc) pick() (netip.Addr, *ownedBlock) {
	for i := range a.blocks {
		b := &a.blocks[i]
		for ip := b.cidr.Addr(); b.cidr.Contains(ip); ip = ip.Next() {
			if a.usable(ip) && !a.used[ip] {
				return ip, b
			}
		}
	}
	return netip.Addr{}, nil
}

// blockOf is the block of the network that holds ip.
func (a *netAlloc) blockOf(ip netip.Addr) netip.Prefix {
	p, _ := ip.Prefix(a.net.BlockBits)
	return p
}

// nextFreeBlock is the first block nobody has claimed.
func (a *netAlloc) nextFreeBlock() (netip.Prefix, bool) {
	size := 1 << (32 - a.net.BlockBits)
	for ip := a.net.Subnet.Addr(); a.net.Subnet.Contains(ip); {
		b := netip.PrefixFrom(ip, a.net.BlockBits)
		if _, taken := a.claimed[b]; !taken {
			return b, true
		}
		for range size {
			ip = ip.Next()
		}
		if !ip.IsValid() {
			break
		}
	}
	return netip.Prefix{}, false
}

// claim takes block b for this host by transaction; false if another host
// was first.
func (m *Member) claim(ctx context.Context, op string, a *netAlloc, b netip.Prefix) (bool, error) {
	key := m.blockKey(a.net.Name, b)
	val, _ := json.Marshal(Block{Network: a.net.Name, CIDR: b, Host: m.o.Name})
	r, err := m.s.txn(ctx, op,
		[]clientv3.Cmp{
			clientv3.Compare(clientv3.CreateRevision(key), "=", 0),
			clientv3.Compare(clientv3.CreateRevision(m.s.key("networks", a.net.Name)), ">", 0),
		},
		[]clientv3.Op{clientv3.OpPut(key, string(val))})
	if err != nil {
		return false, err
	}
	if r.Succeeded {
		a.claimed[b] = m.o.Name
		a.blocks = append(a.blocks, ownedBlock{b, r.Header.Revision})
	}
	return r.Succeeded, nil
}

// AllocateEndpoint gives the endpoint an address on the overlay network and
// registers it under the host's lease, in one transaction that fails if the
// address is taken or the block changed hands. It is recorded in the local
// store too. With the store unreachable it fails (ErrUnavailable). It waits
// for a rejoin under way (Member.rejoin), so that the endpoint is written
// under the lease the host keeps.
func (m *Member) AllocateEndpoint(ctx context.Context, network string, req EndpointRequest) (Endpoint, error) {
	const op = "allocate"
	m.allocMu.Lock()
	defer m.allocMu.Unlock()
	if err := validName("endpoint", req.Name); req.Name != "" && err != nil {
		return Endpoint{}, err
	}
	n, err := m.s.network(ctx, op, network)
	if err != nil {
		return Endpoint{}, err
	}
	a := m.alloc[network]
	if a == nil || a.net.VNI != n.VNI || a.net.Created != n.Created {
		if a, err = m.load(ctx, op, n); err != nil {
			return Endpoint{}, err
		}
		m.alloc[network] = a
	}
	if req.IP6.IsValid() {
		ip4 := n.IP4For(req.IP6)
		switch {
		case !n.Subnet6.IsValid():
			return Endpoint{}, fmt.Errorf("--ip6 %s: network %s has no IPv6", req.IP6, n.Name)
		case !ip4.IsValid():
			return Endpoint{}, fmt.Errorf("address %s is not usable in network %s: an endpoint's IPv6 address is its IPv4 one's twin in %s (%s to %s)",
				req.IP6, n.Name, n.Subnet6, n.IP6For(n.Subnet.Addr()), n.IP6For(lastAddr(n.Subnet)))
		case req.IP.IsValid() && req.IP != ip4:
			return Endpoint{}, fmt.Errorf("--ip6 %s is the twin of %s, not of --ip %s, on network %s", req.IP6, ip4, req.IP, n.Name)
		}
		req.IP = ip4
	}
	if req.IP.IsValid() && !a.usable(req.IP) {
		return Endpoint{}, fmt.Errorf("address %s is not usable in network %s (%s, gateway %s)", req.IP, n.Name, n.Subnet, n.Gateway)
	}
	for attempt := 0; attempt < 32; attempt++ {
		var ip netip.Addr
		var blk *ownedBlock
		if req.IP.IsValid() {
			ip, blk = req.IP, a.owned(req.IP)
			if a.used[ip] {
				return Endpoint{}, fmt.Errorf("address %s is already in use in network %s", ip, n.Name)
			}
			if blk == nil {
				b := a.blockOf(ip)
				if h, ok := a.claimed[b]; ok {
					return Endpoint{}, fmt.Errorf("address %s is in block %s of host %s", ip, b, h)
				}
				if _, err := m.claim(ctx, op, a, b); err != nil {
					return Endpoint{}, err
				}
				continue
			}
		} else if ip, blk = a.pick(); blk == nil {
			b, ok := a.nextFreeBlock()
			if !ok {
				return Endpoint{}, fmt.Errorf("network %s: no free address (every /%d block of %s is claimed)", n.Name, n.BlockBits, n.Subnet)
			}
			won, err := m.claim(ctx, op, a, b)
			if err != nil {
				return Endpoint{}, err
			}
			if !won {
				a.claimed[b] = "?" // another host's; reload on the next miss
			}
			continue
		}
		e := Endpoint{Network: n.Name, IP: ip, IP6: n.IP6For(ip), MAC: req.MAC, Host: m.o.Name, Name: req.Name}
		if e.MAC == "" {
			b := ip.As4()
			e.MAC = fmt.Sprintf("02:42:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3])
		}
		val, _ := json.Marshal(e)
		key := m.s.endpointKey(n.Name, ip)
		r, err := m.s.txn(ctx, op,
			[]clientv3.Cmp{
				clientv3.Compare(clientv3.CreateRevision(key), "=", 0),
				clientv3.Compare(clientv3.ModRevision(m.blockKey(n.Name, blk.cidr)), "=", blk.rev),
			},
			[]clientv3.Op{clientv3.OpPut(key, string(val), clientv3.WithLease(clientv3.LeaseID(m.Lease())))})
		if err != nil {
			if errors.Is(err, ErrUnavailable) {
				return Endpoint{}, err
			}
			return Endpoint{}, fmt.Errorf("%s (is this host's daemon running?)", err)
		}
		if !r.Succeeded {
			// Someone else's record, or the block changed: learn again.
			if a, err = m.load(ctx, op, n); err != nil {
				return Endpoint{}, err
			}
			m.alloc[network] = a
			continue
		}
		a.used[ip] = true
		if err := m.local.PutEndpoint(e); err != nil {
			return e, fmt.Errorf("%s: local store: %w", op, err)
		}
		return e, nil
	}
	return Endpoint{}, fmt.Errorf("%s on %s: too much contention, try again", op, network)
}

// ReleaseEndpoint deletes this host's endpoint record and frees its address.
func (m *Member) ReleaseEndpoint(ctx context.Context, network string, ip netip.Addr) error {
	const op = "release"
	m.allocMu.Lock()
	defer m.allocMu.Unlock()
	key := m.s.endpointKey(network, ip)
	r, err := m.s.get(ctx, op, key)
	if err != nil {
		return err
	}
	if len(r.Kvs) > 0 {
		var e Endpoint
		json.Unmarshal(r.Kvs[0].Value, &e)
		if e.Host != m.o.Name {
			return fmt.Errorf("endpoint %s belongs to host %s", e, e.Host)
		}
		if _, err := m.s.txn(ctx, op, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", r.Kvs[0].ModRevision)},
			[]clientv3.Op{clientv3.OpDelete(key)}); err != nil {
			return err
		}
	}
	if a := m.alloc[network]; a != nil {
		delete(a.used, ip)
	}
	return m.local.DeleteEndpoint(network, ip)
}

// Endpoints lists a network's endpoint records (read from the store).
func (s *Store) Endpoints(ctx context.Context, network string) ([]Endpoint, error) {
	r, err := s.get(ctx, "list endpoints", s.key("endpoints", network)+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	var out []Endpoint
	for _, kv := range r.Kvs {
		var e Endpoint
		if json.Unmarshal(kv.Value, &e) == nil {
			out = append(out, e)
		}
	}
	return out, nil
}
