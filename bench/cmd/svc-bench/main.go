// Command svc-bench measures Kubernetes Services on ebpfnet: a pod's
// new-connection rate to a ClusterIP with 1, 1000 and 10000 Services
// programmed, and the time to program them, three ways: kube-proxy's
// iptables rules, its nftables rules, and ebpfnet's own service path (the
// kube-proxy replacement: the cgroup connect4 hook points the pod's socket
// at the endpoint, so its packets carry the pod address and cross no NAT),
// next to the same pod reaching the backend's pod address directly
// (ebpfnet's eBPF path, no Service). The rules are the ones kube-proxy
// writes, reduced to one endpoint per Service (KUBE-SERVICES -> KUBE-SVC-*
// -> KUBE-SEP-* DNAT; the nftables mode's service-ips verdict map),
// loaded with iptables-restore and nft -f; ebpfnet's are the same Services
// as a service table file, loaded with ebpfnet service sync. The measured
// Service is the last one, which iptables reaches after every other. Only
// one mode's Services exist at a time: the kube-proxy modes run with no
// kube-proxy rules of the other mode and an empty ebpfnet service table
// (its socket hooks attached, as on a node running ebpfnet), the ebpfnet
// mode with no kube-proxy rules; the run checks once that the ClusterIP
// does not answer without ebpfnet's table and does with it. The sandbox is
// one host namespace with ebpfnet (a network with --service-cidr, which
// hands the service CIDR to the kernel for kube-proxy's rules), a client
// pod and a backend pod; repetitions are interleaved across modes and
// sizes. Needs root; removes everything it made on exit.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ebpfnet/ebpfnet/bench/internal/netperf"
	"github.com/ebpfnet/ebpfnet/loader"
)

const (
	subnet     = "10.244.0.0/24"
	serviceNet = "10.96.0.0/12"
	svcPort    = 80
	srvPort    = 8080 // the Services' target port
	// directPort is the backend's port for the direct measurement: never
	// the Services', or the 4-tuples of the two would meet in the
	// backend's TIME_WAIT with timestamps of another offset (the client
	// keys it by destination address), and PAWS would drop the SYNs.
	directPort = 8081
	// lbPort is the target port of ebpfnet's Services. The connect4 hook
	// rewrites the socket's destination before TCP picks its timestamp
	// offset, so the client keys it by the backend's address, not the
	// ClusterIP as under kube-proxy's DNAT: on the kube-proxy modes' port
	// the backend's TIME_WAIT would meet SYNs of another offset (PAWS).
	lbPort  = 8082
	srvName = "backend"
)

// The modes: kube-proxy's rule sets and ebpfnet's service path.
const (
	modeIptables = "iptables"
	modeNftables = "nftables"
	modeEbpfnet  = "ebpfnet"
)

var modes = []string{modeIptables, modeNftables, modeEbpfnet}

type config struct {
	ebpfnet  string
	sizes    []int
	reps     int
	duration time.Duration
	conc     int
	out      string
}

func main() {
	if len(os.Args) > 1 && tool(os.Args[1:]) {
		return
	}
	var cfg config
	var sizes string
	flag.StringVar(&cfg.ebpfnet, "ebpfnet", "bin/ebpfnet", "the ebpfnet binary")
	flag.StringVar(&sizes, "services", "1,1000,10000", "numbers of Services to program")
	flag.IntVar(&cfg.reps, "reps", 3, "interleaved repetitions")
	flag.DurationVar(&cfg.duration, "duration", 5*time.Second, "connection-rate run length")
	flag.IntVar(&cfg.conc, "conc", 4, "concurrent connecting workers")
	flag.StringVar(&cfg.out, "o", "", "also write the table (markdown) to this file")
	flag.Parse()
	for _, s := range strings.Split(sizes, ",") {
		var n int
		if _, err := fmt.Sscanf(s, "%d", &n); err != nil || n < 1 || n > 60000 {
			fail(fmt.Errorf("-services: %q is not a number of Services (1-60000)", s))
		}
		cfg.sizes = append(cfg.sizes, n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fail(err)
	}
}

// sandbox is the host with ebpfnet and the two pods.
type sandbox struct {
	prefix, host, client, backend string
	stateDir, pinRoot, self       string
	tableDir                      string // service table files
	ebpfnet                       string
	clientIP, backendIP           string
	servers                       []*exec.Cmd
}

func run(ctx context.Context, cfg config) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root (network namespaces, iptables, BPF)")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	bin, err := filepath.Abs(cfg.ebpfnet)
	if err != nil {
		return err
	}
	p := "sv" + randHex(3)
	s := &sandbox{prefix: p, host: p + "-host", client: p + "-client", backend: p + "-backend", self: self, ebpfnet: bin,
		pinRoot: loader.DefaultPinRoot(p)}
	if s.stateDir, err = os.MkdirTemp("", "svc-bench-"); err != nil {
		return err
	}
	defer s.teardown()
	if s.tableDir, err = os.MkdirTemp("", "svc-bench-table-"); err != nil {
		return err
	}
	if err := s.setup(); err != nil {
		return err
	}
	if err := s.checkSocketLB(); err != nil {
		return err
	}
	direct := fmt.Sprintf("%s:%d", s.backendIP, directPort)
	type cell struct {
		mode string
		n    int
	}
	rates := map[cell][]float64{}
	program := map[cell][]time.Duration{}
	for rep := 1; rep <= cfg.reps; rep++ {
		r, err := s.connRate(ctx, cfg, direct)
		if err != nil {
			return fmt.Errorf("pod to pod: %w", err)
		}
		rates[cell{"pod-ip", 0}] = append(rates[cell{"pod-ip", 0}], r)
		fmt.Printf("rep %d: pod to pod IP (eBPF path): %.0f conn/s\n", rep, r)
		for _, n := range cfg.sizes {
			for _, mode := range modes {
				if mode == modeEbpfnet {
					if err := s.noKubeProxy(); err != nil {
						return err
					}
				}
				d, err := s.program(mode, n)
				if err != nil {
					return fmt.Errorf("%s, %d Services: %w", mode, n, err)
				}
				vip := fmt.Sprintf("%s:%d", vipOf(n-1, n), svcPort)
				r, err := s.connRate(ctx, cfg, vip)
				if err != nil {
					return fmt.Errorf("%s, %d Services, to %s: %w", mode, n, vip, err)
				}
				c := cell{mode, n}
				rates[c] = append(rates[c], r)
				program[c] = append(program[c], d)
				fmt.Printf("rep %d: %s, %d Services: programmed in %v, %.0f conn/s to the last\n", rep, pathName(mode), n, d.Round(time.Millisecond), r)
				if err := s.flush(mode); err != nil {
					return err
				}
			}
		}
	}
	var b strings.Builder
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(&b, "Pod to Service through kube-proxy's rules and through ebpfnet's service path, ebpfnet the CNI (`make bench-services`; %d interleaved repetitions, %v each, %d workers; median [min-max]; load average at the end: %s)\n\n",
		cfg.reps, cfg.duration, cfg.conc, strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Fprintln(&b, "| path | Services | new connections/s | vs pod IP | time to program |")
	fmt.Fprintln(&b, "|---|---|---|---|---|")
	base := median(rates[cell{"pod-ip", 0}])
	fmt.Fprintf(&b, "| pod IP, no Service (eBPF) | - | %s | x1.00 | - |\n", spread(rates[cell{"pod-ip", 0}]))
	for _, mode := range modes {
		for _, n := range cfg.sizes {
			c := cell{mode, n}
			fmt.Fprintf(&b, "| %s | %d | %s | x%.2f | %s |\n", pathName(mode), n, spread(rates[c]), median(rates[c])/base, spreadDur(program[c]))
		}
	}
	fmt.Print("\n" + b.String())
	if cfg.out != "" {
		return os.WriteFile(cfg.out, []byte(b.String()), 0o644)
	}
	return nil
}

// vipOf is the i-th of n Services' ClusterIP. The measured, last, Service
// has the same address whatever n (10.96.0.1): the client keys its TCP
// timestamps by destination address, and another address would send SYNs
// into the backend's TIME_WAIT of earlier runs with older timestamps
// (PAWS drops them).
func vipOf(i, n int) netip.Addr {
	if i == n-1 {
		return clusterIP(0)
	}
	return clusterIP(i + 1)
}

// clusterIP is the i-th address of the service CIDR: 10.96.0.1 onwards.
func clusterIP(i int) netip.Addr {
	a := netip.MustParsePrefix(serviceNet).Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += uint32(i) + 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// endpointOf is the i-th Service's one endpoint: the backend pod for the
// measured (last) Service, an address of the pod subnet's upper half that
// no pod holds for the others (their rules are never reached by traffic).
func (s *sandbox) endpointOf(i, n int) string {
	if i == n-1 {
		return s.backendIP
	}
	return fmt.Sprintf("10.244.0.%d", 128+i%120)
}

// iptablesRules is the nat table kube-proxy's iptables mode writes for n
// Services of one endpoint each (its chains and jumps, without the
// masquerade and filter rules that a pod-to-Service connection does not
// cross).
func (s *sandbox) iptablesRules(n int) string {
	var b strings.Builder
	b.WriteString("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n")
	for i := range n {
		fmt.Fprintf(&b, ":KUBE-SVC-%08X - [0:0]\n:KUBE-SEP-%08X - [0:0]\n", i, i)
	}
	b.WriteString("-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n")
	b.WriteString("-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n")
	b.WriteString("-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n")
	for i := range n {
		fmt.Fprintf(&b, "-A KUBE-SERVICES -d %s/32 -p tcp -m comment --comment \"default/svc-%d:http cluster IP\" -m tcp --dport %d -j KUBE-SVC-%08X\n", vipOf(i, n), i, svcPort, i)
	}
	for i := range n {
		ep := s.endpointOf(i, n)
		fmt.Fprintf(&b, "-A KUBE-SVC-%08X -m comment --comment \"default/svc-%d:http -> %s:%d\" -j KUBE-SEP-%08X\n", i, i, ep, srvPort, i)
		fmt.Fprintf(&b, "-A KUBE-SEP-%08X -s %s/32 -m comment --comment \"default/svc-%d:http\" -j KUBE-MARK-MASQ\n", i, ep, i)
		fmt.Fprintf(&b, "-A KUBE-SEP-%08X -p tcp -m comment --comment \"default/svc-%d:http\" -m tcp -j DNAT --to-destination %s:%d\n", i, i, ep, srvPort)
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// nftRules is kube-proxy's nftables mode for n Services: the service-ips
// verdict map, a chain per Service and per endpoint.
func (s *sandbox) nftRules(n int) string {
	var b strings.Builder
	b.WriteString("table ip kube-proxy {\n")
	b.WriteString("\tchain mark-for-masquerade {\n\t\tmeta mark set meta mark or 0x4000\n\t}\n")
	for i := range n {
		ep := s.endpointOf(i, n)
		fmt.Fprintf(&b, "\tchain endpoint-%08X {\n\t\tip saddr %s jump mark-for-masquerade\n\t\tmeta l4proto tcp dnat to %s:%d\n\t}\n", i, ep, ep, srvPort)
		fmt.Fprintf(&b, "\tchain service-%08X {\n\t\tgoto endpoint-%08X\n\t}\n", i, i)
	}
	b.WriteString("\tmap service-ips {\n\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n\t\telements = {\n")
	for i := range n {
		fmt.Fprintf(&b, "\t\t\t%s . tcp . %d : goto service-%08X,\n", vipOf(i, n), svcPort, i)
	}
	b.WriteString("\t\t}\n\t}\n")
	b.WriteString("\tchain services {\n\t\tip daddr . meta l4proto . th dport vmap @service-ips\n\t}\n")
	b.WriteString("\tchain nat-prerouting {\n\t\ttype nat hook prerouting priority -100; policy accept;\n\t\tjump services\n\t}\n")
	b.WriteString("\tchain nat-output {\n\t\ttype nat hook output priority -100; policy accept;\n\t\tjump services\n\t}\n")
	b.WriteString("}\n")
	return b.String()
}

// serviceTable is the same n Services as ebpfnet's service table file
// (ebpfnet service sync's format): the ClusterIPs of vipOf, one endpoint
// each on this node, lbPort their target port.
func (s *sandbox) serviceTable(n int) ([]byte, error) {
	type endpoint struct {
		Address string `json:"address"`
		Local   bool   `json:"local,omitempty"`
	}
	type service struct {
		Name      string     `json:"name"`
		Protocol  string     `json:"protocol"`
		Frontends []string   `json:"frontends"`
		Endpoints []endpoint `json:"endpoints"`
	}
	t := struct {
		Services []service `json:"services"`
	}{Services: make([]service, 0, n)}
	for i := range n {
		t.Services = append(t.Services, service{
			Name:      fmt.Sprintf("default/svc-%d:http", i),
			Protocol:  "tcp",
			Frontends: []string{fmt.Sprintf("%s:%d", vipOf(i, n), svcPort)},
			Endpoints: []endpoint{{Address: fmt.Sprintf("%s:%d", s.endpointOf(i, n), lbPort), Local: true}},
		})
	}
	return json.Marshal(t)
}

// syncServices makes ebpfnet's service table n Services (0: empty) and
// returns how long ebpfnet service sync took (the file is written before
// the clock starts).
func (s *sandbox) syncServices(n int) (time.Duration, error) {
	table, err := s.serviceTable(n)
	if err != nil {
		return 0, err
	}
	file := filepath.Join(s.tableDir, fmt.Sprintf("services-%d.json", n))
	if err := os.WriteFile(file, table, 0o644); err != nil {
		return 0, err
	}
	defer os.Remove(file)
	t0 := time.Now()
	if out, err := s.ebpf("service", "sync", file); err != nil {
		return 0, fmt.Errorf("ebpfnet service sync (%d services): %v: %s", n, err, out)
	}
	return time.Since(t0), nil
}

// program writes n Services in mode and returns how long the write took
// (iptables-restore or nft -f, as kube-proxy runs them; ebpfnet service
// sync).
func (s *sandbox) program(mode string, n int) (time.Duration, error) {
	var rules string
	var cmd []string
	switch mode {
	case modeIptables:
		rules, cmd = s.iptablesRules(n), []string{"iptables-restore", "-w"}
	case modeNftables:
		rules, cmd = s.nftRules(n), []string{"nft", "-f", "-"}
	case modeEbpfnet:
		return s.syncServices(n)
	default:
		return 0, fmt.Errorf("unknown mode %q", mode)
	}
	t0 := time.Now()
	if out, err := s.inStdin(s.host, rules, cmd...); err != nil {
		return 0, fmt.Errorf("%s: %v: %s", cmd[0], err, out)
	}
	return time.Since(t0), nil
}

// flush removes mode's Services: kube-proxy's rules, or ebpfnet's whole
// service table (a sync of an empty one).
func (s *sandbox) flush(mode string) error {
	switch mode {
	case modeIptables:
		_, err := s.in(s.host, "iptables", "-w", "-t", "nat", "-F")
		if err == nil {
			_, err = s.in(s.host, "iptables", "-w", "-t", "nat", "-X")
		}
		return err
	case modeNftables:
		_, err := s.in(s.host, "nft", "delete", "table", "ip", "kube-proxy")
		return err
	}
	_, err := s.syncServices(0)
	return err
}

// noKubeProxy fails if any of kube-proxy's rules are in the host
// namespace: the ebpfnet mode runs without them.
func (s *sandbox) noKubeProxy() error {
	out, err := s.in(s.host, "iptables-save", "-t", "nat")
	if err != nil {
		return fmt.Errorf("iptables-save: %v: %s", err, out)
	}
	if strings.Contains(out, "KUBE-") {
		return fmt.Errorf("kube-proxy's iptables rules are still installed:\n%s", out)
	}
	if out, err = s.in(s.host, "nft", "list", "tables"); err != nil {
		return fmt.Errorf("nft list tables: %v: %s", err, out)
	}
	if strings.Contains(out, "kube-proxy") {
		return fmt.Errorf("kube-proxy's nftables table is still installed:\n%s", out)
	}
	return nil
}

// checkSocketLB checks, once per run, that the ebpfnet mode's connections
// go through ebpfnet's socket load balancing: with no kube-proxy rules and
// an empty service table the measured ClusterIP does not answer (the
// kernel gets its packets, and nothing translates them), with the table
// programmed it does, and empty again it no longer does.
func (s *sandbox) checkSocketLB() error {
	vip := fmt.Sprintf("%s:%d", clusterIP(0), svcPort)
	check := func() error {
		_, err := s.in(s.client, s.self, "check", "-addr", vip)
		return err
	}
	if err := s.noKubeProxy(); err != nil {
		return err
	}
	if err := check(); err == nil {
		return fmt.Errorf("%s answers with no kube-proxy rules and an empty ebpfnet service table", vip)
	}
	if _, err := s.syncServices(1); err != nil {
		return err
	}
	if out, err := s.in(s.client, s.self, "check", "-addr", vip); err != nil {
		return fmt.Errorf("%s does not answer through ebpfnet's service path: %v: %s", vip, err, out)
	}
	if _, err := s.syncServices(0); err != nil {
		return err
	}
	if err := check(); err == nil {
		return fmt.Errorf("%s still answers after ebpfnet's service table was emptied", vip)
	}
	fmt.Printf("checked: %s answers only with ebpfnet's service table programmed (socket load balancing)\n", vip)
	return nil
}

// pathName is a mode's row in the table.
func pathName(mode string) string {
	if mode == modeEbpfnet {
		return "ebpfnet service path"
	}
	return "kube-proxy " + mode
}

// connRate runs the connection-rate client in the client pod against addr.
func (s *sandbox) connRate(ctx context.Context, cfg config, addr string) (float64, error) {
	if out, err := s.in(s.client, s.self, "check", "-addr", addr); err != nil {
		return 0, fmt.Errorf("check %s: %v: %s", addr, err, out)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.duration+30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", s.client, s.self, "connrate", "-addr", addr,
		"-conc", fmt.Sprint(cfg.conc), "-duration", cfg.duration.String()).Output()
	if err != nil {
		return 0, fmt.Errorf("connrate %s: %w", addr, err)
	}
	var r netperf.ConnResult
	if err := json.Unmarshal(out, &r); err != nil {
		return 0, err
	}
	if r.Errors > 0 {
		return 0, fmt.Errorf("connrate %s: %d errors (%s)", addr, r.Errors, r.FirstError)
	}
	fmt.Printf("  %s: %d connections, avg %.0f us, p99 %.0f us\n", addr, r.Conns, r.AvgUs, r.P99Us)
	return r.ConnPerSec, nil
}

func (s *sandbox) setup() error {
	steps := [][]string{
		{"ip", "netns", "add", s.host}, {"ip", "netns", "add", s.client}, {"ip", "netns", "add", s.backend},
		{"ip", "netns", "exec", s.host, "ip", "link", "set", "lo", "up"},
		// A kubeadm node: forwarding on, bridged traffic through netfilter.
		{"ip", "netns", "exec", s.host, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.bridge.bridge-nf-call-iptables=1"},
		{"ip", "netns", "exec", s.client, "sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65000"},
	}
	for _, c := range steps {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(c, " "), err, out)
		}
	}
	if out, err := s.ebpf("network", "create", "k8s", "--subnet", subnet, "--service-cidr", serviceNet); err != nil {
		return fmt.Errorf("network create: %v: %s", err, out)
	}
	for _, pod := range []struct {
		ns string
		ip *string
		a  string
	}{{s.client, &s.clientIP, "10.244.0.2"}, {s.backend, &s.backendIP, "10.244.0.3"}} {
		if out, err := s.ebpf("attach", "--network", "k8s", "--ip", pod.a, pod.ns); err != nil {
			return fmt.Errorf("attach %s: %v: %s", pod.ns, err, out)
		}
		*pod.ip = pod.a
	}
	// An empty service table: ebpfnet's socket hooks are attached (service
	// sync attaches them) in every mode, and balance nothing outside the
	// ebpfnet mode.
	if _, err := s.syncServices(0); err != nil {
		return err
	}
	for _, port := range []int{srvPort, directPort, lbPort} {
		srv := exec.Command("ip", "netns", "exec", s.backend, s.self, "serve", "-name", srvName, "-addr", fmt.Sprintf(":%d", port))
		if err := srv.Start(); err != nil {
			return err
		}
		s.servers = append(s.servers, srv)
	}
	for _, port := range []int{srvPort, directPort, lbPort} {
		ok := false
		for range 50 {
			if _, err := s.in(s.client, s.self, "check", "-addr", fmt.Sprintf("%s:%d", s.backendIP, port)); err == nil {
				ok = true
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !ok {
			return fmt.Errorf("backend server on port %d did not answer", port)
		}
	}
	return nil
}

func (s *sandbox) teardown() {
	for _, srv := range s.servers {
		srv.Process.Signal(syscall.SIGTERM) // by PID
		srv.Wait()
	}
	for _, ns := range []string{s.client, s.backend} {
		s.ebpf("detach", ns)
	}
	s.ebpf("network", "rm", "k8s")
	for _, ns := range []string{s.client, s.backend, s.host} {
		exec.Command("ip", "netns", "delete", ns).Run()
	}
	loader.RemovePins(s.pinRoot)
	os.RemoveAll(s.stateDir)
	if s.tableDir != "" {
		os.RemoveAll(s.tableDir)
	}
}

func (s *sandbox) ebpf(args ...string) (string, error) {
	return s.in(s.host, append([]string{s.ebpfnet, "--state-dir", s.stateDir, "--pin-root", s.pinRoot}, args...)...)
}

func (s *sandbox) in(ns string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	return string(out), err
}

func (s *sandbox) inStdin(ns, stdin string, args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// tool runs the in-namespace subcommands (serve, check, connrate).
func tool(args []string) bool {
	fs := flag.NewFlagSet(args[0], flag.ExitOnError)
	addr := fs.String("addr", "", "address")
	switch args[0] {
	case "serve":
		name := fs.String("name", srvName, "name the server answers with")
		fs.Parse(args[1:])
		if err := netperf.ServeUntilSignal(*name, *addr); err != nil {
			fail(err)
		}
	case "check":
		fs.Parse(args[1:])
		if _, err := netperf.Check("tcp4", *addr, srvName, "", 2*time.Second); err != nil {
			fail(err)
		}
	case "connrate":
		conc := fs.Int("conc", 4, "concurrent workers")
		dur := fs.Duration("duration", 5*time.Second, "time bound")
		fs.Parse(args[1:])
		netperf.ConnRate(*addr, srvName, *conc, 200, 2*time.Second) // warm-up
		r, err := netperf.ConnRate(*addr, srvName, *conc, 2_000_000, *dur)
		if err != nil {
			fail(err)
		}
		json.NewEncoder(os.Stdout).Encode(r)
	default:
		return false
	}
	return true
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func spread(v []float64) string {
	if len(v) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f [%.0f-%.0f]", median(v), slices.Min(v), slices.Max(v))
}

func spreadDur(v []time.Duration) string {
	if len(v) == 0 {
		return "-"
	}
	s := slices.Clone(v)
	slices.Sort(s)
	r := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	return fmt.Sprintf("%s [%s-%s]", r(s[len(s)/2]), r(s[0]), r(s[len(s)-1]))
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "svc-bench:", err)
	os.Exit(1)
}
