package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/mercato-dev/mercato/shared/localinfra"
)

// alertRulesFile and alertTestsFile are the alert rules and their promtool
// unit tests, relative to the repository root.
const (
	alertRulesFile = "deploy/prometheus/alerts.yml"
	alertTestsFile = "deploy/prometheus/alerts_test.yml"
)

// ruleFile is the part of a Prometheus rule file the tests read.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readRuleFile(t *testing.T, path string) ruleFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return f
}

// TestAlertRules has Debian's promtool check the rules and run their unit
// tests, and checks that every alert has a severity, the three annotations
// and unit tests of its own, firing and not.
func TestAlertRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found (Debian package prometheus; `make deps` installs it): %v", err)
	}
	root, err := localinfra.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	rules, tests := filepath.Join(root, alertRulesFile), filepath.Join(root, alertTestsFile)
	for _, args := range [][]string{{"check", "rules", rules}, {"test", "rules", tests}} {
		if out, err := exec.Command(promtool, args...).CombinedOutput(); err != nil { //nolint:gosec // G204: promtool on the repository's files
			t.Errorf("promtool %v: %v\n%s", args[:2], err, out)
		}
	}

	testText, err := os.ReadFile(tests)
	if err != nil {
		t.Fatal(err)
	}
	alerts := 0
	for _, g := range readRuleFile(t, rules).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			switch r.Labels["severity"] {
			case "critical", "warning":
			default:
				t.Errorf("%s: severity %q, want critical or warning", r.Alert, r.Labels["severity"])
			}
			for _, a := range []string{"summary", "description", "runbook"} {
				if r.Annotations[a] == "" {
					t.Errorf("%s: no %s annotation", r.Alert, a)
				}
			}
			// At least one case where it fires and one where it does not.
			firing := regexp.MustCompile(`(?m)alertname: ` + r.Alert + `\n\s+exp_alerts:\n\s+- exp_labels`)
			quiet := regexp.MustCompile(`(?m)alertname: ` + r.Alert + `\n\s+exp_alerts: \[\]`)
			if !firing.Match(testText) || !quiet.Match(testText) {
				t.Errorf("%s: %s needs a case where it fires and one where it does not (firing %v, quiet %v)",
					r.Alert, alertTestsFile, firing.Match(testText), quiet.Match(testText))
			}
		}
	}
	if alerts < 10 {
		t.Errorf("%d alerts in %s, want the issue's dozen or so", alerts, alertRulesFile)
	}
}
