package check

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestWorkflowsCallExistingMakeTargets: every `make TARGET` in
// .github/workflows names a target of the Makefile, so CI on GitHub runs
// what .ci/run runs and the deploy what `make aws-deploy` does here.
func TestWorkflowsCallExistingMakeTargets(t *testing.T) {
	calls, missing, err := MissingMakeTargets(filepath.Join(repo, ".github/workflows"), filepath.Join(repo, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, c := range calls {
		targets = append(targets, c.Target)
	}
	for _, want := range []string{"lint", "test", "aws-deploy"} {
		if !slices.Contains(targets, want) {
			t.Errorf("no workflow runs make %s (found %v): the parser or the workflows changed", want, targets)
		}
	}
	for _, c := range missing {
		t.Errorf("%s: the Makefile has no target %q", c, c.Target)
	}
}

// TestWorkflowCheckFails: a workflow calling a target the Makefile lacks
// is reported, and only that call; commands that merely contain "make"
// are not make; a make of another Makefile is refused.
func TestWorkflowCheckFails(t *testing.T) {
	calls, missing, err := MissingMakeTargets("testdata/workflows", "testdata/workflows/Makefile")
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, c := range calls {
		targets = append(targets, c.Target)
	}
	if want := []string{"lint", "no-such-target", "test"}; !slices.Equal(targets, want) {
		t.Errorf("make calls %v, want %v", targets, want)
	}
	if len(missing) != 1 || missing[0].Target != "no-such-target" {
		t.Fatalf("missing %v, want only no-such-target", missing)
	}
	if s := missing[0].String(); !strings.Contains(s, "bad.yml") || !strings.Contains(s, "lint, then a target nobody wrote") {
		t.Errorf("the finding %q does not say where", s)
	}

	dir := t.TempDir()
	other := "on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: make -C sub build\n"
	if err := os.WriteFile(filepath.Join(dir, "other.yml"), []byte(other), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := WorkflowMakeCalls(dir); err == nil || !strings.Contains(err.Error(), "another Makefile") {
		t.Errorf("make -C was not refused: %v", err)
	}
}
