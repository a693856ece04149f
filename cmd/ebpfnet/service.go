package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebpfnet/ebpfnet/datapath"
)

// The service table's file format: what `service sync` reads and `service
// ls -o json` writes, so a listing can be synced back. It is the CLI's own
// edge (Kubernetes' words where it has them: traffic policies Cluster and
// Local); parseServiceFile validates it whole and maps it into
// datapath.ServiceTable before anything touches the kernel.
type serviceFile struct {
	// NodeIPs are the node addresses a NodePort answers on (for pods and
	// the host, balanced at the socket).
	NodeIPs  []string      `json:"nodeIPs"`
	Services []serviceSpec `json:"services"`
}

// serviceSpec is one balanced service (one port of a Kubernetes Service).
type serviceSpec struct {
	// Name labels the service in errors; the datapath does not keep it.
	Name string `json:"name,omitempty"`
	// Protocol is tcp (the default) or udp.
	Protocol string `json:"protocol,omitempty"`
	// Frontends are exact ADDR:PORTs: ClusterIP, external and load
	// balancer addresses.
	Frontends []string `json:"frontends,omitempty"`
	// NodePort, if not 0, answers on every node address (listed as *:PORT).
	NodePort int `json:"nodePort,omitempty"`
	// Endpoints are the ready backends.
	Endpoints             []serviceEndpoint `json:"endpoints"`
	ExternalTrafficPolicy string            `json:"externalTrafficPolicy,omitempty"`
	InternalTrafficPolicy string            `json:"internalTrafficPolicy,omitempty"`
	// Affinity is the ClientIP session affinity timeout, a Go duration
	// ("3h"); empty or "0s" is none.
	Affinity string `json:"affinity,omitempty"`
}

type serviceEndpoint struct {
	Address string `json:"address"`
	// Local: the endpoint runs on this node (traffic policy Local picks
	// only these).
	Local bool `json:"local,omitempty"`
}

// The datapath's capacities: a table beyond them would fail half written,
// so sync refuses it first.
const (
	maxServiceFrontends = datapath.MaxServiceFrontends
	maxServiceEndpoints = datapath.MaxServiceEndpoints
	maxNodeIPs          = datapath.MaxNodeIPs
)

// maxValidationErrors bounds the problems one refusal lists.
const maxValidationErrors = 20

const (
	policyCluster = "Cluster"
	policyLocal   = "Local"
)

const serviceSyncHelp = `sync replaces the whole service table of this instance with FILE's (- reads
stdin): services missing from FILE stop being balanced, new ones start, and
a service that keeps a frontend keeps its clients' session affinity. The
file is checked whole before anything is changed; every problem is named.

FILE is JSON (durations are Go durations like "3h" or "90s"):

  {
    "nodeIPs": ["192.168.1.10"],
    "services": [
      {
        "name": "default/web:http",
        "protocol": "tcp",
        "frontends": ["10.96.0.10:80", "203.0.113.7:80"],
        "nodePort": 30080,
        "endpoints": [
          {"address": "10.244.0.5:8080", "local": true},
          {"address": "10.244.1.7:8080"}
        ],
        "externalTrafficPolicy": "Local",
        "internalTrafficPolicy": "Cluster",
        "affinity": "3h"
      }
    ]
  }

  nodeIPs                 IPv4 node addresses: a NodePort answers on each
  name                    a label for errors (optional; not kept: ls names a
                          service by its first frontend)
  protocol                tcp (default) or udp
  frontends               IPv4 ADDR:PORTs: ClusterIP, external IPs, load
                          balancer IPs; unique per protocol across services
  nodePort                1-65535, or 0/absent for none; unique per protocol
  endpoints               IPv4 ADDR:PORTs, each at most once; "local": true
                          for those on this node. None: connections are
                          refused at once
  externalTrafficPolicy   Cluster (default) or Local: from outside (the
                          uplink), only local endpoints, the client kept
  internalTrafficPolicy   Cluster (default) or Local: from pods and the node,
                          only local endpoints
  affinity                ClientIP session affinity timeout, whole seconds;
                          absent or "0s": none

A service needs a frontend or a nodePort. {"services": []} removes every
service. ebpfnet service ls -o json prints the table in this format.

Pods attached to this instance and the host are the services' clients
(balanced at the socket); clients from outside reach nodePorts and
frontends through the uplink. The table lives in the datapath's maps, not
in ebpfnet's store: it goes with the datapath when the instance's last
network is removed, so sync refuses a table on an instance with no network
or endpoint.

Under ebpfnet daemon --kube-proxy-replacement the daemon owns the table and
overwrites what sync programs with Kubernetes' view.`

func newServiceCmd(g *globals) *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "service",
		Short: "Services balanced by ebpfnet (kube-proxy replacement datapath)",
	})
	var dryRun bool
	sync := &cobra.Command{
		Use:   "sync FILE|-",
		Short: "Replace the whole service table with a JSON file's",
		Long:  serviceSyncHelp,
		Example: `  ebpfnet service sync services.json
  ebpfnet service ls -o json > table.json && ebpfnet service sync table.json   # a round trip
  echo '{"services": []}' | ebpfnet service sync -                             # remove every service`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := readServiceTable(cmd.InOrStdin(), args[0])
			if err != nil {
				return err
			}
			summary := serviceSummary(t)
			if dryRun {
				fmt.Fprintf(cmd.OutOrStdout(), "valid: %s\n", summary)
				return nil
			}
			return g.withInstance(func(cmd *cobra.Command, _ []string, inst *datapath.Instance) error {
				used, err := instanceInUse(inst)
				if err != nil {
					return err
				}
				if !used {
					if len(t.Services) > 0 || len(t.NodeIPs) > 0 {
						return errors.New("no network or endpoint on this instance: services live in the datapath of its networks (ebpfnet network create first)")
					}
				} else if err := inst.SyncServices(t); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "synced: %s\n", summary)
				return nil
			})(cmd, args)
		},
	}
	sync.Flags().BoolVar(&dryRun, "dry-run", false, "only check FILE")

	var lf *listFlags
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the balanced services",
		Long: `ls lists the balanced services: their frontends (a NodePort as *:PORT),
protocol, session affinity, traffic policies and endpoints, one line per
endpoint, "(local)" marking this node's; the node addresses follow.
-o json (or --format json) prints the table in service sync's file format;
--format applies a template to each service of that format.`,
		Args: cobra.NoArgs,
		RunE: g.withInstance(func(cmd *cobra.Command, _ []string, inst *datapath.Instance) error {
			var t datapath.ServiceTable
			used, err := instanceInUse(inst)
			if err != nil {
				return err
			}
			if used { // else nothing is pinned: do not load a datapath to list nothing
				if t, err = inst.Services(); err != nil {
					return err
				}
			}
			f := serviceFileOf(t)
			if lf.format == "json" || (lf.format == "" && lf.output.value == "json") {
				return printJSON(cmd, f)
			}
			return printList(cmd, lf, f.Services, serviceKey, func(w io.Writer) { serviceTable(w, f) })
		}),
	}
	lf = newListFlags(ls.Flags(), true)
	ls.Flags().Lookup("quiet").Usage = "print each service's first frontend and protocol (10.96.0.10:53/udp), which name it"
	cmd.AddCommand(ls, sync)
	return cmd
}

// instanceInUse reports whether the instance has a network or an endpoint,
// and so a datapath that stays pinned after this command.
func instanceInUse(inst *datapath.Instance) (bool, error) {
	nets, err := inst.Networks()
	if err != nil || len(nets) > 0 {
		return len(nets) > 0, err
	}
	eps, err := inst.Endpoints()
	return len(eps) > 0, err
}

func serviceSummary(t datapath.ServiceTable) string {
	var fronts, eps int
	for _, s := range t.Services {
		fronts += len(s.Frontends)
		if s.NodePort != 0 {
			fronts++
		}
		eps += len(s.Backends)
	}
	return fmt.Sprintf("%d service(s), %d frontend(s), %d endpoint(s), %d node address(es)", len(t.Services), fronts, eps, len(t.NodeIPs))
}

// readServiceTable reads and checks sync's FILE ("-": stdin).
func readServiceTable(stdin io.Reader, path string) (datapath.ServiceTable, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(stdin)
		path = "stdin"
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return datapath.ServiceTable{}, err
	}
	t, err := parseServiceFile(data)
	if err != nil {
		// Each problem on a line of its own, each saying where.
		lines := strings.Split(err.Error(), "\n")
		for i := range lines {
			lines[i] = path + ": " + lines[i]
		}
		return t, errors.New(strings.Join(lines, "\n"))
	}
	return t, nil
}

// parseServiceFile decodes and validates a service table file.
func parseServiceFile(data []byte) (datapath.ServiceTable, error) {
	if trimmed := bytes.TrimSpace(data); len(trimmed) == 0 || trimmed[0] != '{' {
		return datapath.ServiceTable{}, errors.New(`want a JSON object, {"services": [...]} (see ebpfnet service sync --help)`)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f serviceFile
	if err := dec.Decode(&f); err != nil {
		return datapath.ServiceTable{}, jsonError(data, dec.InputOffset(), err)
	}
	rest := data[dec.InputOffset():]
	if trailing := bytes.TrimLeft(rest, " \t\r\n"); len(trailing) > 0 {
		line, col := lineCol(data, int64(len(data)-len(trailing)))
		return datapath.ServiceTable{}, fmt.Errorf("line %d, column %d: data after the table's closing brace", line, col)
	}
	return f.table()
}

// jsonError says where in data a decoding error is, in the file's terms.
func jsonError(data []byte, at int64, err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	msg := strings.TrimPrefix(err.Error(), "json: ")
	switch {
	case errors.As(err, &syntax):
		// Offset counts the offending byte too: point at it.
		at = syntax.Offset - 1
	case errors.As(err, &typ):
		at = typ.Offset
		msg = fmt.Sprintf("%s: want %s, not a JSON %s", typ.Field, jsonKind(typ.Field, typ.Type), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		at = int64(len(data))
		msg = "the JSON ends before the table does"
	}
	line, col := lineCol(data, at)
	return fmt.Errorf("line %d, column %d: %s", line, col, msg)
}

func jsonKind(field string, t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		if strings.HasSuffix(field, "affinity") {
			return `a Go duration string like "3h"`
		}
		return "a string"
	case reflect.Int:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "a list"
	case reflect.Struct:
		return "an object"
	}
	return t.String()
}

// lineCol is the 1-based line and column of byte offset at.
func lineCol(data []byte, at int64) (line, col int) {
	at = min(max(at, 0), int64(len(data)))
	before := data[:at]
	line = bytes.Count(before, []byte("\n")) + 1
	return line, len(before) - bytes.LastIndexByte(before, '\n')
}

// problems collects validation errors, up to a bound.
type problems struct {
	list []string
	more int
}

func (p *problems) addf(format string, args ...any) {
	if len(p.list) == maxValidationErrors {
		p.more++
		return
	}
	p.list = append(p.list, fmt.Sprintf(format, args...))
}

func (p *problems) count() int { return len(p.list) + p.more }

func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	if p.more > 0 {
		p.list = append(p.list, fmt.Sprintf("and %d more problem(s)", p.more))
	}
	return errors.New(strings.Join(p.list, "\n"))
}

// frontendKey identifies a frontend across services: an exact address
// and port, or a NodePort (addr invalid), with the protocol.
type frontendKey struct {
	proto string
	addr  netip.AddrPort
	node  uint16
}

// table validates f whole and maps it into the datapath's types.
func (f serviceFile) table() (datapath.ServiceTable, error) {
	var p problems
	var t datapath.ServiceTable
	seenNode := map[netip.Addr]bool{}
	for _, s := range f.NodeIPs {
		a, err := netip.ParseAddr(s)
		switch {
		case err != nil || !a.Is4():
			p.addf("nodeIPs: %q is not an IPv4 address", s)
		case a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
			p.addf("nodeIPs: %s is not a node's address", a)
		case seenNode[a]:
			p.addf("nodeIPs: %s is listed twice", a)
		default:
			seenNode[a] = true
			t.NodeIPs = append(t.NodeIPs, a)
		}
	}
	if len(f.NodeIPs) > maxNodeIPs {
		p.addf("nodeIPs: %d addresses: the datapath holds at most %d", len(f.NodeIPs), maxNodeIPs)
	}
	owner := map[frontendKey]string{}
	var fronts, eps int
	for i, spec := range f.Services {
		where := fmt.Sprintf("services[%d]", i)
		if spec.Name != "" {
			where += fmt.Sprintf(" (%s)", spec.Name)
		}
		before := p.count()
		s := spec.service(where, &p)
		for _, a := range s.Frontends {
			k := frontendKey{proto: s.Proto, addr: a}
			if other, ok := owner[k]; ok {
				p.addf("%s: frontend %s/%s is %s's too", where, a, s.Proto, other)
			}
			owner[k] = where
		}
		if s.NodePort != 0 {
			k := frontendKey{proto: s.Proto, node: s.NodePort}
			if other, ok := owner[k]; ok {
				p.addf("%s: nodePort %d/%s is %s's too", where, s.NodePort, s.Proto, other)
			}
			owner[k] = where
			fronts++
		}
		fronts += len(s.Frontends)
		eps += len(s.Backends)
		if p.count() == before {
			if err := s.Validate(); err != nil {
				p.addf("%v", err) // what the datapath refuses that the checks above missed
			}
		}
		t.Services = append(t.Services, s)
	}
	if fronts > maxServiceFrontends {
		p.addf("%d frontends and nodePorts: the datapath holds at most %d", fronts, maxServiceFrontends)
	}
	if eps > maxServiceEndpoints {
		p.addf("%d endpoints: the datapath holds at most %d over all services", eps, maxServiceEndpoints)
	}
	if err := p.err(); err != nil {
		return datapath.ServiceTable{}, err
	}
	return t, nil
}

// service checks one service, adding its problems to p, and maps it.
func (spec serviceSpec) service(where string, p *problems) datapath.Service {
	s := datapath.Service{Name: spec.Name}
	if s.Name == "" {
		s.Name = where
	}
	switch proto := strings.ToLower(spec.Protocol); proto {
	case "":
		s.Proto = "tcp"
	case "tcp", "udp":
		s.Proto = proto
	default:
		p.addf("%s: protocol %q: want tcp or udp", where, spec.Protocol)
	}
	seen := map[netip.AddrPort]bool{}
	for _, fs := range spec.Frontends {
		if port, ok := strings.CutPrefix(fs, "*:"); ok {
			p.addf("%s: frontend %q: a NodePort is written \"nodePort\": %s", where, fs, port)
			continue
		}
		a, err := addrPort(fs)
		switch {
		case err != nil:
			p.addf("%s: frontend %q: %v", where, fs, err)
		case seen[a]:
			p.addf("%s: frontend %s is listed twice", where, a)
		default:
			seen[a] = true
			s.Frontends = append(s.Frontends, a)
		}
	}
	switch {
	case spec.NodePort < 0 || spec.NodePort > math.MaxUint16:
		p.addf("%s: nodePort %d: want 1-65535 (0 or absent: none)", where, spec.NodePort)
	default:
		s.NodePort = uint16(spec.NodePort)
	}
	if len(spec.Frontends) == 0 && spec.NodePort == 0 {
		p.addf("%s: no frontend and no nodePort: nothing would reach it", where)
	}
	seen = map[netip.AddrPort]bool{}
	for _, e := range spec.Endpoints {
		a, err := addrPort(e.Address)
		switch {
		case err != nil:
			p.addf("%s: endpoint %q: %v", where, e.Address, err)
		case seen[a]:
			p.addf("%s: endpoint %s is listed twice", where, a)
		default:
			seen[a] = true
			s.Backends = append(s.Backends, datapath.ServiceBackend{Addr: a, Local: e.Local})
		}
	}
	if len(spec.Endpoints) > datapath.MaxServiceBackends {
		p.addf("%s: %d endpoints: the datapath balances at most %d per service", where, len(spec.Endpoints), datapath.MaxServiceBackends)
	}
	var ok bool
	if s.ExternalLocal, ok = trafficPolicy(spec.ExternalTrafficPolicy); !ok {
		p.addf("%s: externalTrafficPolicy %q: want Cluster or Local", where, spec.ExternalTrafficPolicy)
	}
	if s.InternalLocal, ok = trafficPolicy(spec.InternalTrafficPolicy); !ok {
		p.addf("%s: internalTrafficPolicy %q: want Cluster or Local", where, spec.InternalTrafficPolicy)
	}
	if spec.Affinity != "" {
		d, err := time.ParseDuration(spec.Affinity)
		switch {
		case err != nil:
			p.addf("%s: affinity %q: want a Go duration like \"3h\" or \"90s\"", where, spec.Affinity)
		case d < 0:
			p.addf("%s: affinity %s: want a timeout of 0 (none) or more", where, spec.Affinity)
		case d%time.Second != 0:
			p.addf("%s: affinity %s: want whole seconds (the datapath keeps seconds)", where, spec.Affinity)
		case d/time.Second > math.MaxUint32:
			p.addf("%s: affinity %s: the datapath holds at most %v", where, spec.Affinity, time.Duration(math.MaxUint32)*time.Second)
		default:
			s.Affinity = d
		}
	}
	return s
}

// addrPort parses an IPv4 ADDR:PORT a service can use.
func addrPort(s string) (netip.AddrPort, error) {
	a, err := netip.ParseAddrPort(s)
	switch {
	case err != nil:
		return a, errors.New("want an IPv4 ADDR:PORT")
	case !a.Addr().Is4():
		return a, errors.New("want an IPv4 address")
	case a.Port() == 0:
		return a, errors.New("want a port of 1-65535")
	case a.Addr().IsUnspecified() || a.Addr().IsMulticast():
		return a, fmt.Errorf("%s is not a unicast address", a.Addr())
	}
	return a, nil
}

// trafficPolicy reads a traffic policy: Local or not, and whether s is one.
func trafficPolicy(s string) (local, ok bool) {
	switch {
	case s == "" || strings.EqualFold(s, policyCluster):
		return false, true
	case strings.EqualFold(s, policyLocal):
		return true, true
	}
	return false, false
}

func policyName(local bool) string {
	if local {
		return policyLocal
	}
	return policyCluster
}

// serviceFileOf is t in the file format, services ordered by their first
// frontend (NodePort-only ones last, by port), then protocol.
func serviceFileOf(t datapath.ServiceTable) serviceFile {
	f := serviceFile{NodeIPs: []string{}, Services: []serviceSpec{}}
	for _, a := range t.NodeIPs {
		f.NodeIPs = append(f.NodeIPs, a.String())
	}
	svcs := slices.Clone(t.Services)
	slices.SortStableFunc(svcs, compareServices)
	for _, s := range svcs {
		spec := serviceSpec{Name: s.Name, Protocol: s.Proto, NodePort: int(s.NodePort), Endpoints: []serviceEndpoint{},
			ExternalTrafficPolicy: policyName(s.ExternalLocal), InternalTrafficPolicy: policyName(s.InternalLocal)}
		for _, a := range s.Frontends {
			spec.Frontends = append(spec.Frontends, a.String())
		}
		for _, b := range s.Backends {
			spec.Endpoints = append(spec.Endpoints, serviceEndpoint{Address: b.Addr.String(), Local: b.Local})
		}
		if s.Affinity > 0 {
			spec.Affinity = shortDuration(s.Affinity)
		}
		f.Services = append(f.Services, spec)
	}
	return f
}

func compareServices(a, b datapath.Service) int {
	switch {
	case len(a.Frontends) > 0 && len(b.Frontends) > 0:
		if c := a.Frontends[0].Compare(b.Frontends[0]); c != 0 {
			return c
		}
	case len(a.Frontends) > 0:
		return -1
	case len(b.Frontends) > 0:
		return 1
	default:
		if a.NodePort != b.NodePort {
			return int(a.NodePort) - int(b.NodePort)
		}
	}
	return strings.Compare(a.Proto, b.Proto)
}

// shortDuration writes d as Go does without zero units: 3h, 1h30m, 90s
// is 1m30s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// frontendList is a service's frontends as listed: its exact ones, then its
// NodePort as *:PORT.
func (s serviceSpec) frontendList() []string {
	out := slices.Clone(s.Frontends)
	if s.NodePort != 0 {
		out = append(out, fmt.Sprintf("*:%d", s.NodePort))
	}
	return out
}

// serviceKey names a service in ls -q: its first frontend and protocol.
func serviceKey(s serviceSpec) string {
	if l := s.frontendList(); len(l) > 0 {
		return l[0] + "/" + s.Protocol
	}
	return s.Name
}

// serviceTable writes the ls table: a row per service with its first
// endpoint, a row for each further endpoint; then the node addresses.
func serviceTable(w io.Writer, f serviceFile) {
	fmt.Fprintln(w, "FRONTENDS\tPROTO\tAFFINITY\tEXT TRAFFIC\tINT TRAFFIC\tENDPOINTS")
	for _, s := range f.Services {
		eps := []string{"-"}
		if len(s.Endpoints) > 0 {
			eps = eps[:0]
			for _, e := range s.Endpoints {
				if e.Local {
					eps = append(eps, e.Address+" (local)")
				} else {
					eps = append(eps, e.Address)
				}
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", strings.Join(s.frontendList(), ", "), s.Protocol, dash(s.Affinity),
			s.ExternalTrafficPolicy, s.InternalTrafficPolicy, eps[0])
		for _, e := range eps[1:] {
			fmt.Fprintf(w, "\t\t\t\t\t%s\n", e)
		}
	}
	if len(f.NodeIPs) > 0 {
		fmt.Fprintf(w, "\nNODE IPS: %s\n", strings.Join(f.NodeIPs, ", "))
	}
}
