package k8spolicy

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// repoRoot is the repository's root, seen from this package.
const repoRoot = "../.."

// renderTarget is one kustomization of deploy/k8s and the rules it is held
// to.
type renderTarget struct {
	dir   string // under deploy/k8s
	rules Rules
}

// targets are what gets rendered: the base (image tags are its overlays'),
// the local overlay (its Secrets are generated from files, by design), the
// AWS one (every rule).
var targets = []renderTarget{
	{"base", Rules{PinnedImages: false, SecretsByReference: true}},
	{"overlays/local", Rules{PinnedImages: true, SecretsByReference: false, Exceptions: []Exception{LogCollector}}},
	{"overlays/aws", Rules{PinnedImages: true, SecretsByReference: true, Exceptions: []Exception{LogCollector}}},
}

// TestManifestsFollowThePolicy renders every kustomization of deploy/k8s,
// as kubectl apply -k does, and fails on every violation of Check.
func TestManifestsFollowThePolicy(t *testing.T) {
	local := localOverlayCopy(t)
	for _, tc := range targets {
		t.Run(tc.dir, func(t *testing.T) {
			dir := filepath.Join(repoRoot, "deploy/k8s", tc.dir)
			if tc.dir == "overlays/local" {
				dir = local
			}
			objs, err := Render(filesys.MakeFsOnDisk(), dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) < 30 {
				t.Fatalf("%d objects rendered; the six services alone make more", len(objs))
			}
			for _, v := range Check(objs, tc.rules) {
				t.Error(v)
			}
		})
	}
}

// localOverlayCopy returns the local overlay in a copy of deploy/ whose
// generated/ folder holds secrets fresh from mercato-local -compose-secrets
// (what scripts/k8s-secrets.sh runs), so the rendering proves the
// kustomization reads exactly the files that command writes.
func localOverlayCopy(t *testing.T) string {
	t.Helper()
	tmp := t.TempDir()
	for _, d := range []string{"k8s", "compose", "prometheus", "grafana"} {
		copyTree(t, filepath.Join(repoRoot, "deploy", d), filepath.Join(tmp, "deploy", d))
	}
	bin := filepath.Join(tmp, "mercato-local")
	build := exec.Command("go", "build", "-o", bin, "github.com/mercato-dev/mercato/shared/cmd/mercato-local")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building mercato-local (needs go on PATH): %v\n%s", err, out)
	}
	overlay := filepath.Join(tmp, "deploy/k8s/overlays/local")
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	gen := exec.Command(bin, "-root", root, "-compose-secrets", filepath.Join(overlay, "generated"))
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("mercato-local -compose-secrets: %v\n%s", err, out)
	}
	return overlay
}

// copyTree copies the files under src to dst, leaving out generated/
// folders (a developer's own local secrets).
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			if d.Name() == "generated" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(path) //nolint:gosec // G304: a file of the repository's deploy/
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRulesCatchViolations proves every rule can fail: each fixture of
// testdata is testdata/compliant with one thing broken, and must break
// that rule and no other; the compliant one breaks none. The collector
// fixtures prove the LogCollector exception allows exactly what it says:
// that workload, there, those folders, read-only.
func TestRulesCatchViolations(t *testing.T) {
	fixtures := map[string]string{
		"compliant":                 "",
		"no-readiness-probe":        RuleProbes,
		"no-liveness-probe":         RuleProbes,
		"service-without-startup":   RuleProbes,
		"no-limits":                 RuleResources,
		"no-requests":               RuleResources,
		"runs-as-root":              RuleNonRoot,
		"init-container-as-root":    RuleNonRoot,
		"writable-root":             RuleReadOnlyRoot,
		"keeps-capabilities":        RuleCapabilities,
		"privilege-escalation":      RulePrivilegeEsc,
		"unconfined-seccomp":        RuleSeccomp,
		"latest-image":              RuleImageTag,
		"untagged-image":            RuleImageTag,
		"inline-secret":             RuleInlineSecret,
		"no-network-policy":         RuleDefaultDeny,
		"ingress-only-default-deny": RuleDefaultDeny,
		"default-deny-with-a-rule":  RuleDefaultDeny,
		"host-path":                 RuleHostPath,
		"collector":                 "",
		"collector-more-host-paths": RuleHostPath,
		"collector-writes-the-host": RuleHostPath,
		"collector-elsewhere":       RuleHostPath,
	}
	entries, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := fixtures[e.Name()]; !ok {
			t.Errorf("testdata/%s is not in the fixture table", e.Name())
		}
	}
	for name, rule := range fixtures {
		t.Run(name, func(t *testing.T) {
			objs, err := Render(filesys.MakeFsOnDisk(), filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			vs := Check(objs, Rules{PinnedImages: true, SecretsByReference: true, Exceptions: []Exception{LogCollector}})
			var got []string
			for _, v := range vs {
				got = append(got, v.Rule)
			}
			slices.Sort(got)
			got = slices.Compact(got)
			var want []string
			if rule != "" {
				want = []string{rule}
			}
			if !slices.Equal(got, want) {
				t.Errorf("rules broken %v, want %v; violations:\n%s", got, want, joinViolations(vs))
			}
		})
	}
}

func joinViolations(vs []Violation) string {
	var b strings.Builder
	for _, v := range vs {
		b.WriteString("  " + v.String() + "\n")
	}
	return b.String()
}
