package check

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MakeCall is one `make TARGET` in a workflow's run: step.
type MakeCall struct {
	File, Job, Step string
	Line            int
	Target          string
}

func (c MakeCall) String() string {
	return fmt.Sprintf("%s:%d: job %s, step %q: make %s", c.File, c.Line, c.Job, c.Step, c.Target)
}

// workflow is the part of a GitHub Actions workflow this reads.
type workflow struct {
	Jobs map[string]struct {
		Steps []struct {
			Name string    `yaml:"name"`
			Run  yaml.Node `yaml:"run"`
		} `yaml:"steps"`
	} `yaml:"jobs"`
}

// makeWord finds `make` as a command: at the start of a line or after a
// shell operator, not inside a word (cmake) or an argument (--make).
var makeWord = regexp.MustCompile(`(?m)(?:^|[;&|(]|\bthen|\bdo|\belse)\s*make((?:[ \t]+[^\s;&|()#]+)*)`)

// WorkflowMakeCalls lists every make target the workflows in dir run.
func WorkflowMakeCalls(dir string) ([]MakeCall, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.y*ml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var calls []MakeCall
	for _, name := range files {
		src, err := os.ReadFile(name) //nolint:gosec // G304: a workflow of the folder being checked
		if err != nil {
			return nil, err
		}
		var w workflow
		if err := yaml.Unmarshal(src, &w); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		for _, job := range slices.Sorted(maps.Keys(w.Jobs)) {
			for i, step := range w.Jobs[job].Steps {
				if step.Run.Kind != yaml.ScalarNode {
					continue
				}
				label := step.Name
				if label == "" {
					label = fmt.Sprintf("#%d", i+1)
				}
				script := step.Run.Value
				for _, m := range makeWord.FindAllStringSubmatchIndex(script, -1) {
					// "make-release" or "make.sh" is another command.
					if m[2] < len(script) && !strings.ContainsRune(" \t\n;&|)#", rune(script[m[2]])) {
						continue
					}
					targets, err := makeTargets(script[m[2]:m[3]])
					if err != nil {
						return nil, fmt.Errorf("%s: job %s, step %q: %w", name, job, label, err)
					}
					for _, t := range targets {
						calls = append(calls, MakeCall{File: name, Job: job, Step: label, Line: step.Run.Line, Target: t})
					}
				}
			}
		}
	}
	return calls, nil
}

// makeTargets are the goals among make's arguments: not options, not
// VAR=value assignments. Options that take a folder or file (-C, -f) would
// mean another Makefile, which this does not follow, so they are refused.
func makeTargets(args string) ([]string, error) {
	var targets []string
	for _, a := range strings.Fields(args) {
		a = strings.Trim(a, `"'`)
		switch {
		case a == "\\": // a line continuation
		case a == "-C" || a == "-f" || strings.HasPrefix(a, "--directory") || strings.HasPrefix(a, "--file") || strings.HasPrefix(a, "--makefile"):
			return nil, fmt.Errorf("make %s: another Makefile; call the root Makefile's targets", args)
		case strings.HasPrefix(a, "-"), strings.Contains(a, "="):
		case strings.ContainsAny(a, "$`"):
			return nil, fmt.Errorf("make %s: a target computed at run time cannot be checked", args)
		default:
			targets = append(targets, a)
		}
	}
	if len(targets) == 0 {
		targets = append(targets, "") // the default goal
	}
	return targets, nil
}

// makeRule is a rule's targets at the start of a Makefile line: "a b: deps",
// not an assignment (":=", "::=") or a recipe line.
var makeRule = regexp.MustCompile(`(?m)^([A-Za-z0-9_./%-]+(?:[ \t]+[A-Za-z0-9_./%-]+)*)[ \t]*::?(?:[^=]|$)`)

// MakefileTargets lists the explicit targets of a Makefile ("" stands for
// the default goal, present when there is any rule).
func MakefileTargets(path string) (map[string]bool, error) {
	src, err := os.ReadFile(path) //nolint:gosec // G304: the Makefile being checked
	if err != nil {
		return nil, err
	}
	targets := map[string]bool{}
	for _, m := range makeRule.FindAllStringSubmatch(string(src), -1) {
		for _, t := range strings.Fields(m[1]) {
			if !strings.HasPrefix(t, ".") { // .PHONY, .DEFAULT_GOAL
				targets[t] = true
				targets[""] = true
			}
		}
	}
	return targets, nil
}

// MissingMakeTargets are the workflows' make calls whose target the
// Makefile lacks.
func MissingMakeTargets(workflows, makefile string) ([]MakeCall, []MakeCall, error) {
	calls, err := WorkflowMakeCalls(workflows)
	if err != nil {
		return nil, nil, err
	}
	targets, err := MakefileTargets(makefile)
	if err != nil {
		return nil, nil, err
	}
	var missing []MakeCall
	for _, c := range calls {
		if !targets[c.Target] {
			missing = append(missing, c)
		}
	}
	return calls, missing, nil
}
