package integration

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/ebpfnet/ebpfnet/internal/testing/testutil"
)

// iperf runs an iperf3 server in srvNS (one test, then it exits) and a
// client in cliNS, and returns the bytes the receiver got.
func iperf(t *testing.T, tp *testutil.Topology, srvNS, cliNS, target string, port int, args ...string) float64 {
	t.Helper()
	srv := exec.Command("ip", "netns", "exec", srvNS, "iperf3", "-s", "-1", "-p", fmt.Sprint(port))
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	time.Sleep(300 * time.Millisecond)
	full := append([]string{"netns", "exec", cliNS, "timeout", "30", "iperf3", "-c", target, "-p", fmt.Sprint(port), "-t", "2", "-J"}, args...)
	out, err := exec.Command("ip", full...).Output()
	if err != nil {
		t.Fatalf("iperf3 %v: %v\n%s", args, err, out)
	}
	var r struct {
		End struct {
			SumReceived struct{ Bytes float64 } `json:"sum_received"`
			Sum         struct {
				Bytes       float64
				LostPercent float64 `json:"lost_percent"`
			} `json:"sum"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("iperf3 output: %v\n%s", err, out)
	}
	if r.End.SumReceived.Bytes > 0 {
		return r.End.SumReceived.Bytes
	}
	if r.End.Sum.LostPercent > 50 {
		t.Fatalf("iperf3 %v lost %.0f%% of UDP datagrams", args, r.End.Sum.LostPercent)
	}
	return r.End.Sum.Bytes
}

func TestIperfThroughNAT(t *testing.T) {
	tp := natHost(t)
	c := tp.AddContainer("c")
	tp.MustEbpfnet("attach", "--network", "n1", "-p", "5201:5201", "-p", "5201:5201/udp", c)
	for _, tc := range []struct {
		name           string
		srv, cli, addr string
		args           []string
	}{
		{"DNAT ingress TCP", c, tp.Ext, hostAddr, nil},
		{"DNAT ingress TCP reverse", c, tp.Ext, hostAddr, []string{"-R"}},
		{"DNAT ingress UDP", c, tp.Ext, hostAddr, []string{"-u", "-b", "200M"}},
		{"SNAT egress TCP", tp.Ext, c, extAddr, nil},
		{"SNAT egress TCP reverse", tp.Ext, c, extAddr, []string{"-R"}},
		{"SNAT egress UDP", tp.Ext, c, extAddr, []string{"-u", "-b", "200M"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := iperf(t, tp, tc.srv, tc.cli, tc.addr, 5201, tc.args...); got < 1e6 {
				t.Fatalf("only %.0f bytes arrived", got)
			}
		})
	}
	assertNoNetfilter(t, tp)
}
