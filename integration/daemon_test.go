package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/internal/netnsutil"
	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

// httpIn is an HTTP client whose sockets live in ns (to reach a loopback
// address of a sandbox host).
func httpIn(ns netnsutil.Namespace) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(_ context.Context, network, addr string) (net.Conn, error) {
			return testutil.Dial(ns, network, addr, 3*time.Second)
		},
		DisableKeepAlives: true,
	}}
}

func get(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// sample returns the value of the series with exactly these labels.
func sample(body, name string, labels ...string) float64 {
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if ok {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			return v
		}
	}
	return -1
}

// twoContainers attaches c1 (172.30.0.2) and c2 (172.30.0.3) to network n1.
func twoContainers(tp *testutil.Topology) (c1, c2 string) {
	c1, c2 = tp.AddContainer("c1"), tp.AddContainer("c2")
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	tp.MustEbpfnet("attach", "--network", "n1", c1)
	tp.MustEbpfnet("attach", "--network", "n1", c2)
	return c1, c2
}

// startDaemon runs `ebpfnet daemon` in the host namespace, stopped by PID in
// cleanup.
func startDaemon(t *testing.T, tp *testutil.Topology, addr string) *exec.Cmd {
	t.Helper()
	d := tp.EbpfnetCmd("daemon", "--metrics-addr", addr, "--gc-interval", "500ms")
	d.Stderr = os.Stderr
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Process.Signal(syscall.SIGTERM); d.Wait() })
	c := httpIn(tp.Namespace(tp.Host))
	waitFor(t, 10*time.Second, func() bool {
		resp, err := c.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	return d
}

func TestDaemonMetricsMoveWithTraffic(t *testing.T) {
	tp := newTopology(t)
	c1, c2 := twoContainers(tp)
	startDaemon(t, tp, "127.0.0.1:9469")
	client := httpIn(tp.Namespace(tp.Host))
	url := "http://127.0.0.1:9469/metrics"

	tp.Exec(c1, "ping", "-c", "1", "-W", "2", "172.30.0.3") // ARP warm-up
	before := get(t, client, url)
	const n = 10
	tp.Exec(c1, "ping", "-c", strconv.Itoa(n), "-i", "0.01", "-W", "2", "172.30.0.3")
	// A spoofed source: an address that is not c1's.
	tp.Exec(c1, "ip", "addr", "add", "172.30.0.99/32", "dev", "eth0")
	exec.Command("ip", "netns", "exec", c1, "ping", "-c", "1", "-W", "1", "-I", "172.30.0.99", "172.30.0.3").Run()
	after := get(t, client, url)

	fwd := `direction="from_container",verdict="forward"`
	if d := sample(after, "ebpfnet_packets_total", fwd) - sample(before, "ebpfnet_packets_total", fwd); d < 2*n {
		t.Errorf("forward packets rose by %v, want >= %d", d, 2*n)
	}
	rx := fmt.Sprintf(`endpoint=%q,network="n1"`, c2)
	if d := sample(after, "ebpfnet_endpoint_packets_total", `direction="rx"`, rx) - sample(before, "ebpfnet_endpoint_packets_total", `direction="rx"`, rx); d < n {
		t.Errorf("c2 rx packets rose by %v, want >= %d", d, n)
	}
	spoof := `reason="spoofed_ip"`
	if d := sample(after, "ebpfnet_drops_total", spoof) - sample(before, "ebpfnet_drops_total", spoof); d != 1 {
		t.Errorf("spoofed_ip drops rose by %v, want 1", d)
	}
	for _, want := range []string{
		`ebpfnet_endpoints{network="n1"} 2`,
		`ebpfnet_map_capacity_entries{map="endpoints"}`,
		`ebpfnet_build_info{`,
		`ebpfnet_operation_duration_seconds_count{operation="attach"} 2`,
		`ebpfnet_operation_duration_seconds_count{operation="map_update"} 2`,
		`# HELP ebpfnet_drops_total`,
		`go_goroutines`,
		`process_cpu_seconds_total`,
	} {
		if !strings.Contains(after, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestDaemonFreesEndpointsOfVanishedNamespaces(t *testing.T) {
	tp := newTopology(t)
	c1, c2 := twoContainers(tp)
	startDaemon(t, tp, "127.0.0.1:9469")
	testutil.Run(t, "ip", "netns", "delete", c2) // the container dies without a detach
	waitFor(t, 10*time.Second, func() bool {
		out := tp.MustEbpfnet("ls")
		return strings.Contains(out, c1) && !strings.Contains(out, c2)
	})
	// Its address is free again.
	c3 := tp.AddContainer("c3")
	if out := tp.MustEbpfnet("attach", "--network", "n1", c3); !strings.Contains(out, "172.30.0.3") {
		t.Fatalf("attach after reconcile: %s, want the freed 172.30.0.3", out)
	}
}

func TestPrometheusScrapesDaemon(t *testing.T) {
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus is not installed: run make deps")
	}
	tp := newTopology(t)
	c := tp.AddContainer("c")
	tp.MustEbpfnet("attach", c)
	startDaemon(t, tp, "127.0.0.1:9469")

	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	os.WriteFile(cfg, []byte(`global:
  scrape_interval: 1s
scrape_configs:
  - job_name: ebpfnet
    static_configs:
      - targets: ["127.0.0.1:9469"]
`), 0o644)
	p := exec.Command("ip", "netns", "exec", tp.Host, prom, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:9090")
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Process.Signal(syscall.SIGTERM); p.Wait() })

	client := httpIn(tp.Namespace(tp.Host))
	query := func(q string) []any {
		resp, err := client.Get("http://127.0.0.1:9090/api/v1/query?query=" + q)
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		var r struct {
			Data struct {
				Result []struct {
					Value []any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		json.NewDecoder(resp.Body).Decode(&r)
		if len(r.Data.Result) == 0 {
			return nil
		}
		return r.Data.Result[0].Value
	}
	waitFor(t, 60*time.Second, func() bool {
		v := query(`up{job="ebpfnet"}`)
		return len(v) == 2 && v[1] == "1"
	})
	if v := query(`ebpfnet_endpoints{network="bridge"}`); len(v) != 2 || v[1] != "1" {
		t.Fatalf("ebpfnet_endpoints via Prometheus = %v, want 1", v)
	}
}

func TestTransferSurvivesDaemonRestart(t *testing.T) {
	tp := natHost(t)
	publishedServer(tp)
	d := startDaemon(t, tp, "127.0.0.1:9469")
	client := httpIn(tp.Namespace(tp.Host))
	dnat := `direction="from_uplink",verdict="dnat"`

	conn, err := testutil.Dial(tp.Namespace(tp.Ext), "tcp4", hostAddr+":8080", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := conn.Write([]byte("sink\n")); err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 256<<10)
	const chunks = 120 // 30 MiB over about 1.2 s
	sent := 0
	for i := 0; i < chunks; i++ {
		if i == 20 {
			before := sample(get(t, client, "http://127.0.0.1:9469/metrics"), "ebpfnet_packets_total", dnat)
			d.Process.Kill() // no chance to clean up: as a crash would be
			d.Wait()
			d = startDaemon(t, tp, "127.0.0.1:9469")
			after := sample(get(t, client, "http://127.0.0.1:9469/metrics"), "ebpfnet_packets_total", dnat)
			if before <= 0 || after < before {
				t.Fatalf("dnat packets %v before the restart, %v after: counters must continue from the maps", before, after)
			}
		}
		n, err := conn.Write(chunk)
		if err != nil {
			t.Fatalf("transfer broke after %d bytes (daemon restart at chunk 20): %v", sent, err)
		}
		sent += n
		time.Sleep(10 * time.Millisecond)
	}
	conn.(*net.TCPConn).CloseWrite()
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("no byte count from the server: %v", err)
	}
	if got, _ := strconv.Atoi(strings.TrimSpace(reply)); got != sent {
		t.Fatalf("server received %d bytes, sent %d", got, sent)
	}
}

func TestMonitorStreamsDropsAndNewFlows(t *testing.T) {
	tp := newTopology(t)
	c1, c2 := twoContainers(tp)
	events := monitorEvents(t, tp.EbpfnetCmd("monitor", "-o", "json"))

	tp.Exec(c1, "ip", "addr", "add", "172.30.0.99/32", "dev", "eth0")
	// ARP from the spoofed address is dropped (spoofed_arp): give c1 c2's
	// MAC so that the spoofed IPv4 packet itself is sent.
	c2MAC := strings.TrimSpace(tp.Exec(c2, "cat", "/sys/class/net/eth0/address"))
	tp.Exec(c1, "ip", "neigh", "replace", "172.30.0.3", "lladdr", c2MAC, "dev", "eth0", "nud", "permanent")
	testutil.Serve(t, tp.Namespace(tp.Ext), "ext", ":9000")
	sawNewFlow := false
	deadline := time.After(30 * time.Second) // generous: a loaded 2-core machine
	for {
		// The monitor may still be starting: keep sending until it reports.
		exec.Command("ip", "netns", "exec", c1, "ping", "-c", "1", "-W", "1", "-I", "172.30.0.99", "172.30.0.3").Run()
		testutil.Ask(tp.Namespace(c1), "tcp4", extAddr+":9000") // a new masqueraded flow
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("monitor exited")
			}
			tuple := fmt.Sprintf("%v %v:%v -> %v:%v", ev["protocol"], ev["src"], ev["src_port"], ev["dst"], ev["dst_port"])
			if ev["type"] == "new_flow" {
				if !strings.HasPrefix(tuple, "tcp 172.30.0.2:") || !strings.HasSuffix(tuple, "-> "+extAddr+":9000") || ev["endpoint"] != c1 {
					t.Fatalf("new flow event %v", ev)
				}
				sawNewFlow = true
				continue
			}
			if ev["type"] == "drop" && (ev["reason"] == "ipv6" || ev["reason"] == "spoofed_arp") {
				continue // IPv6 neighbour discovery and ARP for the spoofed address: dropped too
			}
			if ev["type"] != "drop" || ev["reason"] != "spoofed_ip" || !strings.HasPrefix(tuple, "icmp 172.30.0.99:") ||
				!strings.Contains(tuple, "-> 172.30.0.3:") || ev["endpoint"] != c1 {
				t.Fatalf("event %v: want a spoofed_ip drop 172.30.0.99 -> 172.30.0.3 on %s's veth", ev, c1)
			}
			if sawNewFlow {
				return
			}
		case <-deadline:
			t.Fatalf("within 30s: no drop event, or no new flow event (saw one: %v)", sawNewFlow)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// A daemon running while the instance is emptied (pins removed) and filled
// again must serve the new maps, not the dead ones it opened first.
func TestDaemonFollowsRepinnedDatapath(t *testing.T) {
	tp := newTopology(t)
	c1, _ := twoContainers(tp)
	var logs syncBuffer
	d := tp.EbpfnetCmd("daemon", "--metrics-addr", "127.0.0.1:9471", "--gc-interval", "500ms")
	d.Stderr = &logs
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Process.Signal(syscall.SIGTERM); d.Wait() })
	client := httpIn(tp.Namespace(tp.Host))
	waitFor(t, 10*time.Second, func() bool {
		resp, err := client.Get("http://127.0.0.1:9471/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	get(t, client, "http://127.0.0.1:9471/metrics")

	tp.MustEbpfnet("detach", c1, tp.Prefix+"-c2")
	tp.MustEbpfnet("network", "rm", "n1")
	c3 := tp.AddContainer("c3")
	tp.MustEbpfnet("network", "create", "n2", "--subnet", "172.31.0.0/24")
	tp.MustEbpfnet("attach", "--network", "n2", "-p", "8080:80", c3)
	testutil.Serve(t, tp.Namespace(c3), "c3", "0.0.0.0:80")
	testutil.MustAsk(t, tp.Namespace(tp.Ext), "tcp", testutil.HostIP+":8080")

	body := get(t, client, "http://127.0.0.1:9471/metrics")
	if v := sample(body, "ebpfnet_map_entries", `map="ports"`); v != 1 {
		t.Errorf("ports map entries = %v, want 1 (the new datapath's)\n%s", v, body)
	}
	if v := sample(body, "ebpfnet_packets_total", `direction="from_uplink"`, `verdict="dnat"`); v < 1 {
		t.Errorf("dnat packets = %v, want the new datapath's traffic", v)
	}
	waitFor(t, 5*time.Second, func() bool { return strings.Contains(logs.String(), "reopening it") })
}

// syncBuffer collects a child's output while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
