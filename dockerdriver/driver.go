// Package dockerdriver is ebpfnet as a Docker remote network driver (the
// legacy plugin protocol dockerd 20.10+ speaks over a unix socket): networks
// created with `docker network create -d ebpfnet` are ebpfnet networks, and
// containers on them get ebpfnet endpoints, published ports and masquerade
// in eBPF. It is a front end: it maps Docker's JSON to datapath's options
// and datapath's errors to Docker's {"Err": ...}, and keeps no state of its
// own (names derive from Docker's IDs), so a restarted plugin carries on.
// With dockerd's API reachable it also records each endpoint's container
// name, for users to read (names.go).
package dockerdriver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"strings"

	"github.com/ebpfnet/ebpfnet/datapath"
	"github.com/ebpfnet/ebpfnet/datapath/ports"
	"github.com/ebpfnet/ebpfnet/overlay"
)

// ContentType is what Docker's plugin clients send and expect.
const ContentType = "application/vnd.docker.plugins.v1.2+json"

// Driver serves the NetworkDriver protocol for one ebpfnet instance.
type Driver struct {
	inst    *datapath.Instance
	log     *slog.Logger
	names   *nameResolver  // nil: container names are not looked up
	overlay *overlay.Agent // nil: no cluster (ipam.go)
}

// New returns a driver on inst; log may be nil.
func New(inst *datapath.Instance, log *slog.Logger) *Driver {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Driver{inst: inst, log: log}
}

// NetworkName is the ebpfnet network of a Docker network: its short ID, as
// `docker network ls` shows it (Docker does not send the network's name).
func NetworkName(networkID string) string { return short(networkID, 12) }

// EndpointName is the ebpfnet endpoint of a Docker endpoint: its short ID
// (the EndpointID `docker network inspect` and `docker inspect` show).
// Docker never tells a network driver the container's name: it is looked
// up later, for display only (names.go).
func EndpointName(endpointID string) string { return short(endpointID, 12) }

func short(id string, n int) string { return id[:min(n, len(id))] }

// requestError is a refusal of what Docker asked (400), as opposed to a
// failure to do it (500).
type requestError struct{ error }

func badRequest(format string, args ...any) error {
	return requestError{fmt.Errorf(format, args...)}
}

type handler func(body []byte) (any, error)

func (d *Driver) routes() map[string]handler {
	r := map[string]handler{
		"/Plugin.Activate": func([]byte) (any, error) {
			return map[string][]string{"Implements": {"NetworkDriver", "IpamDriver"}}, nil
		},
		"/NetworkDriver.GetCapabilities": func([]byte) (any, error) {
			return map[string]string{"Scope": "local", "ConnectivityScope": "local"}, nil
		},
		"/NetworkDriver.CreateNetwork":               d.createNetwork,
		"/NetworkDriver.DeleteNetwork":               d.deleteNetwork,
		"/NetworkDriver.CreateEndpoint":              d.createEndpoint,
		"/NetworkDriver.DeleteEndpoint":              d.deleteEndpoint,
		"/NetworkDriver.EndpointOperInfo":            func([]byte) (any, error) { return map[string]any{"Value": map[string]any{}}, nil },
		"/NetworkDriver.Join":                        d.join,
		"/NetworkDriver.Leave":                       d.leave,
		"/NetworkDriver.ProgramExternalConnectivity": d.programExternalConnectivity,
		"/NetworkDriver.RevokeExternalConnectivity":  d.revokeExternalConnectivity,
		// Node discovery is for multi-host drivers; a local one ignores it.
		"/NetworkDriver.DiscoverNew":    func([]byte) (any, error) { return struct{}{}, nil },
		"/NetworkDriver.DiscoverDelete": func([]byte) (any, error) { return struct{}{}, nil },
	}
	for path, h := range d.ipamRoutes() {
		r[path] = h
	}
	return r
}

// Handler returns the http.Handler to serve on the plugin socket.
func (d *Driver) Handler() http.Handler {
	routes := d.routes()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := routes[r.URL.Path]
		if !ok || r.Method != http.MethodPost {
			reply(w, http.StatusNotFound, errBody(fmt.Sprintf("ebpfnet does not implement %s", strings.TrimPrefix(r.URL.Path, "/"))))
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			reply(w, http.StatusBadRequest, errBody("read request: "+err.Error()))
			return
		}
		resp, err := h(body)
		if err != nil {
			status := http.StatusInternalServerError
			if errors.As(err, new(requestError)) {
				status = http.StatusBadRequest
			}
			d.log.Warn("docker request failed", "method", r.URL.Path, "err", err)
			reply(w, status, errBody("ebpfnet: "+err.Error()))
			return
		}
		d.log.Debug("docker request", "method", r.URL.Path)
		reply(w, http.StatusOK, resp)
	})
}

func errBody(msg string) any { return map[string]string{"Err": msg} }

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", ContentType)
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func decode(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return badRequest("bad request: %v", err)
	}
	return nil
}

// --- networks ---

type ipamData struct {
	AddressSpace string
	Pool         string
	Gateway      string
	AuxAddresses map[string]string
}

type createNetworkRequest struct {
	NetworkID string
	Options   map[string]json.RawMessage
	IPv4Data  []ipamData
	IPv6Data  []ipamData
}

func (d *Driver) createNetwork(body []byte) (any, error) {
	var req createNetworkRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	o, err := NetworkOptions(req.NetworkID, req.Options, req.IPv4Data, req.IPv6Data)
	if err != nil {
		return nil, err
	}
	if name, err := d.overlayFor(req.IPv4Data); err != nil {
		return nil, err
	} else if name != "" {
		if o.IPv6 {
			return nil, badRequest("overlay network %s is IPv4-only: create the Docker network without --ipv6", name)
		}
		n, err := d.overlay.EnsureLocalPart(context.Background(), name)
		if err != nil {
			return nil, err
		}
		if err := d.linkOverlay(req.NetworkID, n.Name); err != nil {
			return nil, err
		}
		d.log.Info("docker network on an overlay network", "id", short(req.NetworkID, 12), "network", n.Name, "subnet", n.Subnet)
		return struct{}{}, nil
	}
	// Ensure, not create: a network that exists with the same settings
	// (Docker repeating itself after a restart) is no error.
	n, created, err := d.inst.EnsureNetwork(o)
	if err != nil {
		return nil, err
	}
	d.log.Info("docker network", "id", short(req.NetworkID, 12), "network", n.Name, "subnet", n.Subnet, "subnet6", n.Subnet6, "bridge", n.Bridge, "created", created)
	return struct{}{}, nil
}

// Network options: Docker's own bridge options, and ebpfnet's under the
// "ebpfnet." prefix. Values arrive as strings (docker network create -o).
const (
	optBridgeName = "com.docker.network.bridge.name"
	optICC        = "com.docker.network.bridge.enable_icc"
	optMasquerade = "com.docker.network.bridge.enable_ip_masquerade"
	optMTU        = "com.docker.network.driver.mtu"
	optGeneric    = "com.docker.network.generic"
	optInternal   = "com.docker.network.internal"
	optIPv6       = "com.docker.network.enable_ipv6"
	optIPv4       = "com.docker.network.enable_ipv4" // Docker 28: false with --ipv4=false
	optPortMap    = "com.docker.network.portmap"
)

// OptionNames lists the -o options the driver understands, for its errors
// and documentation.
var OptionNames = []string{
	optBridgeName, optICC, optMasquerade, optMTU,
	"ebpfnet.bridge", "ebpfnet.icc", "ebpfnet.ip_masquerade", "ebpfnet.mtu", "ebpfnet.uplink",
}

// NetworkOptions maps a CreateNetwork request to datapath's options,
// refusing what ebpfnet cannot do rather than ignoring it.
func NetworkOptions(networkID string, opts map[string]json.RawMessage, v4, v6 []ipamData) (datapath.NetworkOptions, error) {
	if len(networkID) < 12 {
		return datapath.NetworkOptions{}, badRequest("invalid network ID %q", networkID)
	}
	o := datapath.DefaultNetworkOptions(NetworkName(networkID))
	o.Bridge = "br-" + short(networkID, 12) // as Docker's bridge driver names it
	ipv4, ipv6, internal := true, false, false
	if raw, ok := opts[optIPv6]; ok && json.Unmarshal(raw, &ipv6) != nil {
		return o, badRequest("option %s: want true or false", optIPv6)
	}
	if raw, ok := opts[optIPv4]; ok && json.Unmarshal(raw, &ipv4) != nil {
		return o, badRequest("option %s: want true or false", optIPv4)
	}
	if raw, ok := opts[optInternal]; ok && json.Unmarshal(raw, &internal) != nil {
		return o, badRequest("option %s: want true or false", optInternal)
	}
	o.Internal = internal
	var err error
	switch {
	case !ipv4:
		// An IPv6-only network (docker network create --ipv4=false --ipv6).
		if !ipv6 {
			return o, badRequest("--ipv4=false needs --ipv6")
		}
		o.NoIPv4 = true
	case len(v4) == 0:
		return o, badRequest("no IPv4 subnet: give one with --subnet")
	case len(v4) > 1:
		return o, badRequest("one IPv4 subnet per network is supported, got %d", len(v4))
	default:
		o.Subnet = v4[0].Pool
		if o.Gateway, err = gatewayAddr(v4[0].Gateway, false); err != nil {
			return o, err
		}
	}
	// IPv6Data without enable_ipv6 is ignored, as Docker's bridge driver
	// does (and dockerd allocates no IPv6 pool for such a network).
	if ipv6 {
		o.IPv6 = true
		switch len(v6) {
		case 0:
			// No pool from Docker's IPAM: a free unique local /64, the
			// endpoints' addresses told to Docker at CreateEndpoint.
		case 1:
			if p := v6[0].Pool; p != "::/0" { // ::/0: the null IPAM driver's
				o.Subnet6 = p
				if o.Gateway6, err = gatewayAddr(v6[0].Gateway, true); err != nil {
					return o, err
				}
			}
		default:
			return o, badRequest("one IPv6 subnet per network is supported, got %d", len(v6))
		}
	}
	var generic map[string]any
	if raw, ok := opts[optGeneric]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &generic); err != nil {
			return o, badRequest("options: %v", err)
		}
	}
	for k, v := range generic {
		s := fmt.Sprint(v)
		var err error
		switch k {
		case optBridgeName, "ebpfnet.bridge":
			o.Bridge = s
		case optICC, "ebpfnet.icc":
			o.ICC, err = parseBool(k, s)
		case optMasquerade, "ebpfnet.ip_masquerade":
			o.Masquerade, err = parseBool(k, s)
		case optMTU, "ebpfnet.mtu":
			if _, scanErr := fmt.Sscanf(s, "%d", &o.MTU); scanErr != nil || fmt.Sprint(o.MTU) != s {
				err = badRequest("invalid option %s=%q: want a number such as 1500", k, s)
			}
		case "ebpfnet.uplink":
			o.Uplink = s
		default:
			if strings.HasPrefix(k, "ebpfnet.") || strings.HasPrefix(k, "com.docker.network.bridge.") {
				err = badRequest("option %s is not supported by ebpfnet (supported: %s)", k, strings.Join(OptionNames, ", "))
			}
			// Other drivers' or users' options are none of ours, as with
			// Docker's bridge driver.
		}
		if err != nil {
			return o, err
		}
	}
	return o, nil
}

// gatewayAddr is the address of a gateway as Docker's IPAM gives it (a
// CIDR, or an address); "" stays "".
func gatewayAddr(gw string, v6 bool) (string, error) {
	if gw == "" {
		return "", nil
	}
	a, err := netip.ParseAddr(gw)
	if err != nil {
		p, err2 := netip.ParsePrefix(gw)
		if err2 != nil {
			return "", badRequest("invalid gateway %q", gw)
		}
		a = p.Addr()
	}
	if v6 != (a.Is6() && !a.Is4In6()) {
		family := "IPv4"
		if v6 {
			family = "IPv6"
		}
		return "", badRequest("invalid gateway %s: not an %s address", gw, family)
	}
	return a.String(), nil
}

func parseBool(k, s string) (bool, error) {
	switch strings.ToLower(s) {
	case "1", "t", "true", "yes", "on":
		return true, nil
	case "0", "f", "false", "no", "off":
		return false, nil
	}
	return false, badRequest("invalid option %s=%q: want true or false", k, s)
}

type networkRequest struct{ NetworkID string }

func (d *Driver) deleteNetwork(body []byte) (any, error) {
	var req networkRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if name := d.networkOf(req.NetworkID); name != NetworkName(req.NetworkID) {
		// The overlay network's part stays while the cluster has it (its
		// syncer removes it after); only the link goes.
		if err := os.Remove(d.overlayLinkPath(req.NetworkID)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		return struct{}{}, nil
	}
	name := NetworkName(req.NetworkID)
	if _, err := d.inst.InspectNetwork(name); err != nil {
		d.log.Info("docker network already gone", "network", name)
		return struct{}{}, nil
	}
	if err := d.inst.RemoveNetwork(name); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// --- endpoints ---

type endpointInterface struct {
	Address     string `json:",omitempty"`
	AddressIPv6 string `json:",omitempty"`
	MacAddress  string `json:",omitempty"`
}

type createEndpointRequest struct {
	NetworkID  string
	EndpointID string
	Interface  *endpointInterface
	Options    map[string]json.RawMessage
}

type createEndpointResponse struct {
	Interface *endpointInterface `json:",omitempty"`
}

func (d *Driver) createEndpoint(body []byte) (any, error) {
	var req createEndpointRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if req.Interface == nil || (req.Interface.Address == "" && req.Interface.AddressIPv6 == "") {
		return nil, badRequest("no address from Docker's IPAM for endpoint %s", short(req.EndpointID, 12))
	}
	// Without IPv4 (an IPv6-only network) the datapath checks that the
	// network has none either.
	var ip netip.Addr
	if s := req.Interface.Address; s != "" {
		p, err := netip.ParsePrefix(s)
		if err != nil || !p.Addr().Is4() {
			return nil, badRequest("invalid address %q", s)
		}
		ip = p.Addr()
	}
	var ip6 netip.Addr
	if s := req.Interface.AddressIPv6; s != "" {
		p6, err := netip.ParsePrefix(s)
		if err != nil || !p6.Addr().Is6() || p6.Addr().Is4In6() {
			return nil, badRequest("invalid IPv6 address %q", s)
		}
		ip6 = p6.Addr()
	}
	if ep, found, err := d.inst.EndpointFor(req.EndpointID, ""); err != nil {
		return nil, err
	} else if found {
		if ep.IP != ip || (ip6.IsValid() && ep.IP6 != ip6) {
			return nil, fmt.Errorf("endpoint %s exists with address %s", ep.Name, joinAddrs(ep.IP, ep.IP6))
		}
		return d.endpointReply(req.Interface, ep)
	}
	o := datapath.PrepareOptions{
		Network: d.networkOf(req.NetworkID), MAC: req.Interface.MacAddress,
		Owner: req.EndpointID, Name: EndpointName(req.EndpointID),
	}
	if ip.IsValid() {
		o.IP = ip.String()
	}
	if ip6.IsValid() {
		o.IP6 = ip6.String()
	}
	ep, err := d.inst.PrepareEndpoint(o)
	if err != nil {
		return nil, err
	}
	return d.endpointReply(req.Interface, ep)
}

func joinAddrs(ip, ip6 netip.Addr) string {
	switch {
	case !ip.IsValid():
		return ip6.String()
	case ip6.IsValid():
		return ip.String() + " and " + ip6.String()
	}
	return ip.String()
}

// endpointReply gives Docker what it did not choose itself: the MAC, and
// the IPv6 address on a dual-stack network whose IPv6 subnet is not from
// Docker's IPAM. Docker sets them on the interface when it moves it (and
// refuses to be told again what it gave).
func (d *Driver) endpointReply(in *endpointInterface, ep datapath.Endpoint) (createEndpointResponse, error) {
	out := &endpointInterface{}
	if in.MacAddress == "" {
		out.MacAddress = ep.MAC
	}
	if in.AddressIPv6 == "" && ep.IP6.IsValid() {
		n, err := d.inst.InspectNetwork(ep.Network)
		if err != nil {
			return createEndpointResponse{}, err
		}
		out.AddressIPv6 = netip.PrefixFrom(ep.IP6, n.Subnet6.Bits()).String()
	}
	return createEndpointResponse{Interface: out}, nil
}

type endpointRequest struct {
	NetworkID  string
	EndpointID string
}

func (d *Driver) deleteEndpoint(body []byte) (any, error) {
	var req endpointRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	d.forgetName(req.EndpointID)
	// Gone already (a vanished sandbox took the veth and the daemon freed
	// it) is done, not an error: Docker retries deletes after restarts.
	if _, _, err := d.inst.RemoveEndpoint(req.EndpointID, ""); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

type joinRequest struct {
	NetworkID  string
	EndpointID string
	SandboxKey string
	Options    map[string]json.RawMessage
}

type interfaceName struct {
	SrcName   string
	DstPrefix string
}

type joinResponse struct {
	InterfaceName interfaceName
	Gateway       string `json:",omitempty"`
	GatewayIPv6   string `json:",omitempty"`
}

func (d *Driver) join(body []byte) (any, error) {
	var req joinRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	ep, found, err := d.inst.EndpointFor(req.EndpointID, "")
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("endpoint %s not found", short(req.EndpointID, 12))
	}
	n, err := d.inst.InspectNetwork(ep.Network)
	if err != nil {
		return nil, err
	}
	if req.SandboxKey != "" {
		if _, err := d.inst.SetEndpointSandbox(ep.Name, req.SandboxKey); err != nil {
			return nil, err
		}
	}
	resp := joinResponse{InterfaceName: interfaceName{SrcName: ep.PeerName, DstPrefix: "eth"}}
	// An --internal network has no way out: no default route, as Docker.
	if !n.Internal {
		if n.Gateway.IsValid() { // else IPv6 only
			resp.Gateway = n.Gateway.String()
		}
		if n.Gateway6.IsValid() && ep.IP6.IsValid() {
			resp.GatewayIPv6 = n.Gateway6.String()
		}
	}
	// Looked up later, not here: dockerd holds the container's lock (names.go).
	d.learnName(req.EndpointID)
	return resp, nil
}

func (d *Driver) leave(body []byte) (any, error) {
	var req endpointRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	// Docker moves the interface back into the host namespace (under its
	// old name) on leave; DeleteEndpoint follows and removes the pair.
	if ep, found, err := d.inst.EndpointFor(req.EndpointID, ""); err == nil && found {
		d.inst.SetEndpointSandbox(ep.Name, "")
	}
	return struct{}{}, nil
}

// dockerPortBinding is one entry of com.docker.network.portmap.
type dockerPortBinding struct {
	Proto       int
	IP          string
	Port        int
	HostIP      string
	HostPort    int
	HostPortEnd int
}

// PortRequests maps Docker's port bindings to datapath's requests, with
// Docker 28's host addresses: 0.0.0.0 is IPv4 only, [::] IPv6 only, none
// both; one IPv6 address ([::1], [2001:db8::5]) that address. A dual-stack
// dockerd sends -p 8080:80 as a binding per family (0.0.0.0 and [::]):
// they are published as one on every address (ports.MergeFamilies); the
// IPv6 twins merged away are returned in v6Wildcards.
func PortRequests(pbs []dockerPortBinding) (reqs []ports.Request, v6Wildcards []dockerPortBinding, err error) {
	for _, pb := range pbs {
		var r ports.Request
		switch pb.Proto {
		case int(ports.TCP), int(ports.UDP):
			r.Proto = ports.Protocol(pb.Proto)
		case 132:
			return nil, nil, badRequest("published port %d/sctp: ebpfnet publishes tcp and udp only", pb.Port)
		default:
			return nil, nil, badRequest("published port %d: protocol %d is not tcp or udp", pb.Port, pb.Proto)
		}
		if pb.Port < 1 || pb.Port > 65535 || pb.HostPort < 0 || pb.HostPort > 65535 || pb.HostPortEnd < 0 || pb.HostPortEnd > 65535 {
			return nil, nil, badRequest("published port %d: port out of range", pb.Port)
		}
		r.ContainerPort, r.HostPort, r.HostPortEnd = uint16(pb.Port), uint16(pb.HostPort), uint16(pb.HostPortEnd)
		if pb.HostIP != "" {
			a, err := netip.ParseAddr(pb.HostIP)
			if err != nil {
				return nil, nil, badRequest("published port %d: invalid host address %q", pb.Port, pb.HostIP)
			}
			r.HostIP = a.Unmap()
		}
		reqs = append(reqs, r)
	}
	if reqs, err = ports.CheckRequests(reqs); err != nil {
		return nil, nil, badRequest("%v", err)
	}
	reqs, merged := ports.MergeFamilies(reqs)
	for _, m := range merged {
		v6Wildcards = append(v6Wildcards, dockerPortBinding{Proto: int(m.Proto), Port: int(m.ContainerPort), HostIP: "::", HostPort: int(m.HostPort), HostPortEnd: int(m.HostPortEnd)})
	}
	return reqs, v6Wildcards, nil
}

type externalConnectivityRequest struct {
	NetworkID  string
	EndpointID string
	Options    map[string]json.RawMessage
}

func (d *Driver) programExternalConnectivity(body []byte) (any, error) {
	var req externalConnectivityRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	var pbs []dockerPortBinding
	if raw, ok := req.Options[optPortMap]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &pbs); err != nil {
			return nil, badRequest("option %s: %v", optPortMap, err)
		}
	}
	reqs, _, err := PortRequests(pbs)
	if err != nil {
		return nil, err
	}
	ep, found, err := d.inst.EndpointFor(req.EndpointID, "")
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("endpoint %s not found", short(req.EndpointID, 12))
	}
	if len(reqs) == 0 {
		return struct{}{}, nil
	}
	if _, err := d.inst.PublishPorts(ep.Name, reqs); err != nil {
		return nil, err
	}
	// A port published on every address answers IPv6 clients too: DNAT
	// to the container's IPv6 address in from_uplink, or NAT64 to its
	// IPv4 one (bpf/lib/nat64.h). (One published on [::] or an IPv6
	// address alone was refused by PublishPorts.)
	return struct{}{}, nil
}

func (d *Driver) revokeExternalConnectivity(body []byte) (any, error) {
	var req endpointRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	ep, found, err := d.inst.EndpointFor(req.EndpointID, "")
	if err != nil || !found {
		return struct{}{}, err
	}
	if _, err := d.inst.UnpublishPorts(ep.Name); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}
