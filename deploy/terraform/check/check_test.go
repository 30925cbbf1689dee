package check

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// repo is the repository's root, from this package's folder.
const repo = "../../.."

// run loads the configuration rooted at dir and runs every check on every
// module of it.
func run(t *testing.T, dir string) (map[string]*Module, []Finding) {
	t.Helper()
	mods, diags := LoadTree(dir)
	if diags.HasErrors() {
		t.Fatalf("parsing %s: %s", dir, diags.Error())
	}
	root := filepath.Clean(dir)
	var findings []Finding
	for _, path := range slices.Sorted(maps.Keys(mods)) {
		m := mods[path]
		findings = append(findings, References(m, mods)...)
		findings = append(findings, ModuleInputs(m, mods)...)
		findings = append(findings, Policy(m, path == root)...)
	}
	return mods, findings
}

// TestAWSConfiguration: the configuration of deploy/terraform/aws and
// every module it calls parse, declare everything they use, pass every
// module its inputs, and pass the policy (nothing public but the load
// balancer, encryption on, no literal secrets or account ids).
func TestAWSConfiguration(t *testing.T) {
	root := filepath.Join(repo, "deploy/terraform/aws")
	mods, findings := run(t, root)
	for _, f := range findings {
		t.Error(f)
	}

	// Every module folder is called: none is dead code the checks skip.
	dirs, err := filepath.Glob(filepath.Join(repo, "deploy/terraform/modules/*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no modules under deploy/terraform/modules (%v)", err)
	}
	for _, d := range dirs {
		if _, ok := mods[filepath.Clean(d)]; !ok {
			t.Errorf("%s is not called by %s", d, root)
		}
	}
	if len(mods) != len(dirs)+1 {
		t.Errorf("loaded %d modules, want the root and %d", len(mods), len(dirs))
	}

	// What the issue asks for is there, not only well-formed.
	want := []string{
		"aws_vpc.this", "aws_nat_gateway.this", "aws_eks_cluster.this", "aws_eks_node_group.this",
		"aws_eks_addon.before_nodes", "aws_eks_addon.after_nodes", "aws_iam_openid_connect_provider.cluster",
		"aws_db_instance.this", "aws_db_parameter_group.this", "aws_elasticache_replication_group.this",
		"aws_elasticache_user.service", "aws_ecr_repository.this", "aws_ecr_lifecycle_policy.this",
		"aws_secretsmanager_secret.this", "aws_iam_role.deploy", "aws_iam_role.release",
	}
	have := map[string]bool{}
	for _, m := range mods {
		for key := range m.Resources {
			have[key] = true
		}
	}
	for _, key := range want {
		if !have[key] {
			t.Errorf("no resource %s in the configuration", key)
		}
	}
}

// TestEnvironmentFiles: each environment's variables file sets only
// declared variables, every required one, and nothing open or real.
func TestEnvironmentFiles(t *testing.T) {
	root, diags := LoadModule(filepath.Join(repo, "deploy/terraform/aws"))
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	files, _ := filepath.Glob(filepath.Join(repo, "deploy/terraform/aws/environments/*.tfvars"))
	if len(files) < 2 {
		t.Fatalf("want staging and production variables files, found %v", files)
	}
	for _, f := range files {
		findings, diags := Tfvars(root, f)
		if diags.HasErrors() {
			t.Errorf("%s: %s", f, diags.Error())
		}
		for _, finding := range findings {
			t.Error(finding)
		}
	}
}

// TestChecksFail: each check finds what it is for, in a configuration
// broken on purpose (testdata/<case>), and only that.
func TestChecksFail(t *testing.T) {
	cases := []struct {
		dir  string
		want []string // "rule: part of the message", sorted by rule
	}{
		{"open-database", []string{
			"data-store-ingress: resource.aws_vpc_security_group_ingress_rule.db_from_anywhere",
			`open-cidr: cidr_ipv4 = "0.0.0.0/0" in resource.aws_vpc_security_group_ingress_rule.db_from_anywhere`,
		}},
		{"undeclared-variable", []string{
			`undeclared: variable "instance_clas" is not declared`,
			`unused: data.aws_region.current is declared but never used`,
			`unused: variable "instance_class" is declared but never used`,
		}},
		{"missing-input", []string{
			`module-input: module "db" does not pass "identifier"`,
			`module-input: module "db" passes "identifer", which`,
		}},
		{"unencrypted-public", []string{
			"required-setting: aws_db_instance.this: publicly_accessible must be the literal false",
			"required-setting: aws_db_instance.this: storage_encrypted is missing",
			"required-setting: aws_elasticache_replication_group.this: transit_encryption_enabled must be the literal true",
		}},
		{"literal-secret", []string{
			`account-id: arn holds what looks like an AWS account id`,
			"literal-secret: password in resource.aws_db_instance.this is a literal",
		}},
	}
	for _, c := range cases {
		t.Run(c.dir, func(t *testing.T) {
			_, findings := run(t, filepath.Join("testdata", c.dir))
			var got []string
			for _, f := range findings {
				got = append(got, f.Rule+": "+f.Message)
			}
			sort.Strings(got)
			if len(got) != len(c.want) {
				t.Fatalf("got %d findings, want %d:\n%s", len(got), len(c.want), strings.Join(got, "\n"))
			}
			for i, w := range c.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("finding %d is %q, want one containing %q", i, got[i], w)
				}
			}
		})
	}
}

// TestSyntaxErrorsFail: a file that does not parse, and a misspelt block
// type, are errors, not silently skipped files.
func TestSyntaxErrorsFail(t *testing.T) {
	dir := t.TempDir()
	for name, src := range map[string]string{
		"broken": "resource \"aws_vpc\" \"this\" {\n  cidr_block = \n",
		"typo":   "resouce \"aws_vpc\" \"this\" {}\n",
	} {
		sub := filepath.Join(dir, name)
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sub, "main.tf"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, diags := LoadModule(sub); !diags.HasErrors() {
			t.Errorf("%s: no error for %q", name, src)
		}
	}
	if _, diags := LoadModule(filepath.Join(dir, "none")); !diags.HasErrors() {
		t.Error("a folder without .tf files loaded without error")
	}
}

// TestTfvarsFail: a variables file with an unknown name, a missing
// required variable, 0.0.0.0/0 and an account id is refused for each.
func TestTfvarsFail(t *testing.T) {
	m, diags := LoadModule(filepath.Join("testdata", "missing-input", "rds"))
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	path := filepath.Join(t.TempDir(), "bad.tfvars")
	src := "identifer = \"x\"\nallowed = [\"0.0.0.0/0\"]\nrole = \"arn:aws:iam::123456789012:role/x\"\n"
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	findings, diags := Tfvars(m, path)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	var rules []string
	for _, f := range findings {
		rules = append(rules, f.Rule)
	}
	sort.Strings(rules)
	want := []string{"account-id", "open-cidr", "tfvars", "undeclared", "undeclared", "undeclared"}
	if !slices.Equal(rules, want) {
		t.Errorf("rules %v, want %v; findings: %v", rules, want, findings)
	}
}
