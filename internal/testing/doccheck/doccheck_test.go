package doccheck

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestBlock(t *testing.T) {
	doc := "a\n<!-- x:begin from here -->\nold 1\nold 2\n<!-- x:end -->\nb\n"
	body, err := Block(doc, "x")
	if err != nil || body != "old 1\nold 2\n" {
		t.Fatalf("Block = %q, %v", body, err)
	}
	got, err := Replace(doc, "x", "new")
	if want := "a\n<!-- x:begin from here -->\nnew\n<!-- x:end -->\nb\n"; err != nil || got != want {
		t.Fatalf("Replace = %q, %v; want %q", got, err, want)
	}
	for name, bad := range map[string]string{
		"no begin": "a\n<!-- x:end -->\n",
		"no end":   "<!-- x:begin -->\nbody\n",
		"twice":    doc + doc,
	} {
		if _, err := Block(bad, "x"); err == nil {
			t.Errorf("%s: Block accepts %q", name, bad)
		}
	}
}

func TestTableColumn(t *testing.T) {
	got, err := TableColumn("| map | x |\n|---|---|\n| `a` | 1 |\n| `b_c` | 2 |\n")
	if err != nil || !slices.Equal(got, []string{"a", "b_c"}) {
		t.Fatalf("TableColumn = %v, %v", got, err)
	}
	for _, bad := range []string{"| h |\n|---|\n| a |\n", "| h |\n|---|\n`a`: x\n", "| h |\n|---|\n| `a` `b` |\n", "| h |\n|---|\n| a` |\n"} {
		if _, err := TableColumn(bad); err == nil {
			t.Errorf("TableColumn accepts %q", bad)
		}
	}
	if d := Diff([]string{"a", "b", "b", "z"}, []string{"a", "b", "c"}); !slices.Equal(d, []string{"listed twice: b", "missing c", "not in the code: z"}) {
		t.Errorf("Diff = %q", d)
	}
}

func TestSlug(t *testing.T) {
	for h, want := range map[string]string{
		"Published ports and NAT":                                  "published-ports-and-nat",
		"Restricting published ports (the DOCKER-USER equivalent)": "restricting-published-ports-the-docker-user-equivalent",
		"As a CNI plugin (containerd, Podman, Kubernetes)":         "as-a-cni-plugin-containerd-podman-kubernetes",
		"With Docker (remote network driver)":                      "with-docker-remote-network-driver",
	} {
		if got := Slug(h); got != want {
			t.Errorf("Slug(%q) = %q, want %q", h, got, want)
		}
	}
}

// markdown lists the repository's Markdown files, relative to root.
func markdown(t *testing.T, root string) []string {
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != root {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".md") {
			rel, _ := filepath.Rel(root, path)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDocLinks: every relative link of the repository's Markdown reaches
// a file, and a heading when it names one.
func TestDocLinks(t *testing.T) {
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	files := markdown(t, root)
	if !slices.Contains(files, "README.md") || !slices.Contains(files, filepath.Join("docs", "ARCHITECTURE.md")) {
		t.Fatalf("found %v: not the repository's docs", files)
	}
	for _, f := range files {
		broken, err := BrokenLinks(root, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range broken {
			t.Error(b)
		}
	}
}

func TestBrokenLinksCatchesBadLinks(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "docs"), 0o755)
	os.WriteFile(filepath.Join(root, "docs", "a.md"), []byte("# A\n## Two words\n"), 0o644)
	os.WriteFile(filepath.Join(root, "README.md"), []byte("[ok](docs/a.md) [ok](docs/a.md#two-words) [bad](docs/b.md) [bad](docs/a.md#three)\n"+
		"[self](#title) [web](https://example.com/x)\n```\n[in code](nowhere.md)\n```\n# Title\n"), 0o644)
	broken, err := BrokenLinks(root, "README.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(broken) != 2 || !strings.Contains(broken[0], "docs/b.md") || !strings.Contains(broken[1], "#three") {
		t.Errorf("BrokenLinks = %q, want docs/b.md and #three", broken)
	}
}

var runCall = regexp.MustCompile(`runREADMEBlock\(.*"(<!-- readme-test[^"]*-->)"\)`)

// TestEveryShBlockIsRun: every "<!-- readme-test ... -->" block of
// README.md and docs/*.md is run by a test in integration/ (runREADMEBlock
// finds it wherever it is), and every block a test runs exists once.
func TestEveryShBlockIsRun(t *testing.T) {
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := ShBlocks(root)
	if err != nil {
		t.Fatal(err)
	}
	tests, err := filepath.Glob(filepath.Join(root, "integration", "*_test.go"))
	if err != nil {
		t.Fatal(err)
	}
	var run []string
	for _, f := range tests {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range runCall.FindAllStringSubmatch(string(src), -1) {
			run = append(run, m[1])
		}
	}
	if len(blocks) < 4 || len(run) < 4 {
		t.Fatalf("%d blocks, %d runs: not looking at the repository", len(blocks), len(run))
	}
	for _, b := range blocks {
		if !slices.Contains(run, b.Marker) {
			t.Errorf("%s: %s is run by no test in integration/", b.File, b.Marker)
		}
	}
	for _, m := range run {
		if _, err := FindShBlock(root, m); err != nil {
			t.Errorf("integration/ runs %s: %v", m, err)
		}
	}
}

// folderMapProblems says how the folder map (the marked block's body: a
// code block whose lines start with a directory, continuation lines with
// a space) disagrees with dirs, the directories that must be listed.
// Every listed path must be one of dirs or optional.
func folderMapProblems(block string, dirs, optional []string) []string {
	var listed []string
	for _, line := range strings.Split(block, "\n") {
		if line == "" || strings.HasPrefix(line, " ") || strings.HasPrefix(line, "```") {
			continue
		}
		path, _, _ := strings.Cut(line, " ")
		listed = append(listed, strings.TrimSuffix(path, "/"))
	}
	var problems []string
	for _, p := range Diff(listed, dirs) {
		if name, ok := strings.CutPrefix(p, "not in the code: "); ok {
			if slices.Contains(optional, name) {
				continue
			}
			p = "no such directory: " + name
		}
		problems = append(problems, p)
	}
	return problems
}

// TestFolderMap: README's folder map lists every top-level directory and
// every directory under cmd/, internal/ and internal/testing/, and nothing
// else.
func TestFolderMap(t *testing.T) {
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	block, err := Block(string(raw), "folders")
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	var dirs []string
	for _, parent := range []string{".", "cmd", "internal", "internal/testing"} {
		entries, err := os.ReadDir(filepath.Join(root, parent))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			path := filepath.Join(parent, e.Name())
			if e.IsDir() && !strings.HasPrefix(e.Name(), ".") && path != "cmd" && path != "internal" && path != "internal/testing" {
				dirs = append(dirs, path)
			}
		}
	}
	// bin/ is made by make build; cmd/, internal/ and internal/testing/
	// are listed by their subdirectories, and may be listed themselves.
	for _, p := range folderMapProblems(block, dirs, []string{"bin", "cmd", "internal", "internal/testing"}) {
		t.Errorf("README.md's folder map: %s", p)
	}
}

func TestFolderMapCatchesDrift(t *testing.T) {
	dirs := []string{"api", "cmd/ebpfnet", "docs"}
	good := "```\napi/   the API\ncmd/ebpfnet/  the CLI\n              more of it\ndocs/  docs\nbin/   built\n```\n"
	if p := folderMapProblems(good, dirs, []string{"bin"}); len(p) != 0 {
		t.Fatalf("a right map has problems: %v", p)
	}
	for name, bad := range map[string]string{
		"missing": strings.Replace(good, "docs/  docs\n", "", 1),
		"extra":   good + "gone/  was\n",
		"twice":   strings.Replace(good, "docs/  docs\n", "docs/  docs\ndocs/ again\n", 1),
	} {
		if p := folderMapProblems(bad, dirs, []string{"bin"}); len(p) == 0 {
			t.Errorf("%s: no problem found in\n%s", name, bad)
		}
	}
}
