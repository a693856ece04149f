package layering

import (
	"bytes"
	"go/build/constraint"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testHooksTag compiles datapath's test hooks in (datapath/testhooks.go,
// internal/testing/testutil.TestHooksTag).
const testHooksTag = "ebpfnet_testhooks"

// TestProductionCodeReadsNoTestVariable: no Go file of a production build
// (not a _test.go file, not one only built with -tags ebpfnet_testhooks)
// mentions an EBPFNET_TEST_ variable. Fault injection, kill and pause
// points are the test build's (docs/ARCHITECTURE.md, "Attach, step by
// step").
func TestProductionCodeReadsNoTestVariable(t *testing.T) {
	root := filepath.Join("..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatal(err)
	}
	var tagged []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !bytes.Contains(src, []byte("EBPFNET_TEST_")) {
			return nil
		}
		if testBuildOnly(t, path, src) {
			tagged = append(tagged, path)
			return nil
		}
		t.Errorf("%s mentions EBPFNET_TEST_ in production code: test hooks belong in a file built only with -tags %s", path, testHooksTag)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The walk must have seen the hooks themselves, or it proves nothing.
	if len(tagged) == 0 {
		t.Fatalf("no file built with -tags %s reads EBPFNET_TEST_: where did the test hooks go?", testHooksTag)
	}
}

// testBuildOnly says whether the file's //go:build line keeps it out of
// every build without testHooksTag.
func testBuildOnly(t *testing.T, path string, src []byte) bool {
	for _, line := range strings.Split(string(src), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "package ") {
			return false
		}
		if !constraint.IsGoBuild(line) {
			continue
		}
		expr, err := constraint.Parse(line)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return !expr.Eval(func(tag string) bool { return tag != testHooksTag })
	}
	return false
}
