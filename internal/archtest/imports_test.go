// Package archtest checks the package table of docs/ARCHITECTURE.md against the code: every
// import of one of our packages must be in the importer's "may import" column, so the
// arrows the document draws are the arrows the code has.
package archtest

import (
	"go/build"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const module = "github.com/switchboard-voice/switchboard/"

// allowed parses the table: folder → the folders it may import ("everything" for cmd).
func allowed(t *testing.T, root string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "docs", "ARCHITECTURE.md"))
	if err != nil {
		t.Fatal(err)
	}
	code := regexp.MustCompile("`([^`]+)`")
	out := map[string][]string{}
	for _, line := range strings.Split(string(b), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) != 5 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		folder := strings.Trim(strings.TrimSpace(cells[1]), "`")
		var may []string
		for _, m := range code.FindAllStringSubmatch(cells[3], -1) {
			may = append(may, m[1])
		}
		if strings.Contains(cells[3], "everything") {
			may = append(may, "*")
		}
		out[folder] = may
	}
	return out
}

// rowOf is the table row that governs dir: its own, or that of a folder it lives in
// ("bench/…" covers bench/rtpgen).
func rowOf(rows map[string][]string, dir string) ([]string, bool) {
	for d := dir; d != "." && d != "/"; d = filepath.Dir(d) {
		if may, ok := rows[d]; ok {
			return may, true
		}
		if may, ok := rows[d+"/…"]; ok {
			return may, true
		}
	}
	return nil, false
}

// TestImportsFollowTheArchitectureTable fails when a package imports one of ours that its row
// does not allow, or when a package has no row at all.
func TestImportsFollowTheArchitectureTable(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	rows := allowed(t, root)
	if len(rows) < 10 {
		t.Fatalf("read %d rows from the package table of docs/ARCHITECTURE.md; has its shape changed?", len(rows))
	}
	checked := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
			return filepath.SkipDir
		}
		pkg, err := build.ImportDir(path, 0)
		if err != nil {
			return nil // no Go files here (or only tests)
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		may, ok := rowOf(rows, rel)
		if !ok {
			t.Errorf("package %s has no row in the package table of docs/ARCHITECTURE.md", rel)
			return nil
		}
		checked++
		for _, imp := range pkg.Imports {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			dep := strings.TrimPrefix(imp, module)
			okDep := false
			for _, m := range may {
				if m == "*" || m == dep || strings.HasPrefix(dep, strings.TrimSuffix(m, "…")) && strings.HasSuffix(m, "…") {
					okDep = true
				}
			}
			if !okDep {
				t.Errorf("%s imports %s, which its row in docs/ARCHITECTURE.md does not allow (may import: %v)", rel, dep, may)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 15 {
		t.Errorf("checked %d packages; expected every package of the module", checked)
	}
}
