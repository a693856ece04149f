package datapath

import (
	"net/netip"
	"testing"
)

// SetRemoteNames replaces the names whole and changes the generation only
// when they change.
func TestSetRemoteNames(t *testing.T) {
	i := &Instance{}
	a := netip.MustParseAddr
	i.SetRemoteNames(map[string][]RemoteName{"ov1": {{Name: "b", IP: a("10.210.0.3")}, {Name: "a", IP: a("10.210.0.2")}}})
	names, gen := i.remote.snapshot()
	if gen != 1 || len(names["ov1"]) != 2 || names["ov1"][0].Name != "a" {
		t.Fatalf("after the first set: %v gen %d", names, gen)
	}
	i.SetRemoteNames(map[string][]RemoteName{"ov1": {{Name: "a", IP: a("10.210.0.2")}, {Name: "b", IP: a("10.210.0.3")}}, "ov2": nil})
	if _, gen := i.remote.snapshot(); gen != 1 {
		t.Errorf("the same names again: generation %d, want 1", gen)
	}
	i.SetRemoteNames(nil)
	if names, gen := i.remote.snapshot(); gen != 2 || len(names) != 0 {
		t.Errorf("after clearing: %v gen %d", names, gen)
	}
}
