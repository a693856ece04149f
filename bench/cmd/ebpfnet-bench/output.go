package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/ebpfnet/ebpfnet/bench/internal/report"
	"github.com/ebpfnet/ebpfnet/bench/internal/stats"
)

func (c *config) params() map[string]string {
	return map[string]string{
		"client_cpu":     fmt.Sprint(c.clientCPU),
		"server_cpu":     fmt.Sprint(c.serverCPU),
		"iperf3":         fmt.Sprintf("-t %d -O %d (seconds measured, seconds omitted as warm-up), 1 stream", c.iperfTime, c.iperfOmit),
		"rr":             fmt.Sprintf("%d-byte messages, %d warm-up + %d measured round trips on one connection (%d in scaling runs)", c.rrSize, c.rrWarmup, c.rrN, c.rrScaleN),
		"connrate":       fmt.Sprintf("%d workers, %d warm-up connections, then %s (%s in scaling runs), at most %d connections", c.connConc, c.connWarmup, c.connTime, c.connScaleTime, c.connMax),
		"udp":            fmt.Sprintf("%d-byte datagrams from one socket for %s, at most %d", c.udpSize, c.udpTime, c.udpMax),
		"scale_n":        fmt.Sprint(c.scaleNs),
		"attach_n":       fmt.Sprint(c.attachNs),
		"ebpfnet_bin":    c.ebpfnetSrc + " (run from a private copy)",
		"other_ports_at": "host ports 10000+, 1000 per dummy container; their rules precede the measured ones",
	}
}

func cmdOut(args ...string) string {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}

func machineInfo(c *config) map[string]string {
	m := map[string]string{
		"kernel":         cmdOut("uname", "-r"),
		"cpus":           fmt.Sprint(runtime.NumCPU()),
		"go":             runtime.Version(),
		"iptables":       cmdOut("iptables", "-V"),
		"nft":            cmdOut("nft", "-v"),
		"iperf3":         cmdOut("iperf3", "-v"),
		"commit":         cmdOut("git", "rev-parse", "--short", "HEAD"),
		"ebpfnet":        c.ebpfnetSrc,
		"ebpfnet_sha256": c.ebpfnetSum,
	}
	m["loadavg_start"] = loadavg()
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				_, v, _ := strings.Cut(l, ":")
				m["cpu"] = strings.TrimSpace(v)
				break
			}
		}
	}
	if st, err := os.Stat(c.ebpfnetSrc); err == nil {
		m["ebpfnet_built"] = st.ModTime().Format(time.RFC3339)
	}
	return m
}

// loadavg is /proc/loadavg's 1, 5 and 15 minute averages: other work on the
// machine shows up here.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// rows is the table: one line per metric, host-mode ratios from the same
// repetition (scaling rows against host at N=0).
func (b *bench) rows() []report.Row {
	k := func(w, m string, n int) report.Key { return report.Key{Workload: w, Metric: m, N: n} }
	ref := func(w, m string, n int) *report.Key { r := k(w, m, n); return &r }
	var rows []report.Row
	add := func(sec, label, w, m string, n int, r *report.Key) {
		rows = append(rows, report.Row{Section: sec, Label: label, Key: k(w, m, n), Ref: r})
	}
	no := report.NoN
	has := func(w, m string) bool { return b.res.HasMode(k(w, m, no), "ebpfnet") }
	// ran: a part's rows only when it ran (-only runs some parts).
	ran := func(ws ...string) bool {
		for _, smp := range b.res.Samples {
			if slicesContains(ws, smp.Workload) {
				return true
			}
		}
		return false
	}
	s := "Throughput and latency (ratio: ×host, same repetition)"
	if ran("dnat_tcp", "snat_tcp", "dnat_rr", "dnat_connrate", "dnat_udp", "c2c_tcp", "c2c_rr") {
		add(s, "DNAT ingress TCP, Gbit/s (ext → host:5201 → c1)", "dnat_tcp", "gbps", no, ref("dnat_tcp", "gbps", no))
		add(s, "SNAT egress TCP, Gbit/s (c1 → ext)", "snat_tcp", "gbps", no, ref("snat_tcp", "gbps", no))
		add(s, "DNAT request/response avg, µs", "dnat_rr", "avg_us", no, ref("dnat_rr", "avg_us", no))
		add(s, "DNAT request/response p99, µs", "dnat_rr", "p99_us", no, ref("dnat_rr", "p99_us", no))
		add(s, "DNAT new connections, conn/s", "dnat_connrate", "conn_per_sec", no, ref("dnat_connrate", "conn_per_sec", no))
		add(s, "DNAT new connection p99, µs", "dnat_connrate", "conn_p99_us", no, ref("dnat_connrate", "conn_p99_us", no))
		add(s, "DNAT UDP received, kpps (64 B)", "dnat_udp", "kpps", no, ref("dnat_udp", "kpps", no))
		add(s, "container → container TCP, Gbit/s", "c2c_tcp", "gbps", no, ref("c2c_tcp", "gbps", no))
		add(s, "container → container RR avg, µs", "c2c_rr", "avg_us", no, ref("c2c_rr", "avg_us", no))
		add(s, "container → container RR p99, µs", "c2c_rr", "p99_us", no, ref("c2c_rr", "p99_us", no))
	}
	if ran("dnat6_tcp", "dnat6_rr", "dnat6_connrate", "snat6_tcp", "snat6_rr", "snat6_connrate", "c2c6_tcp", "c2c6_rr") {
		s = "IPv6 (own dual-stack sandboxes; columns: host = no container, iptables = Docker 28's bridge with ip6tables rules and IPv6 forwarding, ebpfnet = a dual-stack ebpfnet network; ratio: ×host, same repetition)"
		add(s, "DNAT ingress TCP over IPv6, Gbit/s (ext → [2001:db8:18::2]:5201 → c1, client kept; host: ext → host)", "dnat6_tcp", "gbps", no, ref("dnat6_tcp", "gbps", no))
		add(s, "DNAT IPv6 request/response avg, µs", "dnat6_rr", "avg_us", no, ref("dnat6_rr", "avg_us", no))
		add(s, "DNAT IPv6 request/response p99, µs", "dnat6_rr", "p99_us", no, ref("dnat6_rr", "p99_us", no))
		add(s, "DNAT IPv6 new connections, conn/s", "dnat6_connrate", "conn_per_sec", no, ref("dnat6_connrate", "conn_per_sec", no))
		add(s, "DNAT IPv6 new connection p99, µs", "dnat6_connrate", "conn_p99_us", no, ref("dnat6_connrate", "conn_p99_us", no))
		add(s, "SNAT egress TCP over IPv6, Gbit/s (c1 → ext [2001:db8:18::1]:5201, masqueraded; host: host → ext)", "snat6_tcp", "gbps", no, ref("snat6_tcp", "gbps", no))
		add(s, "SNAT egress IPv6 request/response avg, µs", "snat6_rr", "avg_us", no, ref("snat6_rr", "avg_us", no))
		add(s, "SNAT egress IPv6 request/response p99, µs", "snat6_rr", "p99_us", no, ref("snat6_rr", "p99_us", no))
		add(s, "SNAT egress IPv6 new connections, conn/s", "snat6_connrate", "conn_per_sec", no, ref("snat6_connrate", "conn_per_sec", no))
		add(s, "SNAT egress IPv6 new connection p99, µs", "snat6_connrate", "conn_p99_us", no, ref("snat6_connrate", "conn_p99_us", no))
		add(s, "container → container TCP over IPv6, Gbit/s (c2 → [fd00:30::2]; host: ext → host)", "c2c6_tcp", "gbps", no, ref("c2c6_tcp", "gbps", no))
		add(s, "container → container IPv6 RR avg, µs", "c2c6_rr", "avg_us", no, ref("c2c6_rr", "avg_us", no))
		add(s, "container → container IPv6 RR p99, µs", "c2c6_rr", "p99_us", no, ref("c2c6_rr", "p99_us", no))
		add(s, "ebpfnet ÷ ip6tables, DNAT TCP throughput (same repetition)", "ipv6_vs_ip6tables", "dnat_tcp_ratio", no, nil)
		add(s, "ebpfnet ÷ ip6tables, DNAT connection rate (same repetition)", "ipv6_vs_ip6tables", "dnat_conn_ratio", no, nil)
		add(s, "ebpfnet ÷ ip6tables, SNAT TCP throughput (same repetition)", "ipv6_vs_ip6tables", "snat_tcp_ratio", no, nil)
		add(s, "ebpfnet ÷ ip6tables, SNAT connection rate (same repetition)", "ipv6_vs_ip6tables", "snat_conn_ratio", no, nil)
		add(s, "ebpfnet ÷ ip6tables, container → container TCP throughput (same repetition)", "ipv6_vs_ip6tables", "c2c_tcp_ratio", no, nil)
		add(s, "ebpfnet ÷ ip6tables, container → container RR avg latency (same repetition)", "ipv6_vs_ip6tables", "c2c_rr_ratio", no, nil)
	}
	s = "Scaling with N other published ports (ratio: ×host at N=0)"
	for _, n := range b.res.Ns("scale_connrate", "conn_per_sec") {
		add(s, fmt.Sprintf("N=%d new connections, conn/s", n), "scale_connrate", "conn_per_sec", n, ref("scale_connrate", "conn_per_sec", 0))
		add(s, fmt.Sprintf("N=%d new connection p99, µs", n), "scale_connrate", "conn_p99_us", n, ref("scale_connrate", "conn_p99_us", 0))
		add(s, fmt.Sprintf("N=%d request/response p99, µs", n), "scale_rr", "p99_us", n, ref("scale_rr", "p99_us", 0))
	}
	s = "Control plane, ms"
	for _, n := range b.res.Ns("publish_one", "ms") {
		add(s, fmt.Sprintf("publish one more port, N=%d published", n), "publish_one", "ms", n, nil)
	}
	for _, n := range b.res.Ns("attach_one", "ms") {
		add(s, fmt.Sprintf("attach one container, N=%d attached", n), "attach_one", "ms", n, nil)
	}
	for _, n := range b.res.Ns("publish_range", "ms") {
		add(s, fmt.Sprintf("publish a port range, %d bindings (-p 20000-40000 tcp+udp)", n), "publish_range", "ms", n, nil)
	}
	for _, n := range b.res.Ns("unpublish_range", "ms") {
		add(s, fmt.Sprintf("remove that range, %d bindings", n), "unpublish_range", "ms", n, nil)
	}
	for _, n := range b.res.Ns("detach_one", "ms") {
		add(s, fmt.Sprintf("detach one container, N=%d attached", n), "detach_one", "ms", n, nil)
	}
	for _, n := range b.res.Ns("attach_inproc", "ms") {
		add(s, fmt.Sprintf("attach one container in-process (ebpfnet: its daemon's API; iptables/nftables: the same plumbing by netlink from one process, as dockerd makes it), N=%d attached", n), "attach_inproc", "ms", n, nil)
	}
	for _, n := range b.res.Ns("detach_inproc", "ms") {
		add(s, fmt.Sprintf("detach it in-process, N=%d attached", n), "detach_inproc", "ms", n, nil)
	}
	for _, n := range b.res.Ns("ls_all", "ms") {
		add(s, fmt.Sprintf("`ebpfnet ls`, N+1=%d attached", n+1), "ls_all", "ms", n, nil)
	}
	if has("publish_range_rules", "ms") {
		add(s, "start a container publishing the range (iptables/nftables: veth plumbing and Docker 28+'s one rule per range, protocol and purpose, added as Docker adds them)", "publish_range_rules", "ms", no, nil)
		add(s, "remove it again (ebpfnet detach; iptables -D / nft delete by handle, veth delete)", "unpublish_range_rules", "ms", no, nil)
		add(s, "`ebpfnet port` on it (ranges summarized)", "range_port_cmd", "ms", no, nil)
		add(s, "`ebpfnet nat ls` with it published", "range_nat_ls", "ms", no, nil)
	}
	s = "Kernel memory of the datapath's maps"
	for _, n := range b.res.Ns("map_memory", "mib") {
		add(s, fmt.Sprintf("all maps, MiB, N+1=%d attached", n+1), "map_memory", "mib", n, nil)
	}
	if has("ports_map", "kib") {
		add(s, "ports map, KiB (preallocated: the same for 1 or 65536 published ports)", "ports_map", "kib", no, nil)
		add(s, "ports map, bytes per published port (map memory / 65536 entries)", "ports_map", "bytes_per_port", no, nil)
	}
	for _, n := range b.res.Ns("ct_memory", "mib") {
		add(s, fmt.Sprintf("conntrack table of %d entries, MiB", n), "ct_memory", "mib", n, nil)
	}
	s = "Conntrack table filled to the brim (its own ebpfnet sandbox)"
	for _, n := range b.res.Ns("ct_gc", "ms") {
		add(s, fmt.Sprintf("one GC pass over %d live entries, ms", n), "ct_gc", "ms", n, nil)
		add(s, fmt.Sprintf("new connections, conn/s, %d-entry table full", n), "ct_connrate", "conn_per_sec", n, nil)
		add(s, "new connections, conn/s, the same while GC runs back to back", "ct_connrate_gc", "conn_per_sec", n, nil)
		add(s, "GC passes completed meanwhile", "ct_connrate_gc", "gc_passes", n, nil)
		add(s, "new connections, conn/s, the same beside a busy loop instead (control: 2 CPUs, client and server take one each)", "ct_connrate_busy", "conn_per_sec", n, nil)
	}
	if has("overlay_tcp", "gbps") {
		s = "Across two hosts (columns: host = the underlay itself, iptables = kernel VXLAN + bridge as Docker's overlay driver makes them, ebpfnet = ebpfnet overlay; ratio: ×underlay)"
		add(s, "container → container TCP, Gbit/s", "overlay_tcp", "gbps", no, ref("overlay_tcp", "gbps", no))
		add(s, "container → container RR avg, µs", "overlay_rr", "avg_us", no, ref("overlay_rr", "avg_us", no))
		add(s, "container → container RR p99, µs", "overlay_rr", "p99_us", no, ref("overlay_rr", "p99_us", no))
		add(s, "ebpfnet ÷ kernel VXLAN, TCP throughput (same repetition)", "overlay_vs_kernel", "tcp_ratio", no, nil)
		add(s, "ebpfnet ÷ kernel VXLAN, RR avg latency (same repetition)", "overlay_vs_kernel", "rr_ratio", no, nil)
	}
	for _, w := range []struct{ workload, what string }{
		{"attach_steps", "attach one container"},
		{"detach_steps", "detach one container"},
		{"attach_api_steps", "attach one container through the daemon's API"},
		{"detach_api_steps", "detach it through the API"},
		{"publish_range_steps", "start a container publishing 40002 ports"},
		{"unpublish_range_steps", "remove it again"},
	} {
		n := no
		if ns := b.res.Ns(w.workload, "start_ms"); len(ns) > 0 {
			n = ns[0]
		} else if !has(w.workload, "start_ms") {
			continue
		}
		s = fmt.Sprintf("Where an ebpfnet command's time goes, ms: %s", w.what)
		if n != no {
			s += fmt.Sprintf(" (N=%d attached)", n)
		}
		for _, m := range stepMetrics {
			add(s, stepLabels[m.name], w.workload, m.name, n, nil)
		}
	}
	return rows
}

// flatness: conn rate at each N relative to the same mode at N=0.
func (b *bench) flatness() string {
	ns := b.res.Ns("scale_connrate", "conn_per_sec")
	if len(ns) < 2 {
		return ""
	}
	var sb strings.Builder
	sb.WriteString("| conn/s relative to N=0 (same mode) |")
	for _, n := range ns[1:] {
		fmt.Fprintf(&sb, " N=%d |", n)
	}
	sb.WriteString("\n|---|" + strings.Repeat("---|", len(ns)-1) + "\n")
	for _, m := range b.cfg.modes {
		if m == "host" || m == "routed" {
			continue
		}
		fmt.Fprintf(&sb, "| %s |", m)
		base := b.res.Summarize(report.Key{Workload: "scale_connrate", Metric: "conn_per_sec", N: 0}, m, nil)
		for _, n := range ns[1:] {
			c := b.res.Summarize(report.Key{Workload: "scale_connrate", Metric: "conn_per_sec", N: n}, m, nil)
			r := stats.Ratio(c.Values.Median, base.Values.Median)
			if math.IsNaN(r) {
				sb.WriteString(" — |")
			} else {
				fmt.Fprintf(&sb, " ×%.2f |", r)
			}
		}
		sb.WriteString("\n")
	}
	return sb.String()
}

func orUnknown(s string) string { return cmpS(s, "unknown") }

func (b *bench) markdown() string {
	r := b.res
	var sb strings.Builder
	kind := "full"
	if r.Meta.Quick {
		kind = "quick (CI smoke: short runs, fewer repetitions; indicative only)"
	}
	fmt.Fprintf(&sb, "# ebpfnet benchmark results\n\n")
	fmt.Fprintf(&sb, "Run: %s, %s, %d repetition(s), modes interleaved within each (%s; the throughput part starts each repetition one mode further on). ",
		r.Meta.Start.UTC().Format("2006-01-02 15:04 UTC"), kind, r.Meta.Reps, strings.Join(r.Meta.Modes, " → "))
	fmt.Fprintf(&sb, "Took %s.\n\n", r.Meta.End.Sub(r.Meta.Start).Truncate(time.Second))
	mi := r.Meta.Machine
	fmt.Fprintf(&sb, "Machine: %s, %s CPUs, kernel %s; %s; %s; %s; ebpfnet at commit %s (working tree as built). "+
		"Load average (1/5/15 min) at start %s, at end %s: other work on the machine adds noise.\n\n",
		mi["cpu"], mi["cpus"], mi["kernel"], mi["iptables"], mi["nft"], mi["iperf3"], mi["commit"], orUnknown(mi["loadavg_start"]), orUnknown(mi["loadavg_end"]))
	fmt.Fprintf(&sb, "Cells: median (min–max over repetitions) ×ratio to host mode from the same repetition (median of the per-repetition ratios). "+
		"Clients on CPU %s, servers on CPU %s. Method and caveats: [bench/README.md](%s).\n\n", r.Meta.Params["client_cpu"], r.Meta.Params["server_cpu"], b.readmeLink())
	sb.WriteString(report.Markdown(r, b.rows(), r.Meta.Modes))
	if f := b.flatness(); f != "" {
		sb.WriteString("\nConnection rate against the number of other published ports:\n\n" + f)
	}
	if len(r.Notes) > 0 {
		sb.WriteString("\nNotes:\n\n")
		for _, n := range r.Notes {
			sb.WriteString("- " + strings.Join(strings.Fields(n), " ") + "\n")
		}
	}
	sb.WriteString("\nPlots: ![throughput](throughput.svg) ![latency](latency.svg) ![connection rate vs N](scaling_connrate.svg) ![connection p99 vs N](scaling_latency.svg)\n")
	return sb.String()
}

// readmeLink is bench/README.md relative to the results directory.
func (b *bench) readmeLink() string {
	out, err1 := filepath.Abs(b.cfg.out)
	readme, err2 := filepath.Abs("bench/README.md")
	if err1 != nil || err2 != nil {
		return "bench/README.md"
	}
	rel, err := filepath.Rel(out, readme)
	if err != nil {
		return readme
	}
	return filepath.ToSlash(rel)
}

func (b *bench) series(keys []report.Key) []report.Series {
	var out []report.Series
	for _, m := range b.res.Meta.Modes {
		s := report.Series{Name: m}
		if m == "routed" && len(keys) > 0 && keys[0].N != report.NoN {
			continue // traffic only: not in the scaling plots
		}
		if m == "host" && len(keys) > 0 && keys[0].N == 0 {
			s.Name, s.Reference = "host (N=0)", true // measured at N=0 only
		}
		for _, k := range keys {
			c := b.res.Summarize(k, m, nil)
			s.Values = append(s.Values, c.Values)
			note := ""
			switch {
			case c.Total == 0:
				note = "n/a"
			case c.Values.N == 0:
				note = "failed"
			}
			s.Note = append(s.Note, note)
		}
		out = append(out, s)
	}
	return out
}

func (b *bench) write() error {
	dir := b.cfg.out
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(b.res, "", " ")
	if err != nil {
		return err
	}
	no := report.NoN
	k := func(w, m string, n int) report.Key { return report.Key{Workload: w, Metric: m, N: n} }
	files := map[string]string{
		"results.json": string(js) + "\n",
		"results.md":   b.markdown(),
		"throughput.svg": report.BarChart("TCP throughput (median, min–max)", report.Axis{Unit: "Gbit/s", Better: report.HigherBetter},
			[]string{"DNAT ingress", "SNAT egress", "container→container"},
			b.series([]report.Key{k("dnat_tcp", "gbps", no), k("snat_tcp", "gbps", no), k("c2c_tcp", "gbps", no)})),
		"latency.svg": report.BarChart("Request/response latency, 64 B (median, min–max)", report.Axis{Unit: "µs", Better: report.LowerBetter},
			[]string{"DNAT avg", "DNAT p99", "c2c avg", "c2c p99"},
			b.series([]report.Key{k("dnat_rr", "avg_us", no), k("dnat_rr", "p99_us", no), k("c2c_rr", "avg_us", no), k("c2c_rr", "p99_us", no)})),
	}
	ns := b.res.Ns("scale_connrate", "conn_per_sec")
	var xl []string
	var ck, lk []report.Key
	for _, n := range ns {
		xl = append(xl, fmt.Sprint(n))
		ck = append(ck, k("scale_connrate", "conn_per_sec", n))
		lk = append(lk, k("scale_connrate", "conn_p99_us", n))
	}
	files["scaling_connrate.svg"] = report.LineChart("New connections/s through a published port vs other published ports", report.Axis{Unit: "connections/s", Better: report.HigherBetter, Log: true}, "N other published ports (host: N=0 only)", xl, b.series(ck))
	files["scaling_latency.svg"] = report.LineChart("New-connection latency p99 vs other published ports", report.Axis{Unit: "µs (p99)", Better: report.LowerBetter, Log: true}, "N other published ports (host: N=0 only)", xl, b.series(lk))
	for name, content := range files {
		tmp := filepath.Join(dir, name+".tmp")
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	b.logf("results: %s/{results.json,results.md,*.svg}", dir)
	fmt.Println()
	fmt.Print(report.Markdown(b.res, b.rows(), b.res.Meta.Modes))
	return nil
}
