package runtimetest

import (
	"os/exec"
	"sort"
	"strings"
	"testing"
)

// RootNetState is what a runtime must not change in the root network
// namespace: interface names, IPv4 and IPv6 routes, and whether any
// Docker chain exists in iptables or nftables.
type RootNetState struct {
	Links       []string
	Routes      string
	Routes6     string
	DockerRules []string // iptables/nft lines mentioning docker
}

// SnapshotRootNet reads the root network namespace's state (the test
// process runs there).
func SnapshotRootNet() RootNetState {
	var s RootNetState
	out, _ := exec.Command("ip", "-o", "link", "show").Output()
	for _, line := range strings.Split(string(out), "\n") {
		// "3: name@peer: <...>": keep the name only; counters and
		// states of unrelated interfaces may change.
		f := strings.Fields(line)
		if len(f) > 1 {
			s.Links = append(s.Links, strings.TrimSuffix(f[1], ":"))
		}
	}
	sort.Strings(s.Links)
	r, _ := exec.Command("ip", "route", "show", "table", "all").Output()
	s.Routes = string(r)
	r6, _ := exec.Command("ip", "-6", "route", "show", "table", "all").Output()
	s.Routes6 = string(r6)
	for _, c := range [][]string{{"iptables-save"}, {"ip6tables-save"}, {"nft", "list", "ruleset"}} {
		out, _ := exec.Command(c[0], c[1:]...).Output()
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(strings.ToLower(line), "docker") {
				s.DockerRules = append(s.DockerRules, c[0]+": "+line)
			}
		}
	}
	return s
}

// CheckRootNetUntouched registers a cleanup, run after every cleanup
// registered later (so after the runtimes are stopped), that fails the
// test when the root namespace's interfaces or routes differ from now, or
// when a Docker iptables/nft rule or a docker0 appeared.
func CheckRootNetUntouched(t testing.TB) {
	t.Helper()
	before := SnapshotRootNet()
	t.Cleanup(func() {
		after := SnapshotRootNet()
		if strings.Join(before.Links, " ") != strings.Join(after.Links, " ") {
			t.Errorf("root netns interfaces changed:\nbefore %v\nafter  %v", before.Links, after.Links)
		}
		if before.Routes != after.Routes {
			t.Errorf("root netns routes changed:\nbefore\n%s\nafter\n%s", before.Routes, after.Routes)
		}
		if before.Routes6 != after.Routes6 {
			t.Errorf("root netns IPv6 routes changed:\nbefore\n%s\nafter\n%s", before.Routes6, after.Routes6)
		}
		if len(after.DockerRules) > len(before.DockerRules) {
			t.Errorf("docker rules appeared in the root netns:\n%s", strings.Join(after.DockerRules, "\n"))
		}
		for _, l := range after.Links {
			if l == "docker0" {
				t.Errorf("docker0 exists in the root netns")
			}
		}
	})
}
