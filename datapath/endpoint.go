package datapath

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"

	"github.com/ebpfnet/ebpfnet/datapath/plumbing"
	"github.com/ebpfnet/ebpfnet/datapath/ports"
	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
	"github.com/ebpfnet/ebpfnet/loader"
	"github.com/ebpfnet/ebpfnet/maps"
)

// AttachOptions are the flags of `ebpfnet attach`.
type AttachOptions struct {
	Mode    Mode            // ModeBridge or ModeNone
	Network string          // bridge mode; empty: the default network
	IP      string          // bridge mode; empty: allocate
	IP6     string          // bridge mode on a dual-stack network; empty: allocate
	Ports   []ports.Mapping // bridge mode: ports to publish
	// PortRequests are published like Ports, and may ask for one free host
	// port of a range or an ephemeral one (ports.ParseSpec).
	PortRequests []ports.Request
	Target       string // netns name, netns path or PID
	Name         string // endpoint name; empty: derived from Target (or ContainerID and IfName)
	IfName       string // bridge mode: container interface; empty: eth0
	MAC          string // bridge mode: container MAC; empty: derived from the IP
	Gateway      string // bridge mode: expected gateway (e.g. from delegated IPAM); empty: the network's
	// ContainerID is the runtime's key for the endpoint (CNI_CONTAINERID);
	// with IfName it identifies the endpoint, see EndpointFor.
	ContainerID string
	// ContainerName is the runtime's name of the container, shown where
	// users read names (ls, errors, metrics): a Kubernetes pod's
	// namespace/name from the CNI args kubelet passes. Empty: none known.
	ContainerName string
	// FromCluster says IP and MAC were allocated in the cluster store, as
	// an overlay network's must be.
	FromCluster bool
	DNSOptions  // --network-alias, --dns, --add-host (dns.go)
	// OwnNetns marks a namespace the caller created for the endpoint
	// (ebpfnet run): rm and prune delete it with the endpoint.
	OwnNetns bool
	// TCXLink attaches from_container with a pinned TCX link instead of a
	// tc filter under a clsact qdisc (loader/tc.go), for runtimes whose
	// other plugins add a qdisc of their own to the host veth: CNI's
	// bandwidth plugin adds an ingress qdisc, which a clsact qdisc
	// excludes (both are ffff:). It costs the TCX grace period.
	TCXLink bool
}

// Attach connects a network namespace in bridge or none mode.
func (i *Instance) Attach(o AttachOptions) (Endpoint, error) {
	var ep Endpoint
	err := i.withStore(func(st *store) (err error) {
		start := time.Now()
		if ep, err = i.attach(st, o, start); err != nil {
			if i.dp != nil {
				// A default network made by this failed attach is gone again.
				i.releaseIfUnused(st)
			}
			return err
		}
		if ep.Mode == ModeBridge {
			return nil // observed in the transaction that ended the attach
		}
		return st.observe(OpAttach, time.Since(start))
	})
	return ep, err
}

func (i *Instance) attach(st *store, o AttachOptions, start time.Time) (Endpoint, error) {
	if o.Mode != ModeBridge && o.Mode != ModeNone {
		return Endpoint{}, fmt.Errorf("attach supports bridge mode (--network=bridge or a network's name) and --network=none; use `ebpfnet run` for host and container: modes")
	}
	var err error
	if o.ContainerName != "" {
		if err := validContainerName(o.ContainerName); err != nil {
			return Endpoint{}, err
		}
	}
	if o.PortRequests, err = ports.CheckRequests(append(ports.Requests(o.Ports), o.PortRequests...)); err != nil {
		return Endpoint{}, err
	}
	o.Ports = nil // all in PortRequests now
	if len(o.PortRequests) > 0 && o.Mode != ModeBridge {
		return Endpoint{}, errors.New("published ports need bridge mode (--network=bridge or a network's name)")
	}
	ns, err := netnsutil.Resolve(o.Target)
	if errors.Is(err, os.ErrNotExist) {
		return Endpoint{}, notFound(err.Error())
	}
	if err != nil {
		return Endpoint{}, err
	}
	if cur, err := netnsutil.Current(); err == nil && cur.Ino == ns.Ino {
		return Endpoint{}, fmt.Errorf("target %s is the host's own network namespace (that is --network=host)", o.Target)
	}
	if err := checkOwner(o); err != nil {
		return Endpoint{}, err
	}
	if err := CheckDNSOptions(o.DNSOptions); err != nil {
		return Endpoint{}, err
	}
	eps, err := st.endpointsView() // read only
	if err != nil {
		return Endpoint{}, err
	}
	name := o.Name
	if name == "" && o.ContainerID != "" {
		name = ownedEndpointName(o.ContainerID, o.IfName, eps)
	} else if name == "" {
		name = endpointName(o.Target)
	}
	if err := netnsutil.ValidName(name); err != nil {
		return Endpoint{}, fmt.Errorf("endpoint name: %w", err)
	}
	for _, e := range eps {
		if e.Name == name {
			return Endpoint{}, existsf("endpoint %s already exists", name)
		}
		if o.ContainerID != "" && e.ContainerID == o.ContainerID && e.Interface() == cmp.Or(o.IfName, defaultIfName) {
			return Endpoint{}, existsf("container %s already has interface %s (endpoint %s)", o.ContainerID, e.Interface(), e.Name)
		}
		if e.NetnsIno == ns.Ino && sharesInterface(e, o) {
			return Endpoint{}, existsf("target %s is already attached as endpoint %s", o.Target, e.Name)
		}
	}
	ep := Endpoint{Name: name, Mode: o.Mode, Netns: ns.Ref, NetnsIno: ns.Ino, OwnNetns: o.OwnNetns, ContainerID: o.ContainerID,
		ContainerName: o.ContainerName, Aliases: o.Aliases, DNS: o.DNS, ExtraHosts: o.ExtraHosts}
	if o.Mode == ModeBridge && o.IfName != "" && o.IfName != defaultIfName {
		ep.IfName = o.IfName
	}
	// Every step works in the namespace resolved here (target.go).
	tgt, err := openTarget(ns)
	if err != nil {
		return Endpoint{}, err
	}
	defer tgt.close()
	var rollback undo
	defer rollback.run()
	// The namespace's first endpoint gets its resolv.conf and hosts (a
	// runtime's container, with a ContainerID, has its own /etc).
	withEtc := o.ContainerID == "" && !slices.ContainsFunc(eps, func(e Endpoint) bool { return e.NetnsIno == ns.Ino })
	var list []step
	if o.Mode == ModeBridge {
		if list, err = i.bridgeSteps(st, &ep, o, tgt, eps, withEtc, start, &rollback); err != nil {
			return Endpoint{}, err
		}
	} else {
		list = []step{{name: "netlink", do: func() error { return setLoopbackUp(tgt) }}}
		if withEtc {
			list = append(list, step{name: "resolv.conf and hosts",
				do: func() error {
					if err := i.writeEtcFiles(&ep, st); err != nil {
						return fmt.Errorf("write resolv.conf and hosts: %w", err)
					}
					return nil
				},
				undo: func() { removeEtcFiles(ep) },
			})
		}
		list = append(list, at("before-save"), step{name: "store write", do: func() error {
			ep.Created = time.Now().UTC()
			if err := st.putEndpoint(ep); err != nil {
				return fmt.Errorf("save endpoint: %w", err)
			}
			return nil
		}})
	}
	if err := runSteps(&rollback, list...); err != nil {
		return Endpoint{}, err
	}
	rollback = nil
	i.log.Info("attached", "endpoint", ep.Name, "mode", ep.Mode, "network", ep.Network, "ip", ep.IP, "ip6", ep.IP6)
	return ep, nil
}

// endpointName derives a name from a TARGET: the netns name, a path's base
// name, or pid-N.
func endpointName(target string) string {
	if strings.ContainsRune(target, '/') {
		base := filepath.Base(target)
		if base == "net" { // /proc/N/ns/net
			return "pid-" + filepath.Base(filepath.Dir(filepath.Dir(target)))
		}
		return base
	}
	if n, err := strconv.Atoi(target); err == nil && n > 0 {
		return "pid-" + target
	}
	return target
}

// bridgeSteps checks and prepares a bridge endpoint (its network, made if
// it is the default one and missing, with the undo on rollback; address,
// MAC, ports) and returns the steps that plumb and program it and save
// its record; withEtc: they write its namespace's resolv.conf and hosts.
// The last one also adds the attach's latency since start.
//
// Two of the steps run beside the others, each on a goroutine of its
// own, from right after the intent, and are waited for before the attach
// reports: the record's synced write (two fdatasyncs, 1-2 ms on this
// disk) and the resolv.conf and hosts files, which need nothing the
// kernel changes find out (nor they anything of them). The check that
// the container end is what the attach reports (verifyPlumbed) is not
// one of them: it runs last, so that a target re-pointed during the
// attach fails it. The store: the intent is written first (unsynced: a bbolt commit in the
// page cache, which a crash of the process cannot lose), before any
// change the attach makes. The record follows at once, synced, while the
// attach makes the veth, the container end, the maps and the program.
// The attach waits for it, then writes the record as the kernel changes
// completed it and ends the intent in one unsynced transaction
// (finishAttach says why a power loss loses nothing that matters
// there). Until the intent ends, a crash at any point, with or without
// the record, rolls the attach back (undoAttach), and so does a failure
// (the undos wait for the goroutines first). Both, and the intent, name
// the etc directory, so that a rollback removes the files (only files
// ebpfnet wrote: removeEtcFiles).
func (i *Instance) bridgeSteps(st *store, ep *Endpoint, o AttachOptions, ns target, eps []Endpoint, withEtc bool, start time.Time, rollback *undo) ([]step, error) {
	netName := cmp.Or(o.Network, DefaultNetwork)
	n, ok, err := st.network(netName)
	if err != nil {
		return nil, err
	}
	if !ok && netName != DefaultNetwork {
		return nil, notFoundf("network %s not found", netName)
	}
	used := map[netip.Addr]string{}
	for _, e := range eps {
		if e.Network == netName {
			if e.IP.IsValid() {
				used[e.IP] = e.Name
			}
			if e.IP6.IsValid() {
				used[e.IP6] = e.Name
			}
		}
	}
	if ok && n.VNI != 0 && !o.FromCluster {
		// Its addresses are the cluster's: the local IPAM could hand out one
		// that another host holds.
		return nil, fmt.Errorf("network %s is an overlay network: its addresses come from the cluster store (ebpfnet --cluster-store ... attach)", n.Name)
	}
	var ip netip.Addr
	if ok && o.IP != "" {
		if ip, err = checkRequestedIP(n, o.IP, used); err != nil {
			return nil, err
		}
	}
	if len(o.PortRequests) > 0 && ok && n.Internal {
		return nil, fmt.Errorf("network %s is --internal: it has no outside to publish ports to", n.Name)
	}
	if o.PortRequests, err = portFamilies(o.PortRequests, n, ok); err != nil {
		return nil, err
	}
	var ports []ports.Mapping
	if err := runSteps(nil,
		step{name: "port checks", do: func() (err error) { ports, err = portsFor(st, o, ep.Name, eps); return err }},
		step{name: "netlink", do: func() error { return checkNoInterface(ns, ep.Interface()) }},
	); err != nil {
		return nil, err
	}

	if !ok {
		// Docker's default network appears on first use.
		if n, err = i.createNetwork(st, DefaultNetworkOptions(DefaultNetwork)); err != nil {
			return nil, fmt.Errorf("create default network: %w", err)
		}
		rollback.add(func() {
			if err := i.removeNetwork(st, n); err != nil {
				i.log.Warn("roll back default network", "network", n.Name, "err", err)
			}
		})
		if o.IP != "" {
			if ip, err = checkRequestedIP(n, o.IP, used); err != nil {
				return nil, err
			}
		}
	}
	if !ip.IsValid() && n.Subnet.IsValid() {
		if ip, err = allocateIP(n, used); err != nil {
			return nil, err
		}
	}
	var ip6 netip.Addr
	switch {
	case o.IP6 != "":
		if ip6, err = checkRequestedIP6(n, o.IP6, used); err != nil {
			return nil, err
		}
	case n.Subnet6.IsValid():
		if ip6, err = allocateIP6(n, used); err != nil {
			return nil, err
		}
	}
	if err := checkGatewayOf(n, o.Gateway); err != nil {
		return nil, err
	}
	mac, err := endpointMAC(o.MAC, ip)
	if err != nil {
		return nil, err
	}
	views, err := i.datapath()
	if err != nil {
		return nil, err
	}
	ep.Network, ep.IP, ep.IP6, ep.MAC = n.Name, ip, ip6, mac.String()
	ep.HostVeth = "veth" + randomHex(4)[:7]

	ep.Ports = ports
	var mapped time.Duration
	var bs []maps.PortEntry
	intent := *ep
	if withEtc {
		// What the etc files step will write, so that a rollback from the
		// intent or the first record removes it too.
		intent.EtcDir = EtcDir(ep.Netns)
	}
	var saved, etcWritten func() error
	list := []step{
		i.attachIntent(st, intent, ports),
		{name: "store write",
			do: func() error {
				ep.Created = time.Now().UTC()
				rec := *ep // a copy: the steps below complete ep
				rec.EtcDir = intent.EtcDir
				saved = st.putPendingEndpoint(rec)
				return nil
			},
			undo: func() {
				saved() // the store takes one write at a time
				if err := st.dropEndpoint(ep.Name); err != nil {
					i.log.Warn("remove the record of a failed attach", "endpoint", ep.Name, "err", err)
				}
			},
		},
	}
	if withEtc {
		list = append(list, step{
			do: func() error {
				// On a copy: the steps below complete ep meanwhile. It
				// reads the store (networks, and the endpoints this
				// session read already), which the record's write allows.
				e := *ep
				wait := beside(func() error { return i.writeEtcFiles(&e, st) })
				etcWritten = sync.OnceValue(func() error {
					err := wait()
					ep.EtcDir = e.EtcDir
					if err != nil {
						return fmt.Errorf("write resolv.conf and hosts: %w", err)
					}
					return nil
				})
				return nil
			},
			undo: func() {
				etcWritten()
				e := *ep
				e.EtcDir = intent.EtcDir // also what a failed write left
				removeEtcFiles(e)
			},
		})
	}
	list = append(list,
		step{name: "netlink", do: func() error { return i.plumbVeth(ep, n, ns, rollback) }},
		step{name: "sysctl", do: func() error { return enableForwarding(ep.HostVeth, ip6.IsValid()) }},
		at("after-veth"),
		step{name: "map writes",
			do: func() error {
				start := time.Now()
				err := views.PutEndpoint(maps.Endpoint{IP: ip, MAC: mac, NetID: n.ID, Ifindex: ep.HostIfindex, Overlay: n.VNI != 0, IP6: ip6})
				mapped = time.Since(start)
				return err
			},
			undo: func() { views.DeleteEndpoint(ep.HostIfindex, ip) },
		},
		step{name: "map writes",
			do: func() (err error) {
				if ep.NetnsCookie, err = ns.cookie(); err != nil {
					return err
				}
				return views.PutLBClient(ep.NetnsCookie)
			},
			undo: func() {
				if !slices.ContainsFunc(eps, func(e Endpoint) bool { return e.NetnsCookie == ep.NetnsCookie }) {
					views.DeleteLBClient(ep.NetnsCookie)
				}
			},
		},
		step{name: "map writes",
			do: func() error {
				bs = bindings(activePorts(*ep, eps), *ep)
				return views.PutPortEntries(bs)
			},
			undo: func() { views.DeletePortEntries(bs) },
		},
		at("after-maps"),
		// The program, attached after the maps (it drops traffic from
		// interfaces they do not know yet), then the host end up: only now
		// can the container's traffic flow, and all of it through the
		// program.
		i.attachProgram(&ep.HostIfindex, ep.HostVeth, o.TCXLink),
		at("after-link"),
		step{name: "netlink", do: func() error { return plumbing.SetLinkUp(ep.HostIfindex) }},
		// What the caller is told must be what its namespace has, checked
		// after every change, as late as can be (a target re-pointed
		// meanwhile fails the attach: TestCNIAddFailsWhenItsSandboxIsReplaced).
		// The record's fsyncs go on beside it.
		step{name: "netlink", do: func() error { return verifyPlumbed(ns, o.Target, *ep, n) }},
		step{name: "resolv.conf and hosts", do: func() error {
			if etcWritten == nil {
				return nil
			}
			return etcWritten()
		}},
		// The record is on disk before the attach reports.
		step{name: "store write", do: func() error {
			if err := saved(); err != nil {
				return fmt.Errorf("save endpoint: %w", err)
			}
			return nil
		}},
		at("before-save"),
		step{name: "store write", do: func() error {
			if err := st.finishAttach(*ep, mapped, time.Since(start)); err != nil {
				return fmt.Errorf("save endpoint: %w", err)
			}
			return nil
		}},
	)
	return list, nil
}

// beside runs fn on a goroutine of its own, beside the caller's next
// steps, and returns what waits for it and gives its error (as often as
// called).
func beside(fn func() error) (wait func() error) {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	return sync.OnceValue(func() error { return <-done })
}

// portsFor assigns the host ports an endpoint named name publishes,
// checking them against the host's sockets and the published ports of eps.
func portsFor(st *store, o AttachOptions, name string, eps []Endpoint) ([]ports.Mapping, error) {
	if len(o.PortRequests) == 0 {
		// What Assign gives for no requests, without the table of every
		// endpoint's published ports it would build first.
		return []ports.Mapping{}, nil
	}
	runtimeOwn, err := st.runtimeSocketsOf(o.ContainerID)
	if err != nil {
		return nil, err
	}
	free, err := ports.HostPortProbe(runtimeOwn)
	if err != nil {
		return nil, err
	}
	return ports.Assign(o.PortRequests, holders(eps), ports.Holder{Owner: Endpoint{Name: name}.describe(), ContainerID: o.ContainerID}, free)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Detach removes an endpoint: its veth pair (and with it the program's
// filter; an older build's pinned TCX link explicitly), datapath entries
// and record. TARGET may be the endpoint name or anything attach accepted;
// a namespace that vanished is still detached by name.
func (i *Instance) Detach(target string) (Endpoint, error) {
	var ep Endpoint
	err := i.withStore(func(st *store) (err error) {
		if ep, err = findEndpoint(st, target); err != nil {
			return err
		}
		if err := i.detachEndpoint(st, ep); err != nil {
			return err
		}
		i.log.Info("detached", "endpoint", ep.Name)
		return i.releaseIfUnused(st)
	})
	return ep, err
}

// detachEndpoint removes a stored endpoint: its kernel side, then its
// record. A teardown that fails keeps the record, so a retry (or the
// daemon) finishes the job.
func (i *Instance) detachEndpoint(st *store, ep Endpoint) error {
	if err := i.rememberRuntimeSockets(st, ep); err != nil {
		// The runtime's next ADD of the container may then find its own
		// socket on the port and refuse it.
		i.log.Warn("remember the runtime's sockets of the published ports", "endpoint", ep.Name, "err", err)
	}
	start := time.Now()
	failed, err := i.beginRemoval(st, intent{Kind: intentDetach, Endpoint: &ep})
	if err != nil {
		return err
	}
	if err := runSteps(nil,
		step{do: func() error { return i.teardown(ep) }},
		at("detach-before-delete"),
		step{name: "store write", do: func() error { return st.deleteEndpoint(ep.Name) }},
	); err != nil {
		failed()
		return fmt.Errorf("detach %s: %w", ep.Name, err)
	}
	i.afterDetach(st, ep)
	return st.observe(OpDetach, time.Since(start))
}

// afterDetach is what the container's other interfaces take over from a
// removed endpoint: its runtime-held ports and the default route.
func (i *Instance) afterDetach(st *store, ep Endpoint) {
	if err := i.forgetLBClient(st, ep); err != nil {
		i.log.Warn("forget the namespace's sockets as service clients", "endpoint", ep.Name, "err", err)
	}
	if err := i.handOverRuntimePorts(st, ep); err != nil {
		i.log.Warn("hand the published ports over to the container's other interface", "endpoint", ep.Name, "err", err)
	}
	if err := i.moveDefaultRoute(st, ep); err != nil {
		i.log.Warn("give the namespace a default route via its other network", "endpoint", ep.Name, "err", err)
	}
}

// moveDefaultRoute gives a namespace that lost its default route with
// gone's interface one via the gateway of another network it is on, as
// Docker does when a container leaves the network of its gateway: its
// published ports, handed over to that network, answer again.
func (i *Instance) moveDefaultRoute(st *store, gone Endpoint) error {
	if gone.Mode != ModeBridge || gone.PeerName != "" {
		return nil
	}
	eps, err := st.endpoints()
	if err != nil {
		return err
	}
	k := slices.IndexFunc(eps, func(e Endpoint) bool {
		return e.NetnsIno == gone.NetnsIno && e.Mode == ModeBridge && e.PeerName == ""
	})
	if k < 0 {
		return nil
	}
	next := eps[k]
	n, ok, err := st.network(next.Network)
	if err != nil || !ok {
		return err
	}
	ns, err := netnsutil.Resolve(next.Netns)
	if err != nil || ns.Ino != next.NetnsIno {
		return nil // the namespace is gone: nothing to route
	}
	moved := false
	err = plumbing.WithHandle(ns, func(h *netlink.Handle) (err error) {
		moved, err = plumbing.AddDefaultRouteIfNone(h, next.Interface(), n.Gateway)
		return err
	})
	if err != nil || !moved {
		return err
	}
	next.DefaultRoute = true
	return st.putEndpoint(next)
}

// teardown undoes the kernel side of an attach. It keeps going past errors
// so a half-gone endpoint is still cleaned up as far as possible.
func (i *Instance) teardown(ep Endpoint) error {
	if err := runAll(step{name: "resolv.conf and hosts", do: func() error { return removeEtcFiles(ep) }}); err != nil {
		i.log.Warn("remove resolv.conf and hosts", "endpoint", ep.Name, "err", err)
	}
	if ep.Mode != ModeBridge {
		return nil
	}
	views, err := i.datapath()
	if err != nil {
		return err
	}
	flushDone := make(chan error, 1)
	return runAll(
		i.detachProgram(ep.HostVeth),
		at("detach-after-unlink"),
		step{name: "map writes", do: func() error {
			var errs []error
			if bound, err := boundPorts(views, ep); err != nil {
				errs = append(errs, err)
			} else {
				errs = append(errs, views.DeletePortEntries(bound))
			}
			return errors.Join(append(errs, views.DeleteEndpoint(ep.HostIfindex, ep.IP))...)
		}},
		at("detach-after-maps"),
		// Its flows die with it: a new endpoint may get the address. With
		// the program and the maps gone no new flow of it can start, so the
		// scan (a walk of the whole conntrack table) runs while the kernel
		// deletes the veth pair, on the other CPU.
		step{do: func() error {
			go func() {
				_, err := views.DeleteEndpointFlows(ep.IP)
				flushDone <- err
			}()
			return nil
		}},
		step{name: "netlink", do: func() error {
			return plumbing.DeleteVeth(ep.HostVeth, ep.HostIfindex)
		}},
		at("detach-after-veth"),
		step{name: "conntrack flush", do: func() error { return <-flushDone }}, // what the veth delete did not hide
	)
}

// ErrNotFound is what the errors of lookups that found nothing (no such
// endpoint, network or target namespace) are: the API answers them with 404.
var ErrNotFound = errors.New("not found")

// notFound is an error message that is ErrNotFound.
type notFound string

func (e notFound) Error() string              { return string(e) }
func (notFound) Is(target error) bool         { return target == ErrNotFound }
func notFoundf(format string, a ...any) error { return notFound(fmt.Sprintf(format, a...)) }

// ErrExists is what the errors of changes refused because what they would
// make is already there (an endpoint of that name, a target already
// attached, an interface of that name) are: the API answers them with 409,
// as Docker answers a name in use.
var ErrExists = errors.New("already exists")

// exists is an error message that is ErrExists.
type exists string

func (e exists) Error() string              { return string(e) }
func (exists) Is(target error) bool         { return target == ErrExists }
func existsf(format string, a ...any) error { return exists(fmt.Sprintf(format, a...)) }

func findEndpoint(st *store, target string) (Endpoint, error) {
	if ep, ok, err := st.endpoint(target); err != nil || ok {
		return ep, err
	}
	if ep, ok, err := st.endpoint(endpointName(target)); err != nil || ok {
		return ep, err
	}
	ns, nsErr := netnsutil.Resolve(target)
	if nsErr == nil {
		eps, err := st.endpoints()
		if err != nil {
			return Endpoint{}, err
		}
		for _, e := range eps {
			if e.NetnsIno == ns.Ino {
				return e, nil
			}
		}
	}
	// A container's name last: a namespace of that name is more specific.
	if ep, ok, err := endpointByContainerName(st, target); err != nil || ok {
		return ep, err
	}
	if nsErr != nil {
		return Endpoint{}, notFoundf("no endpoint %s", target)
	}
	return Endpoint{}, notFoundf("target %s is not attached", target)
}

// Endpoints lists the instance's endpoints, sorted by name.
func (i *Instance) Endpoints() ([]Endpoint, error) {
	var out []Endpoint
	err := i.withStore(func(st *store) (err error) {
		out, err = st.endpoints()
		return err
	})
	slices.SortFunc(out, func(a, b Endpoint) int { return cmp.Compare(a.Name, b.Name) })
	return out, err
}

// EndpointDetail is what `ebpfnet inspect` shows.
type EndpointDetail struct {
	Endpoint
	ProgramID ebpf.ProgramID `json:"program_id,omitempty"`
	Tx        maps.Counter   `json:"tx"`
	Rx        maps.Counter   `json:"rx"`
}

// Inspect returns an endpoint with its attached program and counters.
func (i *Instance) Inspect(target string) (EndpointDetail, error) {
	var d EndpointDetail
	err := i.withStore(func(st *store) error {
		ep, err := findEndpoint(st, target)
		if err != nil {
			return err
		}
		d.Endpoint = ep
		if ep.Mode != ModeBridge {
			return nil
		}
		views, err := i.datapath()
		if err != nil {
			return err
		}
		d.ProgramID, _ = loader.TCIngressProgramID(loader.ProgFromContainer, ep.HostIfindex)
		if d.ProgramID == 0 { // attached by an older build
			d.ProgramID = i.dp.LinkedProgramID(loader.ProgFromContainer, ep.HostVeth)
		}
		d.Tx, d.Rx, _ = views.EndpointCounters(ep.HostIfindex)
		return nil
	})
	return d, err
}
