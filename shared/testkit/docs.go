package testkit

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/mercato-dev/mercato/shared/localinfra"
)

// FromDocs returns the first group of pattern's first match in page (a
// path from the repository's root, such as "docs/operations.md"), so a test
// runs what the docs tell an operator to run and fails when the page drifts.
// It fails the test when the page has no match, naming what.
func FromDocs(t testing.TB, page, pattern, what string) string {
	t.Helper()
	root, err := localinfra.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, page)) //nolint:gosec // a page of this repository a test names
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(pattern).FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s gives no %s", page, what)
	}
	return string(m[1])
}
