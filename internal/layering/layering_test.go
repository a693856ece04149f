// Package layering holds the test that keeps the import graph one-way:
// front ends -> datapath -> maps -> loader, metrics observing datapath, and
// nothing importing a front end. docs/ARCHITECTURE.md explains the rule.
package layering

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ebpfnet/ebpfnet/internal/testing/doccheck"
)

const module = "github.com/ebpfnet/ebpfnet/"

// allowed lists, for each layer, the project packages its (non-test) code
// may import. A package belongs to the layer whose prefix is longest.
var allowed = map[string][]string{
	"loader":   {"internal/mountns"},
	"maps":     {"loader"},
	"datapath": {"maps", "loader", "internal/netnsutil", "internal/mountns", "resolver"},
	"resolver": {}, // embedded DNS server: miekg/dns only
	"metrics":  {"datapath"},
	// front ends: CLI (and its daemon), CNI plugin. internal/netnsutil:
	// `ebpfnet run` starts its CMD in a namespace itself (runproc.go).
	"cmd/":         {"datapath", "metrics", "cluster", "overlay", "kubeproxy", "internal/unixsock", "internal/netnsutil"},
	"dockerdriver": {"datapath", "metrics", "cluster", "overlay"}, // front end: Docker remote driver
	"api":          {"datapath", "internal/unixsock"},             // front end: the daemon's control API
	// cluster: overlay state in etcd (store client, allocator, watcher).
	// It imports datapath for its limits only and never drives it.
	"cluster": {"datapath"},
	// kubeproxy: Kubernetes' Services, EndpointSlices and Nodes as the
	// datapath's service table, and their watch. It imports datapath for
	// the table's types only; the daemon hands the table to the datapath.
	"kubeproxy": {"datapath"},
	// overlay: a host's part in the cluster (join, the syncer writing the
	// cluster's view into the maps, attach and detach with addresses from
	// the cluster). Every front end uses it, the process serving the host
	// (daemon, docker-plugin) runs it; it drives datapath.
	"overlay":            {"cluster", "datapath"},
	"internal/netnsutil": {"internal/mountns"},
	"internal/mountns":   {},
	"internal/unixsock":  {},
}

// free layers are tests and tools: they may import anything but a front end.
// internal/testing/ holds the test rigs (sandbox hosts, real runtimes,
// etcd, the docs' checks): only tests import them.
var free = []string{"integration", "internal/testing/", "internal/layering", "bench/"}

var frontEnds = []string{"cmd/", "dockerdriver", "api"}

// rooms are the subpackages of datapath, its parts by concern. They may
// import what datapath may and each other, never datapath itself (Go
// forbids the cycle); datapath imports them. The private ones (the store,
// kernel plumbing) are datapath's own: nothing outside datapath imports
// them, not even tests and tools. The others (ports) hold vocabulary front
// ends may use directly.
var rooms, private = "datapath", []string{"datapath/store", "datapath/plumbing"}

// hosts lets a command serve a front end that is a library: `ebpfnet
// docker-plugin` and `ebpfnet daemon` (cmd/ebpfnet) serve dockerdriver's
// and api's handlers. The command stays thin and the front end still sees
// only datapath. The bench and the integration tests are api's clients.
var hosts = map[string][]string{
	"cmd/ebpfnet":             {"dockerdriver", "api"},
	"bench/cmd/ebpfnet-bench": {"api"},
	"integration":             {"api"},
}

// testRigs may be imported by the test code (_test.go files, in-package and
// external) of every package: the rigs under internal/testing/, and
// internal/netnsutil to enter a sandbox host's namespaces.
var testRigs = []string{"internal/testing/", "internal/netnsutil"}

// testAlso widens the rule for one layer's test code, with the reason the
// docs show. Otherwise a package's tests may import what the package may,
// the package itself and testRigs.
var testAlso = map[string][]struct{ pkg, why string }{
	"loader":           {{"maps", "its BPF_PROG_TEST_RUN tests read what a program wrote (conntrack entries, counters) through maps' typed views, the one decoding of them"}},
	"internal/mountns": {{"loader", "its test pins a datapath from inside `ip netns exec` and checks the pins outlive the command, which is what the package is for"}},
}

type pkg struct {
	ImportPath                         string
	Imports, TestImports, XTestImports []string
}

// TestImportsPointOneWay checks every import of the module's packages, their
// test files' included.
func TestImportsPointOneWay(t *testing.T) {
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports,TestImports,XTestImports", module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen, tests := 0, 0
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
			if dep, ours := strings.CutPrefix(imp, module); ours {
				if msg := check(self, dep); msg != "" {
					t.Errorf("%s imports %s: %s", self, dep, msg)
				}
			}
		}
		for _, imp := range slices.Concat(p.TestImports, p.XTestImports) {
			if dep, ours := strings.CutPrefix(imp, module); ours {
				tests++
				if msg := checkTest(self, dep); msg != "" {
					t.Errorf("%s's tests import %s: %s", self, dep, msg)
				}
			}
		}
	}
	if seen < 8 || tests < 8 {
		t.Fatalf("go list found %d packages, %d test imports: the check is not looking at the module", seen, tests)
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
	if hasPrefix(dep, private) && !hasPrefix(self, []string{rooms}) {
		return "only " + rooms + " and its subpackages import " + dep
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
	if strings.HasPrefix(self, rooms+"/") && strings.HasPrefix(dep, rooms+"/") {
		return "" // datapath's rooms use each other
	}
	if slices.ContainsFunc(allowed[layer], func(a string) bool { return dep == a || strings.HasPrefix(dep, a+"/") }) {
		return ""
	}
	return "layer " + layer + " may import only " + strings.Join(allowed[layer], ", ")
}

// checkTest says why test code of self may not import dep, or "" if it may.
func checkTest(self, dep string) string {
	if dep == self {
		return "" // an external test package imports the package
	}
	msg := check(self, dep)
	if msg == "" || hasPrefix(dep, frontEnds) {
		return msg // nothing imports a front end, tests neither
	}
	if hasPrefix(dep, testRigs) || slices.ContainsFunc(testAlso[layerOf(self)], func(a struct{ pkg, why string }) bool { return hasPrefix(dep, []string{a.pkg}) }) {
		return ""
	}
	return msg + "; its tests also the test rigs (" + strings.Join(testRigs, ", ") + ") and what testAlso lists for the layer"
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
		{"cmd/ebpfnet", "internal/netnsutil", true},
		{"cmd/ebpfnet", "internal/mountns", false},
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
		{"overlay", "cluster", true},
		{"overlay", "datapath", true},
		{"overlay", "maps", false},
		{"overlay", "cmd/ebpfnet", false},
		{"overlay", "dockerdriver", false},
		{"cmd/ebpfnet", "overlay", true},
		{"dockerdriver", "overlay", true},
		{"cluster", "overlay", false},
		{"datapath", "overlay", false},
		{"integration", "maps", true},
		{"integration", "cmd/ebpfnet", false},
		{"newpkg", "datapath", false},
		{"datapath", "datapath/store", true},
		{"datapath", "datapath/plumbing", true},
		{"datapath/store", "datapath/ports", true},
		{"datapath/plumbing", "internal/netnsutil", true},
		{"datapath/ports", "maps", true},
		{"datapath/ports", "metrics", false},
		{"datapath/ports", "cmd/ebpfnet", false},
		{"cmd/ebpfnet", "datapath/ports", true},
		{"cmd/ebpfnet", "datapath/store", false},
		{"dockerdriver", "datapath/plumbing", false},
		{"overlay", "datapath/store", false},
		{"integration", "datapath/plumbing", false},
		{"resolver", "datapath", false},
	} {
		if got := check(tc.self, tc.dep) == ""; got != tc.ok {
			t.Errorf("check(%s -> %s) allowed = %v, want %v", tc.self, tc.dep, got, tc.ok)
		}
	}
}

func TestCheckTestCatchesViolations(t *testing.T) {
	for _, tc := range []struct {
		self, dep string
		ok        bool
	}{
		{"cmd/ebpfnet", "datapath", true},                  // what the package may
		{"cmd/ebpfnet", "internal/testing/testutil", true}, // a rig
		{"datapath", "internal/testing/etcdtest", true},
		{"cmd/ebpfnet", "internal/netnsutil", true},
		{"cmd/ebpfnet", "loader", false},
		{"cmd/ebpfnet", "maps", false},
		{"cmd/ebpfnet", "dockerdriver", true}, // a host, as its code
		{"cmd/ebpfnet-cni", "cmd/ebpfnet", false},
		{"dockerdriver", "dockerdriver", true}, // its external test package
		{"dockerdriver", "loader", false},
		{"datapath", "cmd/ebpfnet", false},
		{"datapath", "metrics", false},
		{"loader", "maps", true}, // testAlso
		{"loader", "datapath", false},
		{"maps", "datapath", false},
		{"internal/mountns", "loader", true}, // testAlso
		{"internal/mountns", "maps", false},
		{"integration", "cmd/ebpfnet", false},
		{"newpkg", "datapath", false},
		{"cmd/ebpfnet", "datapath/store", false},
		{"datapath/ports", "datapath/plumbing", true},
	} {
		if got := checkTest(tc.self, tc.dep) == ""; got != tc.ok {
			t.Errorf("checkTest(%s -> %s) allowed = %v, want %v", tc.self, tc.dep, got, tc.ok)
		}
	}
}

var update = flag.Bool("update", false, "rewrite docs/ARCHITECTURE.md's layering table from the tables here")

// docTable is the name of the marked block in docs/ARCHITECTURE.md that
// shows the tables above.
const docTable = "layering"

// TestDocLayerTable fails when docs/ARCHITECTURE.md's table of who may
// import whom is not the one this test enforces; -update rewrites it.
func TestDocLayerTable(t *testing.T) {
	root, err := doccheck.Root()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "docs", "ARCHITECTURE.md")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		doc, err := doccheck.Replace(string(raw), docTable, renderTable())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if msg := compareTable(string(raw)); msg != "" {
		t.Errorf("docs/ARCHITECTURE.md: %s\nrun: go test ./internal/layering -run TestDocLayerTable -update", msg)
	}
}

// compareTable says how doc's layering block differs from the tables here.
func compareTable(doc string) string {
	got, err := doccheck.Block(doc, docTable)
	if err != nil {
		return err.Error()
	}
	want := renderTable()
	if got == want {
		return ""
	}
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("layering table line %d is\n\t%s\nthe test enforces\n\t%s", i+1, gl, wl)
		}
	}
	return "layering table differs"
}

// renderTable shows allowed, free, frontEnds, hosts, testRigs and testAlso
// as Markdown.
func renderTable() string {
	code := func(ps []string) string {
		var q []string
		for _, p := range ps {
			q = append(q, "`"+p+"`")
		}
		return strings.Join(q, ", ")
	}
	var b strings.Builder
	b.WriteString("| layer (a package belongs to the longest that prefixes it) | its code may import | its tests may also import |\n|---|---|---|\n")
	for _, l := range slices.Sorted(maps.Keys(allowed)) {
		name := "`" + l + "`"
		if strings.HasSuffix(l, "/") {
			name = "`" + l + "*`"
		}
		if slices.Contains(frontEnds, l) {
			name += " (front end)"
		}
		may := code(allowed[l])
		if may == "" {
			may = "nothing of the project"
		}
		var also []string
		for _, a := range testAlso[l] {
			also = append(also, "`"+a.pkg+"`: "+a.why)
		}
		tests := " |"
		if len(also) > 0 {
			tests = " " + strings.Join(also, "; ") + " |"
		}
		fmt.Fprintf(&b, "| %s | %s |%s\n", name, may, tests)
	}
	fmt.Fprintf(&b, "| tests and tools: %s | any package but a front end | |\n", code(free))
	b.WriteString("\n")
	fmt.Fprintf(&b, "- Front ends: %s. Nothing imports a front end but its own subpackages and a host.\n", code(frontEnds))
	fmt.Fprintf(&b, "- `%s/*`, its rooms, may import what `%s` may and each other; %s are private: nothing outside `%s` imports them, tests and tools neither.\n", rooms, rooms, code(private), rooms)
	var hs []string
	for _, h := range slices.Sorted(maps.Keys(hosts)) {
		hs = append(hs, "`"+h+"` imports "+code(hosts[h]))
	}
	fmt.Fprintf(&b, "- Hosts, which serve or call a front end that is a library: %s.\n", strings.Join(hs, "; "))
	fmt.Fprintf(&b, "- Test code (`_test.go` files, in-package and external) may import what its package may, the package itself, the test rigs %s, and what the last column adds; never a front end its package may not import.\n", code(testRigs))
	return b.String()
}

// The comparison catches an edited doc: a row changed, a row missing, the
// block gone.
func TestCompareTableCatchesDrift(t *testing.T) {
	good := "intro\n<!-- layering:begin generated -->\n" + renderTable() + "<!-- layering:end -->\nmore\n"
	if msg := compareTable(good); msg != "" {
		t.Fatalf("the rendered table does not compare equal to itself: %s", msg)
	}
	for name, bad := range map[string]string{
		"edited row":  strings.Replace(good, "| `maps` | `loader` |", "| `maps` | `loader`, `datapath` |", 1),
		"missing row": strings.Replace(good, "| `maps` | `loader` | |\n", "", 1),
		"no block":    strings.Replace(good, "<!-- layering:begin", "<!-- layers:begin", 1),
		"no end":      strings.Replace(good, "<!-- layering:end -->", "", 1),
		"extra layer": strings.Replace(good, "| `maps` | `loader` | |\n", "| `maps` | `loader` | |\n| `newpkg` | `datapath` | |\n", 1),
	} {
		if bad == good {
			t.Fatalf("%s: the replacement did not apply (is maps' row not `| `maps` | `loader` | |`?)", name)
		}
		if compareTable(bad) == "" {
			t.Errorf("%s: compareTable accepts a wrong table", name)
		}
	}
}
