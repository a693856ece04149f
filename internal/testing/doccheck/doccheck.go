// Package doccheck lets tests hold the project's Markdown to the code: it
// reads and rewrites marked blocks (generated or checked tables), finds the
// shell blocks the integration tests run, and lists links. Only tests import
// it.
package doccheck

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// A marked block is the text between a line "<!-- NAME:begin ... -->" (the
// rest of the line says where the block comes from) and a line
// "<!-- NAME:end -->".
func markers(name string) (begin, end string) {
	return "<!-- " + name + ":begin", "<!-- " + name + ":end -->"
}

// Block returns the body of the marked block NAME in doc: the lines after
// its begin line, up to its end line.
func Block(doc, name string) (string, error) {
	_, body, _, err := split(doc, name)
	return body, err
}

// Replace returns doc with the body of block NAME replaced by body.
func Replace(doc, name, body string) (string, error) {
	head, _, tail, err := split(doc, name)
	if err != nil {
		return "", err
	}
	if body != "" && !strings.HasSuffix(body, "\n") {
		body += "\n"
	}
	return head + body + tail, nil
}

// split cuts doc into the text up to and including the begin line, the body
// and the rest from the end line on.
func split(doc, name string) (head, body, tail string, err error) {
	begin, end := markers(name)
	i := strings.Index(doc, begin)
	if i < 0 {
		return "", "", "", fmt.Errorf("no %s ... --> line", begin)
	}
	if strings.Count(doc, begin) > 1 {
		return "", "", "", fmt.Errorf("%s ... --> appears more than once", begin)
	}
	nl := strings.IndexByte(doc[i:], '\n')
	if nl < 0 {
		return "", "", "", fmt.Errorf("%s: no end line %s", begin, end)
	}
	bodyStart := i + nl + 1
	j := strings.Index(doc[bodyStart:], end)
	if j < 0 {
		return "", "", "", fmt.Errorf("%s: no end line %s", begin, end)
	}
	return doc[:bodyStart], doc[bodyStart : bodyStart+j], doc[bodyStart+j:], nil
}

// Root is the module's root directory: the nearest parent of the working
// directory (a test's package directory) with a go.mod.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Docs are the user documentation's files, relative to the root: README.md
// and docs/*.md. Tested shell blocks live in them.
func Docs(root string) ([]string, error) {
	more, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		return nil, err
	}
	out := []string{"README.md"}
	for _, m := range more {
		rel, _ := filepath.Rel(root, m)
		out = append(out, rel)
	}
	return out, nil
}

// TableColumn returns the first column of a Markdown table's rows with the
// backquotes around it removed, skipping the header and separator rows.
// A line that is not a table row is an error: a marked table holds only
// the table.
func TableColumn(table string) ([]string, error) {
	var out []string
	for n, line := range strings.Split(strings.TrimRight(table, "\n"), "\n") {
		if !strings.HasPrefix(line, "|") {
			return nil, fmt.Errorf("line %d is not a table row: %q", n+1, line)
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		cell := strings.TrimSpace(cells[0])
		if n == 0 || strings.Trim(cell, "-: ") == "" {
			continue // header, separator
		}
		name, open := strings.CutPrefix(cell, "`")
		name, closed := strings.CutSuffix(name, "`")
		if !open || !closed || name == "" || strings.Contains(name, "`") {
			return nil, fmt.Errorf("line %d: first cell %q is not one `name`", n+1, cell)
		}
		out = append(out, name)
	}
	return out, nil
}

// Diff says how names (from a doc) differ from want (from the code): what
// is missing, what is extra, what is listed twice. Empty means equal as
// sets.
func Diff(names, want []string) []string {
	var out []string
	seen := map[string]int{}
	for _, n := range names {
		seen[n]++
	}
	for _, w := range want {
		if seen[w] == 0 {
			out = append(out, "missing "+w)
		}
	}
	for n, c := range seen {
		if !slices.Contains(want, n) {
			out = append(out, "not in the code: "+n)
		}
		if c > 1 {
			out = append(out, "listed twice: "+n)
		}
	}
	slices.Sort(out)
	return out
}

// ShBlock is a ```sh block that follows a marker line in a doc file.
type ShBlock struct {
	File   string // relative to the root
	Marker string
	Text   string // the block's lines, without the fences
}

var testMarker = regexp.MustCompile(`(?m)^<!-- readme-test[^>]*-->$`)

// ShBlocks lists the blocks behind every "<!-- readme-test ... -->" marker
// in README.md and docs/*.md.
func ShBlocks(root string) ([]ShBlock, error) {
	files, err := Docs(root)
	if err != nil {
		return nil, err
	}
	var out []ShBlock
	for _, f := range files {
		raw, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			return nil, err
		}
		doc := string(raw)
		for _, m := range testMarker.FindAllString(doc, -1) {
			_, block, ok := strings.Cut(doc, m+"\n```sh\n")
			if !ok {
				return nil, fmt.Errorf("%s: %s is not followed by a ```sh block", f, m)
			}
			block, _, ok = strings.Cut(block, "```")
			if !ok {
				return nil, fmt.Errorf("%s: the block after %s is not closed", f, m)
			}
			out = append(out, ShBlock{File: f, Marker: m, Text: block})
		}
	}
	return out, nil
}

// FindShBlock returns the block behind marker, which must appear once in
// README.md and docs/*.md together.
func FindShBlock(root, marker string) (ShBlock, error) {
	all, err := ShBlocks(root)
	if err != nil {
		return ShBlock{}, err
	}
	var found []ShBlock
	for _, b := range all {
		if b.Marker == marker {
			found = append(found, b)
		}
	}
	switch len(found) {
	case 0:
		return ShBlock{}, fmt.Errorf("no %s block in README.md or docs/*.md", marker)
	case 1:
		return found[0], nil
	}
	return ShBlock{}, fmt.Errorf("%s appears %d times in README.md and docs/*.md", marker, len(found))
}

var (
	link    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	heading = regexp.MustCompile(`(?m)^#{1,6} +(.+?) *#*$`)
	fence   = regexp.MustCompile("(?ms)^ *```.*?^ *```")
)

// Slug is the anchor GitHub gives a heading: lower case, punctuation
// other than '-' and '_' dropped, spaces as '-'.
func Slug(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Anchors are the anchors of doc's headings (a repeated heading's second
// anchor gets "-1", as on GitHub). Headings in code blocks do not count.
func Anchors(doc string) map[string]bool {
	out := map[string]bool{}
	for _, m := range heading.FindAllStringSubmatch(fence.ReplaceAllString(doc, ""), -1) {
		s := Slug(m[1])
		for i := 1; out[s]; i++ {
			s = fmt.Sprintf("%s-%d", Slug(m[1]), i)
		}
		out[s] = true
	}
	return out
}

// BrokenLinks lists the relative links of the Markdown file rel (relative
// to root) whose file does not exist or whose #anchor is no heading of
// theirs. Links in code blocks and to other sites are not checked.
func BrokenLinks(root, rel string) ([]string, error) {
	raw, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range link.FindAllStringSubmatch(fence.ReplaceAllString(string(raw), ""), -1) {
		target := m[1]
		if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
			continue
		}
		file, anchor, _ := strings.Cut(target, "#")
		path := filepath.Join(root, rel)
		if file != "" {
			path = filepath.Join(root, filepath.Dir(rel), file)
		}
		if _, err := os.Stat(path); err != nil {
			out = append(out, fmt.Sprintf("%s: link %s: no file %s", rel, target, file))
			continue
		}
		if anchor == "" || !strings.HasSuffix(path, ".md") {
			continue
		}
		doc, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		if !Anchors(string(doc))[anchor] {
			out = append(out, fmt.Sprintf("%s: link %s: no heading #%s there", rel, target, anchor))
		}
	}
	return out, nil
}
