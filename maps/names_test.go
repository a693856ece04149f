package maps

import (
	"maps"
	"strings"
	"testing"

	"github.com/ebpfnet/ebpfnet/loader"
)

// The labels come from the C enums' BTF; these are the ones dashboards and
// alerts use, so a rename in C must show up here.
func TestLabelsFromBTF(t *testing.T) {
	wantDirs := map[loader.Direction]string{loader.DirFromContainer: "from_container", loader.DirFromUplink: "from_uplink", loader.DirFromOverlay: "from_overlay", loader.DirFromHost: "from_host"}
	if !maps.Equal(DirectionNames(), wantDirs) {
		t.Errorf("DirectionNames = %v, want %v", DirectionNames(), wantDirs)
	}
	wantVerdicts := map[loader.Verdict]string{
		loader.VerdictForward: "forward", loader.VerdictSNAT: "snat", loader.VerdictDNAT: "dnat",
		loader.VerdictPass: "pass", loader.VerdictDrop: "drop", loader.VerdictKernelNAT: "kernel_nat",
	}
	if !maps.Equal(VerdictNames(), wantVerdicts) {
		t.Errorf("VerdictNames = %v, want %v", VerdictNames(), wantVerdicts)
	}
	wantBuckets := [...]string{"0", "1", "2-3", "4-7", "8-15", "16-31", "exhausted"}
	if NATRetryBucketNames() != wantBuckets {
		t.Errorf("NATRetryBucketNames = %q, want %q", NATRetryBucketNames(), wantBuckets)
	}
	drops, err := DropReasonNames()
	if err != nil {
		t.Fatal(err)
	}
	// Every reason has its name (from the enum's BTF), the sentinel none.
	for i := loader.DropReason(1); i < loader.NumDropReasons; i++ {
		if drops[i] == "" || strings.ToLower(drops[i]) != drops[i] {
			t.Errorf("drop reason %d is named %q", i, drops[i])
		}
	}
	if drops[1] != "malformed" || drops[20] != "ipv6" || drops[loader.NumDropReasons] != "" {
		t.Errorf("drop reasons 1 %q, 20 %q, sentinel %q; want malformed, ipv6 and none", drops[1], drops[20], drops[loader.NumDropReasons])
	}
}

func TestStrainedCountsTheUpperHalfOfTheBudget(t *testing.T) {
	var s NATStats
	for i := range s.Retries {
		s.Retries[i] = 1 << i
	}
	// 16-31 retries (1<<5) and exhausted (1<<6).
	if got := s.Strained(); got != 1<<5+1<<6 {
		t.Errorf("Strained = %d, want %d", got, 1<<5+1<<6)
	}
}

func TestMapUsageCountsHashMaps(t *testing.T) {
	v := newViews(t)
	if err := v.PutEndpoint(Endpoint{IP: ctrA, MAC: []byte{2, 0, 0, 0, 0, 2}, NetID: 1, Ifindex: 11}); err != nil {
		t.Fatal(err)
	}
	usage, err := v.MapUsage()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]MapUsage{}
	for _, u := range usage {
		got[u.Name] = u
	}
	if u := got["endpoints"]; u.Entries != 1 || u.Capacity != 65536 {
		t.Errorf("endpoints usage %+v, want 1 of 65536", u)
	}
	if u := got["conntrack"]; u.Entries != 0 || u.Capacity != 1024 {
		t.Errorf("conntrack usage %+v, want 0 of 1024", u)
	}
	for _, name := range []string{"networks", "endpoint_ips", "subnets", "endpoint_stats", "ports", "uplinks", "uplink_ips"} {
		if _, ok := got[name]; !ok {
			t.Errorf("no usage for %s", name)
		}
	}
	for _, name := range []string{"drop_counters", "verdicts", "nat_retries", "monitor_events"} {
		if _, ok := got[name]; ok {
			t.Errorf("usage reported for %s, which is no hash map", name)
		}
	}
}
