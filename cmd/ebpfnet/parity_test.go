package main

import (
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/datapath"
)

// Docker users' expectations of inspect, port, network rm and version.
func TestDockerShapedOutput(t *testing.T) {
	tp := newHost(t)
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	tp.MustEbpfnet("network", "create", "n2", "--subnet", "172.31.0.0/24")
	c1, c2 := tp.AddContainer("c1"), tp.AddContainer("c2")
	tp.MustEbpfnet("attach", "--network", "n1", "--ip", "172.30.0.5", "-p", "8080:80", "-p", "5353:53/udp", c1)
	tp.MustEbpfnet("attach", "--network", "n1", c2)
	runCases(t, tp, []cliCase{
		{name: "inspect is an array", args: []string{"inspect", c1}, stdout: `^\[\n  \{\n    "name": "` + c1},
		{name: "inspect several", args: []string{"inspect", "--format", "{{.Name}} {{.Network}}", c1, c2}, stdout: `^` + c1 + ` n1\n` + c2 + ` n1\n$`},
		{name: "inspect one missing", args: []string{"inspect", "--format", "{{.Name}}", c1, "nope"}, code: 1, stdout: `^` + c1 + `\n$`, stderr: `no endpoint nope`},
		{name: "network inspect several", args: []string{"network", "inspect", "-f", "{{.Name}} {{.Subnet}} {{len .Endpoints}}", "n1", "n2"}, stdout: `^n1 172\.30\.0\.0/24 2\nn2 172\.31\.0\.0/24 0\n$`},
		{name: "network ls quiet", args: []string{"network", "ls", "-q"}, stdout: `^host\nn1\nn2\nnone\n$`},
		{name: "network ls json", args: []string{"network", "ls", "-o", "json"}, stdout: `(?s)"name": "n1".*"name": "n2"`},
		{name: "port of one container port", args: []string{"port", c1, "80"}, stdout: `^0\.0\.0\.0:8080\n$`},
		{name: "port with protocol", args: []string{"port", c1, "53/udp"}, stdout: `^0\.0\.0\.0:5353\n$`},
		{name: "port not published", args: []string{"port", c1, "81"}, code: 1, stderr: `no public port '81/tcp' published for ` + c1},
		{name: "port bad", args: []string{"port", c1, "80/sctp"}, code: 1, stderr: `invalid port "80/sctp"`},
		{name: "network rm removes what it can", args: []string{"network", "rm", "n1", "n2", "nope"}, code: 1, stdout: `^n2\n$`,
			stderr: `(?s)^ebpfnet: network n1 has attached endpoints.*\nebpfnet: network nope not found\n$`},
		{name: "version", args: []string{"version"}, stdout: `^ebpfnet version \S+, go1\.`},
		{name: "--version", args: []string{"--version"}, stdout: `^ebpfnet version \S+, go1\.`},
		{name: "ct ls json", args: []string{"ct", "ls", "-o", "json"}, stdout: `^\[\]\n$`},
		{name: "nat ls json", args: []string{"nat", "ls", "-o", "json"}, stdout: `(?s)"published": \[.*"proto": "udp",\s+"host_port": 5353.*"translations": \[\]`},
	})
}

// run -d, ls STATUS, rm and prune: the lifecycle of endpoints ebpfnet run
// made.
func TestRunDetachedRmPrune(t *testing.T) {
	tp := newHost(t)
	tp.MustEbpfnet("network", "create", "n1", "--subnet", "172.30.0.0/24")
	long, short := tp.Prefix+"-long", tp.Prefix+"-short"
	runCases(t, tp, []cliCase{
		{name: "detached", args: []string{"run", "-d", "--name", long, "--network", "n1", "--", "sh", "-c", "echo started; exec sleep 60"}, stdout: `^` + long + `\n$`},
		{name: "detached, short-lived", args: []string{"run", "-d", "--name", short, "--network", "n1", "--", "true"}, stdout: `^` + short + `\n$`},
		{name: "detached needs a namespace", args: []string{"run", "-d", "--network", "host", "--", "true"}, code: 125, stderr: `-d needs a namespace of its own`},
		{name: "running", args: []string{"ls", "--format", "{{.Name}} {{.Status}}"}, stdout: long + ` running`},
		{name: "logs", args: []string{"logs", long}, stdout: `^started\n$`},
		{name: "rm refuses a running one", args: []string{"rm", long}, code: 1, stderr: `its command is running: stop it first or use --force`},
	})
	// The short one's endpoint is freed when its command exits.
	deadline := time.Now().Add(10 * time.Second)
	for strings.Contains(run(t, tp, "ls", "-q").stdout, short) {
		if time.Now().After(deadline) {
			t.Fatalf("endpoint %s still attached after its command exited", short)
		}
		time.Sleep(100 * time.Millisecond)
	}
	runCases(t, tp, []cliCase{
		{name: "rm --force", args: []string{"rm", "--force", long}, stdout: `^` + long + `\n$`},
		{name: "rm missing", args: []string{"rm", "nope"}, code: 1, stderr: `no endpoint nope`},
		{name: "all gone", args: []string{"ls", "-q"}, stdout: `^$`},
	})
	// A run --rm killed with SIGKILL leaves its endpoint: ls shows it, as
	// exited once its command is gone, and prune removes it and its namespace.
	killed := tp.Prefix + "-killed"
	sup := tp.EbpfnetCmd("run", "--rm", "--name", killed, "--network", "n1", "--", "sleep", "1")
	if err := sup.Start(); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(run(t, tp, "ls", "-q").stdout, killed) {
		if time.Now().After(deadline.Add(10 * time.Second)) {
			t.Fatal("run --rm never attached")
		}
		time.Sleep(50 * time.Millisecond)
	}
	sup.Process.Kill() // ip netns exec execs ebpfnet: this is its PID
	sup.Wait()
	c3 := tp.AddContainer("c3")
	tp.MustEbpfnet("attach", "--network", "n1", c3)
	testutilDeleteNetns(t, c3)
	waitStatus := time.Now().Add(10 * time.Second)
	for !strings.Contains(run(t, tp, "ls", "--format", "{{.Name}} {{.Status}}").stdout, killed+" exited") {
		if time.Now().After(waitStatus) {
			t.Fatalf("killed run's endpoint never shows as exited:\n%s", run(t, tp, "ls").stdout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	runCases(t, tp, []cliCase{
		{name: "vanished namespace", args: []string{"ls", "--format", "{{.Name}} {{.Status}}"}, stdout: c3 + ` namespace gone`},
		{name: "prune", args: []string{"prune"}, stdout: `^(` + c3 + `\n` + killed + `|` + killed + `\n` + c3 + `)\n$`},
		{name: "nothing left", args: []string{"ls", "-q"}, stdout: `^$`},
	})
	if _, err := os.Stat("/run/netns/" + killed); err == nil {
		t.Errorf("prune left the namespace of %s", killed)
	}
}

func TestMonitorJSONFields(t *testing.T) {
	ev := datapath.MonitorEvent{Interface: "vethab", Endpoint: "web"}
	ev.Type, ev.Reason, ev.Direction, ev.Ifindex, ev.Len = "drop", "spoofed_ip", "from_container", 7, 60
	ev.Tuple = datapath.Tuple{Proto: 17, Src: netip.MustParseAddrPort("172.30.0.9:5353"), Dst: netip.MustParseAddrPort("198.18.0.1:53")}
	raw, err := json.Marshal(newJSONEvent(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), ev))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"time":"2026-01-02T03:04:05Z","type":"drop","reason":"spoofed_ip","direction":"from_container","interface":"vethab","ifindex":7,"endpoint":"web","len":60,"protocol":"udp","src":"172.30.0.9","src_port":5353,"dst":"198.18.0.1","dst_port":53}`
	if string(raw) != want {
		t.Errorf("got  %s\nwant %s", raw, want)
	}
}

func testutilDeleteNetns(t *testing.T, name string) {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns delete %s: %v %s", name, err, out)
	}
}
