// Package layering holds the test that keeps the import graph one-way:
// front ends -> datapath -> maps -> loader, metrics observing datapath, and
// nothing importing a front end. docs/ARCHITECTURE.md explains the rule.
package layering

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/ebpfnet/ebpfnet/"

// allowed lists, for each layer, the project packages its (non-test) code
// may import. A package belongs to the layer whose prefix is longest.
var allowed = map[string][]string{
	"loader":       {"internal/mountns"},
	"maps":         {"loader"},
	"datapath":     {"maps", "loader", "internal/netnsutil", "internal/mountns", "resolver"},
	"resolver":     {}, // embedded DNS server: miekg/dns only
	"metrics":      {"datapath"},
	"cmd/":         {"datapath", "metrics", "cluster", "internal/unixsock"}, // front ends: CLI (and its daemon), CNI plugin
	"dockerdriver": {"datapath", "metrics", "cluster"},                      // front end: Docker remote driver
	"api":          {"datapath", "internal/unixsock"},                       // front end: the daemon's control API
	// cluster: overlay state in etcd. Not a front end: the CLI's
	// --cluster-store and the daemon's --advertise-addr (and later the CNI
	// plugin and Docker driver on overlay networks) drive it, and it
	// drives datapath (remote endpoints into the maps).
	"cluster":            {"datapath"},
	"internal/netnsutil": {"internal/mountns"},
	"internal/mountns":   {},
	"internal/unixsock":  {},
}

// free layers are tests and tools: they may import anything but a front end.
var free = []string{"integration", "internal/testutil", "internal/runtimetest", "internal/etcdtest", "internal/layering", "bench/"}

var frontEnds = []string{"cmd/", "dockerdriver", "api"}

// hosts lets a command serve a front end that is a library: `ebpfnet
// docker-plugin` and `ebpfnet daemon` (cmd/ebpfnet) serve dockerdriver's
// and api's handlers. The command stays thin and the front end still sees
// only datapath. The bench and the integration tests are api's clients.
var hosts = map[string][]string{
	"cmd/ebpfnet":             {"dockerdriver", "api"},
	"bench/cmd/ebpfnet-bench": {"api"},
	"integration":             {"api"},
}

type pkg struct {
	ImportPath string
	Imports    []string
}

func TestImportsPointOneWay(t *testing.T) {
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports", module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		seen++
		self := strings.TrimPrefix(p.ImportPath, module)
		for _, imp := range p.Imports {
			dep, ours := strings.CutPrefix(imp, module)
			if !ours {
				continue
			}
			if msg := check(self, dep); msg != "" {
				t.Errorf("%s imports %s: %s", self, dep, msg)
			}
		}
	}
	if seen < 8 {
		t.Fatalf("go list found %d packages: the check is not looking at the module", seen)
	}
}

// check says why self may not import dep, or "" if it may.
func check(self, dep string) string {
	if slices.Contains(hosts[self], dep) {
		return ""
	}
	if hasPrefix(dep, frontEnds) && !sameFrontEnd(self, dep) {
		return "nothing imports a front end"
	}
	if hasPrefix(self, free) {
		return ""
	}
	layer := layerOf(self)
	if layer == "" {
		return "package has no layer: add it to allowed or free in " + "internal/layering"
	}
	if sameFrontEnd(self, dep) || strings.HasPrefix(dep, self+"/") {
		return "" // its own subpackages
	}
	if slices.ContainsFunc(allowed[layer], func(a string) bool { return dep == a || strings.HasPrefix(dep, a+"/") }) {
		return ""
	}
	return "layer " + layer + " may import only " + strings.Join(allowed[layer], ", ")
}

func layerOf(p string) string {
	best := ""
	for l := range allowed {
		if (p == strings.TrimSuffix(l, "/") || strings.HasPrefix(p, strings.TrimSuffix(l, "/")+"/")) && len(l) > len(best) {
			best = l
		}
	}
	return best
}

func hasPrefix(p string, prefixes []string) bool {
	return slices.ContainsFunc(prefixes, func(pre string) bool {
		return p == strings.TrimSuffix(pre, "/") || strings.HasPrefix(p, strings.TrimSuffix(pre, "/")+"/")
	})
}

// sameFrontEnd reports whether a and b are parts of one front end (e.g.
// cmd/ebpfnet and cmd/ebpfnet/internal/x).
func sameFrontEnd(a, b string) bool {
	root := func(p string) string {
		if rest, ok := strings.CutPrefix(p, "cmd/"); ok {
			name, _, _ := strings.Cut(rest, "/")
			return "cmd/" + name
		}
		name, _, _ := strings.Cut(p, "/")
		return name
	}
	return hasPrefix(a, frontEnds) && root(a) == root(b)
}

func TestCheckCatchesViolations(t *testing.T) {
	for _, tc := range []struct {
		self, dep string
		ok        bool
	}{
		{"cmd/ebpfnet", "datapath", true},
		{"cmd/ebpfnet", "maps", false},
		{"cmd/ebpfnet", "loader", false},
		{"cmd/ebpfnet-cni", "cmd/ebpfnet", false},
		{"datapath", "metrics", false},
		{"datapath", "cmd/ebpfnet", false},
		{"datapath", "maps", true},
		{"maps", "datapath", false},
		{"loader", "maps", false},
		{"metrics", "datapath", true},
		{"metrics", "loader", false},
		{"dockerdriver", "datapath", true},
		{"dockerdriver", "maps", false},
		{"cmd/ebpfnet", "dockerdriver", true},
		{"cmd/ebpfnet-cni", "dockerdriver", false},
		{"dockerdriver", "cmd/ebpfnet", false},
		{"cmd/ebpfnet", "cluster", true},
		{"cluster", "datapath", true},
		{"cluster", "maps", false},
		{"cluster", "cmd/ebpfnet", false},
		{"datapath", "cluster", false},
		{"integration", "maps", true},
		{"integration", "cmd/ebpfnet", false},
		{"newpkg", "datapath", false},
	} {
		if got := check(tc.self, tc.dep) == ""; got != tc.ok {
			t.Errorf("check(%s -> %s) allowed = %v, want %v", tc.self, tc.dep, got, tc.ok)
		}
	}
}
