// Package loader loads the ebpfnet datapath into the kernel: it creates (or
// reopens) the pinned maps, loads the programs bpf2go embedded, pins them, and
// attaches them to interfaces: the host's devices with TCX links that are
// pinned too, each endpoint's host veth with a cls_bpf filter (tc.go), so the
// datapath keeps forwarding with no ebpfnet process running.
package loader

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
)

// Program names, as in the C sources' SEC("tc") functions.
const (
	ProgFromContainer = fromContainerProgFromContainer
	ProgFromUplink    = fromUplinkProgFromUplink
	ProgFromOverlay   = fromOverlayProgFromOverlay
	ProgFromHost      = fromHostProgFromHost
)

// Socket-layer programs (bpf/sock.c) for host-local access to published
// ports. Their attach types come from their SEC() names.
var SockPrograms = []string{sockProgSockConnect4, sockProgSockSendmsg4, sockProgSockRecvmsg4, sockProgSockGetpeername4, sockProgSockBind4,
	sockProgSockConnect6, sockProgSockSendmsg6, sockProgSockRecvmsg6, sockProgSockGetpeername6, sockProgSockBind6}

// The capacities of the service tables (bpf/lib/lb.h): frontends and
// NodePorts of all services, their endpoints, and node addresses.
const (
	LBServicesSize = int(sockLbLimitsLB_SERVICES_SIZE)
	LBBackendsSize = int(sockLbLimitsLB_BACKENDS_SIZE)
	LBNodeIPsSize  = int(sockLbLimitsLB_NODE_IPS_SIZE)
)

// Defaults of the sizes and ranges Options can override.
const (
	// DefaultCTMapSize holds 256k flows: each flow is two entries
	// (CT_MAP_SIZE in bpf/lib/conntrack.h).
	DefaultCTMapSize  = int(fromContainerCtLimitsCT_MAP_SIZE)
	DefaultNATPortMin = 1024
	DefaultNATPortMax = 65535
	// CTEmbryonicSize is the fixed size of the embryonic table (half-open
	// inbound TCP flows, two entries each), CTEmbryonicIdleSeconds how long
	// an entry of it may sit idle (CT_EMBRYONIC_* in bpf/lib/conntrack.h).
	CTEmbryonicSize        = int(fromContainerCtLimitsCT_EMBRYONIC_SIZE)
	CTEmbryonicIdleSeconds = int(fromContainerCtLimitsCT_EMBRYONIC_IDLE)
	// CTInboundSize is the fixed size of the table of inbound datagram
	// flows (published UDP ports; CT_INBOUND_SIZE).
	CTInboundSize = int(fromContainerCtLimitsCT_INBOUND_SIZE)
)

// Options select where the datapath is pinned and how it is sized.
type Options struct {
	// PinRoot is a directory on bpffs (see PreparePinRoot). Empty loads an
	// unpinned datapath that vanishes with the process: unit tests use it.
	PinRoot string
	// CTMapSize is the number of conntrack entries (two per flow); 0 means
	// DefaultCTMapSize. A pinned map of another size is refused: changing it
	// needs a datapath without endpoints.
	CTMapSize int
	// NATPortMin and NATPortMax bound the source ports masquerade allocates
	// (ICMP echo ids too); 0 means the default.
	NATPortMin, NATPortMax uint16
}

// Maps are the datapath's shared maps: one instance per ebpfnet instance,
// used by every program. The ebpf tags are the one list of their C names:
// Load fills the fields and ByName lists them from the tags.
type Maps struct {
	Networks         *ebpf.Map `ebpf:"networks"`
	Endpoints        *ebpf.Map `ebpf:"endpoints"`
	EndpointIPs      *ebpf.Map `ebpf:"endpoint_ips"`
	Subnets          *ebpf.Map `ebpf:"subnets"`
	Networks6        *ebpf.Map `ebpf:"networks6"`
	Endpoints6       *ebpf.Map `ebpf:"endpoints6"`
	EndpointIPs6     *ebpf.Map `ebpf:"endpoint_ips6"`
	Subnets6         *ebpf.Map `ebpf:"subnets6"`
	VerdictCounters  *ebpf.Map `ebpf:"verdicts"`
	DropCounters     *ebpf.Map `ebpf:"drop_counters"`
	EndpointStats    *ebpf.Map `ebpf:"endpoint_stats"`
	Conntrack        *ebpf.Map `ebpf:"conntrack"`
	CTEmbryonic      *ebpf.Map `ebpf:"ct_embryonic"`
	CTInbound        *ebpf.Map `ebpf:"ct_inbound"`
	CTAckRanges      *ebpf.Map `ebpf:"ct_ack_ranges"`
	Conntrack6       *ebpf.Map `ebpf:"conntrack6"`    // NAT66's flows (bpf/lib/nat6.h)
	CT6Embryonic     *ebpf.Map `ebpf:"ct6_embryonic"` // IPv6 inbound TCP flows not yet acknowledged
	CT6AckRanges     *ebpf.Map `ebpf:"ct6_ack_ranges"`
	Uplinks          *ebpf.Map `ebpf:"uplinks"`
	UplinkIPs        *ebpf.Map `ebpf:"uplink_ips"`
	UplinkIPs6       *ebpf.Map `ebpf:"uplink_ips6"`
	Ports            *ebpf.Map `ebpf:"ports"`
	Ports6           *ebpf.Map `ebpf:"ports6"`
	NATRetries       *ebpf.Map `ebpf:"nat_retries"`
	NATAllocFailures *ebpf.Map `ebpf:"nat_alloc_failures"`
	MonitorEvents    *ebpf.Map `ebpf:"monitor_events"`
	MonitorCtl       *ebpf.Map `ebpf:"monitor_ctl"`
	FWRules          *ebpf.Map `ebpf:"fw_rules"`
	FWRules6         *ebpf.Map `ebpf:"fw_rules6"` // IPv6 sources (bpf/lib/firewall.h)
	FWCount          *ebpf.Map `ebpf:"fw_count"`
	OverlayNetworks  *ebpf.Map `ebpf:"overlay_networks"`
	RemoteEndpoints  *ebpf.Map `ebpf:"remote_endpoints"`
	RemoteEndpoints6 *ebpf.Map `ebpf:"remote_endpoints6"`
	OverlayHosts     *ebpf.Map `ebpf:"overlay_hosts"`
	ServiceCIDRs     *ebpf.Map `ebpf:"service_cidrs"`
	OverlaySelf      *ebpf.Map `ebpf:"overlay_self"`
	OverlayHostFlows *ebpf.Map `ebpf:"overlay_host_flows"`
	OverlayRoutes    *ebpf.Map `ebpf:"overlay_routes"` // from_container's cache of the outer route per peer host
	// Service load balancing (bpf/lib/lb.h, bpf/sock.c).
	LBServices   *ebpf.Map `ebpf:"lb_services"`
	LBBackends   *ebpf.Map `ebpf:"lb_backends"`
	LBAffinities *ebpf.Map `ebpf:"lb_affinities"`
	LBNodeIPs    *ebpf.Map `ebpf:"lb_node_ips"`
	LBClients    *ebpf.Map `ebpf:"lb_clients"`
	LBReverse    *ebpf.Map `ebpf:"lb_reverse"`
}

// Datapath is a loaded datapath. Close releases this process's handles; what
// is pinned stays in the kernel.
type Datapath struct {
	Maps     Maps
	programs map[string]*ebpf.Program
	attach   map[string]ebpf.AttachType // from each program's SEC()
	all      map[string]*ebpf.Map
	pinRoot  string
	opts     Options
}

type object struct {
	load     func() (*ebpf.CollectionSpec, error)
	elf      *[]byte // the embedded object, for the build ID
	programs []string
}

var objects = []object{
	{loadFromContainer, &_FromContainerBytes, []string{ProgFromContainer}},
	{loadFromUplink, &_FromUplinkBytes, []string{ProgFromUplink}},
	{loadFromOverlay, &_FromOverlayBytes, []string{ProgFromOverlay}},
	{loadFromHost, &_FromHostBytes, []string{ProgFromHost}},
	{loadSock, &_SockBytes, SockPrograms},
}

// Load creates or reopens the datapath.
func Load(opts Options) (*Datapath, error) {
	if opts.CTMapSize < 0 {
		return nil, fmt.Errorf("conntrack map size %d: must be positive", opts.CTMapSize)
	}
	if min, max := opts.natPorts(); min > max {
		return nil, fmt.Errorf("NAT port range %d-%d is empty", min, max)
	}
	d := &Datapath{programs: map[string]*ebpf.Program{}, attach: map[string]ebpf.AttachType{}, all: map[string]*ebpf.Map{}, pinRoot: opts.PinRoot, opts: opts}
	if d.pinRoot != "" {
		for _, dir := range []string{"maps", "progs", "links"} {
			if err := os.MkdirAll(filepath.Join(d.pinRoot, dir), 0o700); err != nil {
				return nil, err
			}
		}
	}
	build, err := d.buildID()
	if err != nil {
		return nil, err
	}
	// The verifier is most of a command's run time: when the pinned
	// programs come from this very build and configuration, reuse them.
	reuse := d.pinnedBuild() == build
	if reuse && d.openPinned() == nil {
		return d, nil
	}
	for _, obj := range objects {
		if err := d.loadObject(obj, reuse); err != nil {
			d.Close()
			return nil, err
		}
	}
	if err := assignMaps(&d.Maps, d.all); err != nil {
		d.Close()
		return nil, err
	}
	if !reuse {
		if err := d.pinBuild(build); err != nil {
			d.Close()
			return nil, err
		}
	}
	return d, nil
}

// buildID identifies the programs this process would load: the embedded
// objects and the load-time constants.
func (d *Datapath) buildID() (string, error) {
	h := sha256.New()
	for _, obj := range objects {
		h.Write(*obj.elf)
	}
	cookie, err := NetnsCookie()
	if err != nil {
		return "", err
	}
	min, max := d.opts.natPorts()
	fmt.Fprintf(h, "cookie=%d nat=%d-%d", cookie, min, max)
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (d *Datapath) buildPath() string { return filepath.Join(d.pinRoot, "progs", "build") }

// The build ID of the pinned programs lives in the name of an empty pinned
// directory next to them, so it disappears with them.
func (d *Datapath) pinnedBuild() string {
	if d.pinRoot == "" {
		return ""
	}
	entries, err := os.ReadDir(d.buildPath())
	if err != nil || len(entries) != 1 {
		return ""
	}
	return entries[0].Name()
}

func (d *Datapath) pinBuild(id string) error {
	if d.pinRoot == "" {
		return nil
	}
	os.RemoveAll(d.buildPath())
	return os.MkdirAll(filepath.Join(d.buildPath(), id), 0o700)
}

func (d *Datapath) loadObject(obj object, reusePinned bool) error {
	spec, err := obj.load()
	if err != nil {
		return err
	}
	if err := d.configure(spec); err != nil {
		return err
	}
	for _, name := range obj.programs {
		ps, ok := spec.Programs[name]
		if !ok {
			return fmt.Errorf("program %s missing from object", name)
		}
		d.attach[name] = ps.AttachType
	}
	replacements := map[string]*ebpf.Map{}
	for name, ms := range spec.Maps {
		if isDataSection(name) {
			continue // .rodata and friends belong to each object
		}
		m, ok := d.all[name]
		if !ok {
			if m, err = d.openMap(ms); err != nil {
				return err
			}
			d.all[name] = m
		}
		replacements[name] = m
	}
	if reusePinned && d.loadPinnedPrograms(obj) == nil {
		return nil
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: replacements})
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return fmt.Errorf("load datapath programs: %+v", ve)
		}
		return fmt.Errorf("load datapath programs: %w", err)
	}
	defer coll.Close()
	for _, name := range obj.programs {
		prog := coll.DetachProgram(name)
		if prog == nil {
			return fmt.Errorf("program %s missing from object", name)
		}
		if prog, err = d.pinProgram(name, prog); err != nil {
			return err
		}
		d.programs[name] = prog
	}
	return nil
}

// openPinned opens the maps and programs a command of this very build
// pinned, by their pins alone: parsing the embedded objects (their BTF and
// line info) would be most of a short command's work. It fails, having
// opened nothing, if something is missing or the conntrack table has
// another size than asked for; Load then takes the long way, which says why.
func (d *Datapath) openPinned() error {
	var ms Maps
	all := map[string]*ebpf.Map{}
	progs := map[string]*ebpf.Program{}
	err := func() error {
		for name := range mapFields(&ms) {
			m, err := ebpf.LoadPinnedMap(filepath.Join(d.pinRoot, "maps", name), nil)
			if err != nil {
				return err
			}
			all[name] = m
		}
		if ct := all[fromContainerMapConntrack]; d.opts.CTMapSize > 0 && int(ct.MaxEntries()) != d.opts.CTMapSize {
			return errors.New("conntrack table of another size")
		}
		for _, obj := range objects {
			for _, name := range obj.programs {
				p, err := openPinnedProgram(filepath.Join(d.pinRoot, "progs", name))
				if err != nil {
					return err
				}
				progs[name] = p
			}
		}
		return assignMaps(&d.Maps, all)
	}()
	if err != nil {
		for _, m := range all {
			m.Close()
		}
		for _, p := range progs {
			p.Close()
		}
		d.Maps = Maps{}
		return err
	}
	d.all, d.programs = all, progs
	return nil
}

// attachType is the attach type of a program, from its SEC() name. Load
// records it when it parses the objects; after openPinned it parses the
// one object that has the program.
func (d *Datapath) attachType(name string) (ebpf.AttachType, error) {
	if t, ok := d.attach[name]; ok {
		return t, nil
	}
	for _, obj := range objects {
		if !slices.Contains(obj.programs, name) {
			continue
		}
		spec, err := obj.load()
		if err != nil {
			return 0, err
		}
		for _, n := range obj.programs {
			if ps, ok := spec.Programs[n]; ok {
				d.attach[n] = ps.AttachType
			}
		}
		if t, ok := d.attach[name]; ok {
			return t, nil
		}
	}
	return 0, fmt.Errorf("program %s missing from object", name)
}

// loadPinnedPrograms opens the pinned programs of obj, all or none.
func (d *Datapath) loadPinnedPrograms(obj object) error {
	progs := map[string]*ebpf.Program{}
	for _, name := range obj.programs {
		p, err := openPinnedProgram(filepath.Join(d.pinRoot, "progs", name))
		if err != nil {
			for _, p := range progs {
				p.Close()
			}
			return err
		}
		progs[name] = p
	}
	maps.Copy(d.programs, progs)
	return nil
}

// natPorts is the NAT source port range with defaults applied.
func (o Options) natPorts() (min, max uint16) {
	min, max = o.NATPortMin, o.NATPortMax
	if min == 0 {
		min = DefaultNATPortMin
	}
	if max == 0 {
		max = DefaultNATPortMax
	}
	return min, max
}

// configure applies Options to a spec before anything is created from it.
func (d *Datapath) configure(spec *ebpf.CollectionSpec) error {
	if ms, ok := spec.Maps[fromContainerMapConntrack]; ok {
		switch {
		case d.opts.CTMapSize > 0:
			ms.MaxEntries = uint32(d.opts.CTMapSize)
		case d.pinRoot != "":
			// No size asked for: keep whatever size the pinned table has.
			if m, err := ebpf.LoadPinnedMap(filepath.Join(d.pinRoot, "maps", fromContainerMapConntrack), nil); err == nil {
				ms.MaxEntries = m.MaxEntries()
				m.Close()
			}
		}
	}
	if v, ok := spec.Variables[sockVarHostNetnsCookie]; ok {
		cookie, err := NetnsCookie()
		if err != nil {
			return err
		}
		if err := v.Set(cookie); err != nil {
			return fmt.Errorf("set host_netns_cookie: %w", err)
		}
	}
	min, max := d.opts.natPorts()
	for name, val := range map[string]uint16{fromContainerVarNatPortMin: min, fromContainerVarNatPortMax: max} {
		v, ok := spec.Variables[name]
		if !ok {
			continue
		}
		if err := v.Set(val); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
	}
	return nil
}

func isDataSection(name string) bool { return len(name) > 0 && name[0] == '.' }

func (d *Datapath) openMap(ms *ebpf.MapSpec) (*ebpf.Map, error) {
	ms = ms.Copy()
	var opts ebpf.MapOptions
	if d.pinRoot != "" {
		ms.Pinning = ebpf.PinByName
		opts.PinPath = filepath.Join(d.pinRoot, "maps")
	}
	m, err := ebpf.NewMapWithOptions(ms, opts)
	if errors.Is(err, ebpf.ErrMapIncompatible) {
		return nil, fmt.Errorf("pinned map %s has another layout than this ebpfnet build: detach every endpoint and remove %s: %w", ms.Name, d.pinRoot, err)
	}
	if err != nil {
		return nil, fmt.Errorf("create map %s: %w", ms.Name, err)
	}
	return m, nil
}

// pinProgram returns the program to use for name. A pinned program with the
// same instructions is reused so every endpoint shares one; a different one
// (an upgrade) is replaced atomically in the pin, in every TCX link and in
// every tc filter of ebpfnet's that runs it, so upgrading never interrupts
// traffic.
func (d *Datapath) pinProgram(name string, fresh *ebpf.Program) (*ebpf.Program, error) {
	if d.pinRoot == "" {
		return fresh, nil
	}
	path := filepath.Join(d.pinRoot, "progs", name)
	pinned, err := ebpf.LoadPinnedProgram(path, nil)
	if errors.Is(err, os.ErrNotExist) {
		if err := fresh.Pin(path); err != nil {
			fresh.Close()
			return nil, fmt.Errorf("pin program %s: %w", name, err)
		}
		return fresh, nil
	}
	if err != nil {
		fresh.Close()
		return nil, fmt.Errorf("open pinned program %s: %w", name, err)
	}
	same, err := sameProgram(pinned, fresh)
	if err != nil || same {
		fresh.Close()
		return pinned, err
	}
	oldID, _ := programID(pinned)
	pinned.Close()
	if err := d.relink(oldID, fresh); err != nil {
		fresh.Close()
		return nil, err
	}
	// Only from_container is ever a tc filter (an endpoint's host veth):
	// the walk reads every interface's filters, so no other program pays it.
	if name == ProgFromContainer {
		if err := d.refilter(name, oldID, fresh); err != nil {
			fresh.Close()
			return nil, err
		}
	}
	tmp := path + "-new" // bpffs refuses names with dots
	os.Remove(tmp)
	if err := fresh.Pin(tmp); err != nil {
		fresh.Close()
		return nil, fmt.Errorf("pin program %s: %w", name, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		fresh.Close()
		return nil, fmt.Errorf("replace pinned program %s: %w", name, err)
	}
	return fresh, nil
}

func sameProgram(a, b *ebpf.Program) (bool, error) {
	ia, err := a.Info()
	if err != nil {
		return false, err
	}
	ib, err := b.Info()
	if err != nil {
		return false, err
	}
	return ia.Tag == ib.Tag, nil
}

func programID(p *ebpf.Program) (ebpf.ProgramID, error) {
	info, err := p.Info()
	if err != nil {
		return 0, err
	}
	id, _ := info.ID()
	return id, nil
}

// relink points every pinned link that runs program oldID at prog.
func (d *Datapath) relink(oldID ebpf.ProgramID, prog *ebpf.Program) error {
	entries, err := os.ReadDir(filepath.Join(d.pinRoot, "links"))
	if err != nil {
		return err
	}
	for _, e := range entries {
		l, err := link.LoadPinnedLink(filepath.Join(d.pinRoot, "links", e.Name()), nil)
		if err != nil {
			continue // a link whose interface is gone: detach cleans it up
		}
		info, err := l.Info()
		if err == nil && info.Program == oldID {
			err = l.Update(prog)
		}
		l.Close()
		if err != nil {
			return fmt.Errorf("upgrade link %s: %w", e.Name(), err)
		}
	}
	return nil
}

// mapFields yields the C name (ebpf tag) and the field of every map in m.
func mapFields(m *Maps) iter.Seq2[string, **ebpf.Map] {
	return func(yield func(string, **ebpf.Map) bool) {
		v := reflect.ValueOf(m).Elem()
		for i := range v.NumField() {
			name := v.Type().Field(i).Tag.Get("ebpf")
			if name == "" {
				continue
			}
			if !yield(name, v.Field(i).Addr().Interface().(**ebpf.Map)) {
				return
			}
		}
	}
}

func assignMaps(dst *Maps, all map[string]*ebpf.Map) error {
	for name, field := range mapFields(dst) {
		m, ok := all[name]
		if !ok {
			return fmt.Errorf("map %s missing from datapath objects", name)
		}
		*field = m
	}
	return nil
}

// ByName returns the maps by their C name.
func (m *Maps) ByName() map[string]*ebpf.Map {
	out := map[string]*ebpf.Map{}
	for name, field := range mapFields(m) {
		out[name] = *field
	}
	return out
}

// Program returns a loaded program by name.
func (d *Datapath) Program(name string) *ebpf.Program { return d.programs[name] }

// Close releases this process's handles. Pinned objects stay.
func (d *Datapath) Close() {
	for _, p := range d.programs {
		p.Close()
	}
	for _, m := range d.all {
		m.Close()
	}
}

func (d *Datapath) linkPath(ifname, prog string) string {
	return filepath.Join(d.pinRoot, "links", ifname+":"+prog)
}

// AttachTCXIngress attaches prog at TCX ingress of the interface and pins the
// link under the interface name. It returns the program's ID.
func (d *Datapath) AttachTCXIngress(prog string, ifindex int, ifname string) (ebpf.ProgramID, error) {
	return d.attachTCX(prog, ifindex, ifname, ebpf.AttachTCXIngress)
}

// AttachTCXEgress is AttachTCXIngress at TCX egress.
func (d *Datapath) AttachTCXEgress(prog string, ifindex int, ifname string) (ebpf.ProgramID, error) {
	return d.attachTCX(prog, ifindex, ifname, ebpf.AttachTCXEgress)
}

func (d *Datapath) attachTCX(prog string, ifindex int, ifname string, at ebpf.AttachType) (ebpf.ProgramID, error) {
	p := d.programs[prog]
	if p == nil {
		return 0, fmt.Errorf("unknown program %s", prog)
	}
	l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: p, Attach: at})
	if err != nil {
		return 0, fmt.Errorf("attach %s to %s: %w", prog, ifname, err)
	}
	defer l.Close()
	if d.pinRoot != "" {
		path := d.linkPath(ifname, prog)
		os.Remove(path) // a stale pin from an interface that no longer exists
		if err := l.Pin(path); err != nil {
			return 0, fmt.Errorf("pin link %s: %w", path, err)
		}
	}
	return programID(p)
}

// DetachTCX removes the pinned link of prog on ifname. The link goes away with
// its last reference; it is no error if it is already gone.
func (d *Datapath) DetachTCX(prog, ifname string) error {
	path := d.linkPath(ifname, prog)
	l, err := link.LoadPinnedLink(path, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		// A link whose interface vanished may not load: the pin is all that is left.
		if rmErr := os.Remove(path); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
			return fmt.Errorf("remove link pin %s: %w", path, rmErr)
		}
		return nil
	}
	defer l.Close()
	if err := l.Unpin(); err != nil {
		return fmt.Errorf("unpin link %s: %w", path, err)
	}
	return nil
}

// LinkedProgramID returns the program a pinned link on ifname runs, or 0.
func (d *Datapath) LinkedProgramID(prog, ifname string) ebpf.ProgramID {
	l, err := link.LoadPinnedLink(d.linkPath(ifname, prog), nil)
	if err != nil {
		return 0
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		return 0
	}
	return info.Program
}

// objectBTF is the type information of the embedded objects. Every object
// is built from the same headers: from_container's has every type.
var objectBTF = sync.OnceValues(func() (*btf.Spec, error) {
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(_FromContainerBytes))
	if err != nil {
		return nil, fmt.Errorf("read datapath BTF: %w", err)
	}
	return spec, nil
})

// EnumNames returns value -> name for a C enum of the datapath, read from the
// object's BTF so the names can never drift from the C definition.
func EnumNames(enum string) (map[uint64]string, error) {
	spec, err := objectBTF()
	if err != nil {
		return nil, err
	}
	var e *btf.Enum
	if err := spec.TypeByName(enum, &e); err != nil {
		return nil, fmt.Errorf("enum %s: %w", enum, err)
	}
	names := make(map[uint64]string, len(e.Values))
	for _, v := range e.Values {
		names[v.Value] = v.Name
	}
	return names, nil
}

// RemovePins deletes the pinned maps, programs and links of a datapath with no
// endpoints left, and the pin root itself; then its parent (DefaultPinRoot's
// /sys/fs/bpf/ebpfnet) if no other instance is left there.
func RemovePins(pinRoot string) error {
	if err := os.RemoveAll(pinRoot); err != nil {
		return err
	}
	os.Remove(filepath.Dir(pinRoot)) // fails while not empty, or on a mount point
	return nil
}
