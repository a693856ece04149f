package loader

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ebpfnet/ebpfnet/internal/testing/doccheck"
)

// pinnedMaps are the maps Load pins: every map of the embedded objects but
// their data sections, by C name. It parses the objects and needs no
// privileges.
func pinnedMaps(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, obj := range objects {
		spec, err := obj.load()
		if err != nil {
			t.Fatal(err)
		}
		for name := range spec.Maps {
			if !isDataSection(name) && !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
	}
	slices.Sort(out)
	return out
}

// mapsFields are loader.Maps' fields by ebpf tag, read from the type.
func mapsFields() map[string]string {
	out := map[string]string{}
	typ := reflect.TypeFor[Maps]()
	for i := range typ.NumField() {
		if tag := typ.Field(i).Tag.Get("ebpf"); tag != "" {
			out[tag] = typ.Field(i).Name
		}
	}
	return out
}

// docMapsProblems says how the pinned-maps table (the marked block's body)
// disagrees with the pinned maps and loader.Maps' fields by tag: a map
// missing or extra, or a row's field column ("-" for a map Maps lacks)
// that is not the field tagged with its name.
func docMapsProblems(table string, pinned []string, fields map[string]string) []string {
	names, err := doccheck.TableColumn(table)
	if err != nil {
		return []string{err.Error()}
	}
	problems := doccheck.Diff(names, pinned)
	for tag := range fields {
		if !slices.Contains(pinned, tag) {
			problems = append(problems, fmt.Sprintf("loader.Maps tags %s, which no object has", tag))
		}
	}
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) < 3 {
			continue
		}
		name, col := strings.Trim(strings.TrimSpace(cells[0]), "`"), strings.Trim(strings.TrimSpace(cells[1]), "`")
		if !slices.Contains(pinned, name) {
			continue // reported above, or the header
		}
		want := fields[name]
		if want == "" {
			want = "-"
		}
		if col != want {
			problems = append(problems, fmt.Sprintf("%s: field column %q, loader.Maps has %q", name, col, want))
		}
	}
	return problems
}

// TestDocPinnedMaps holds docs/ARCHITECTURE.md's table of pinned maps to
// the embedded objects and loader.Maps' tags.
func TestDocPinnedMaps(t *testing.T) {
	root, err := doccheck.Root()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "docs", "ARCHITECTURE.md"))
	if err != nil {
		t.Fatal(err)
	}
	table, err := doccheck.Block(string(raw), "pinned-maps")
	if err != nil {
		t.Fatalf("docs/ARCHITECTURE.md: %v", err)
	}
	pinned := pinnedMaps(t)
	if len(pinned) < 20 {
		t.Fatalf("the objects have %d maps: the test is not reading them", len(pinned))
	}
	for _, p := range docMapsProblems(table, pinned, mapsFields()) {
		t.Errorf("docs/ARCHITECTURE.md's pinned maps: %s", p)
	}
}

// The check fails on a table edited wrongly.
func TestDocPinnedMapsCatchesDrift(t *testing.T) {
	pinned := []string{"conntrack", "ct_embryonic", "sock_nat"}
	fields := map[string]string{"conntrack": "Conntrack", "ct_embryonic": "CTEmbryonic"}
	good := "| map | `loader.Maps` field | what it holds |\n|---|---|---|\n" +
		"| `conntrack` | `Conntrack` | flows |\n| `ct_embryonic` | `CTEmbryonic` | handshakes |\n| `sock_nat` | - | sockets |\n"
	if p := docMapsProblems(good, pinned, fields); len(p) != 0 {
		t.Fatalf("a right table has problems: %v", p)
	}
	for name, bad := range map[string]string{
		"missing map":   strings.Replace(good, "| `ct_embryonic` | `CTEmbryonic` | handshakes |\n", "", 1),
		"extra map":     good + "| `ct_gone` | - | was |\n",
		"renamed map":   strings.Replace(good, "`ct_embryonic` |", "`ct_syn` |", 1),
		"listed twice":  good + "| `conntrack` | `Conntrack` | flows |\n",
		"wrong field":   strings.Replace(good, "`CTEmbryonic`", "`Conntrack`", 1),
		"private field": strings.Replace(good, "| `sock_nat` | - |", "| `sock_nat` | `SockNAT` |", 1),
		"not a row":     good + "sock_nat: sockets\n",
		"no backquotes": strings.Replace(good, "| `sock_nat` |", "| sock_nat |", 1),
	} {
		if bad == good {
			t.Fatalf("%s: the edit did not apply", name)
		}
		if p := docMapsProblems(bad, pinned, fields); len(p) == 0 {
			t.Errorf("%s: no problem found in\n%s", name, bad)
		}
	}
	// And a tag of loader.Maps no object has.
	if p := docMapsProblems(good, pinned, map[string]string{"conntrack": "Conntrack", "ct_embryonic": "CTEmbryonic", "gone": "Gone"}); len(p) == 0 {
		t.Error("a tag without a map is not reported")
	}
}
