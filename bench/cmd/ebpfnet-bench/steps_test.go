package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

// Step times are grouped into the table's metrics, every metric is present,
// and what main spent outside the timed steps is "other".
func TestParseStepTimes(t *testing.T) {
	stderr := "some warning\n" + stepTimesPrefix +
		`{"start_us":30000,"main_us":20000,"steps_us":{"store open":1000,"store write":2000,"netlink":5000,"tcx":1500,"something new":500}}` + "\n"
	m := parseStepTimes(stderr, 55*time.Millisecond)
	want := map[string]float64{"start_ms": 30, "store_ms": 3, "netlink_ms": 5, "tcx_ms": 1.5, "other_ms": 0.5 + 10, "exit_ms": 5, "load_ms": 0}
	for k, v := range want {
		if math.Abs(m[k]-v) > 1e-9 {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	for _, d := range stepMetrics {
		if _, ok := m[d.name]; !ok {
			t.Errorf("metric %s missing", d.name)
		}
	}
	// This build's name of the step, and an older build's, count alike.
	both := parseStepTimes(stepTimesPrefix+`{"main_us":3000,"steps_us":{"program attach":300,"tcx":700}}`+"\n", 5*time.Millisecond)
	if math.Abs(both["tcx_ms"]-1) > 1e-9 {
		t.Errorf("program attach + tcx = %v ms, want 1", both["tcx_ms"])
	}
	if parseStepTimes("no steps here\n", time.Second) != nil {
		t.Error("a command without the step line gave step times")
	}
	if got := withoutStepTimes(stderr); strings.Contains(got, stepTimesPrefix) || !strings.Contains(got, "some warning") {
		t.Errorf("withoutStepTimes = %q", got)
	}
}

// The range publish is Docker 28+'s: per protocol one DNAT, one accept and
// one hairpin masquerade matching the whole range, each as check, append
// and delete.
func TestIptablesRangeCmds(t *testing.T) {
	cmds := iptablesRangeCmds("172.30.199.2")
	if len(cmds) != 2*3*3 {
		t.Fatalf("%d commands, want 18", len(cmds))
	}
	for i, c := range cmds {
		line := strings.Join(c, " ")
		op := []string{"-C", "-A", "-D"}[i%3]
		if !strings.Contains(line, " "+op+" ") || !strings.Contains(line, "--dport 20000:40000") {
			t.Errorf("command %d: %s", i, line)
		}
	}
	if !strings.Contains(strings.Join(cmds[1], " "), "DNAT --to-destination 172.30.199.2:20000-40000") {
		t.Errorf("DNAT rule: %v", cmds[1])
	}
}

// The kernel VXLAN column is Docker's classic overlay: VNI on the IANA port,
// no learning, the peer host in the FDB, the bridge in the host namespace,
// the overlay MTU on both veth ends and the container's address in a /24.
func TestKernelVXLANCmds(t *testing.T) {
	cmds := kernelVXLANCmds("o-k1", "o-k1c", "198.18.0.21", "198.18.0.22", "10.220.0.2")
	var all []string
	for _, c := range cmds {
		all = append(all, strings.Join(c, " "))
	}
	want := []string{
		"ip netns exec o-k1 ip link add vx0 type vxlan id " + kvxVNI + " dstport 4789 local 198.18.0.21 nolearning",
		"ip netns exec o-k1 ip link set vx0 master br-ov up",
		"ip netns exec o-k1 bridge fdb append 00:00:00:00:00:00 dev vx0 dst 198.18.0.22",
		"ip link add veth0 netns o-k1 mtu 1450 type veth peer name eth0 netns o-k1c mtu 1450",
		"ip netns exec o-k1 ip link set veth0 master br-ov up",
		"ip netns exec o-k1c ip addr add 10.220.0.2/24 dev eth0",
	}
	joined := strings.Join(all, "\n")
	for _, w := range want {
		if !strings.Contains(joined, w) {
			t.Errorf("missing %q in:\n%s", w, joined)
		}
	}
	// The bridge exists before anything is put on it.
	if !strings.HasSuffix(all[0], "ip link add br-ov type bridge") {
		t.Errorf("first command %q, want the bridge", all[0])
	}
}
