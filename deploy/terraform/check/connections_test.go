package check

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/mercato-dev/mercato/shared/localinfra"
)

// rdsClassGiB is the memory of the RDS instance classes the environments
// may use: RDS sizes max_connections from it.
var rdsClassGiB = map[string]float64{
	"db.t4g.medium": 4, "db.t4g.large": 8, "db.t4g.xlarge": 16,
	"db.m6g.large": 8, "db.m6g.xlarge": 16, "db.m6g.2xlarge": 32,
	"db.r6g.large": 16, "db.r6g.xlarge": 32,
}

// TestRDSHoldsEveryPool: in every environment (environments/*.tfvars),
// the RDS instance accepts as many connections as the AWS overlay's
// services open when each runs its autoscaler's maxReplicas, plus the
// pods a rolling update adds (25% surge: the release rolls every service
// at once), with every pool full (localinfra.MaxConnections, the figure
// e2e's TestPostgresHoldsEveryPool holds compose and the local overlay
// to). RDS's max_connections, unless the parameter group sets it, is
// LEAST(DBInstanceClassMemory/9531392, 5000), and DBInstanceClassMemory
// is the class's memory less what the OS and RDS's own processes keep:
// a tenth is left for that. Beyond it, the connections are refused
// ("sorry, too many clients already") and requests fail with 503.
func TestRDSHoldsEveryPool(t *testing.T) {
	objs, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), filepath.Join(repo, "deploy/k8s/overlays/aws"))
	if err != nil {
		t.Fatal(err)
	}
	pods := map[string]int{}
	for _, r := range objs.Resources() {
		if r.GetKind() != "HorizontalPodAutoscaler" {
			continue
		}
		target, _ := r.GetString("spec.scaleTargetRef.name")
		if _, ok := localinfra.ServiceConnections[target]; !ok {
			continue
		}
		body, err := r.Map()
		if err != nil {
			t.Fatal(err)
		}
		maxReplicas, ok := body["spec"].(map[string]any)["maxReplicas"].(int)
		if !ok {
			t.Fatalf("HorizontalPodAutoscaler %s: no integer maxReplicas", r.GetName())
		}
		pods[target] = maxReplicas + int(math.Ceil(float64(maxReplicas)/4))
	}
	for _, r := range objs.Resources() {
		if _, ok := pods[r.GetName()]; ok && r.GetKind() == "Deployment" {
			if s, _ := r.GetString("spec.strategy.rollingUpdate.maxSurge"); s != "" {
				t.Fatalf("Deployment %s sets maxSurge %s: count it here", r.GetName(), s)
			}
		}
	}
	for s := range localinfra.ServiceConnections {
		if pods[s] == 0 {
			t.Fatalf("the AWS overlay has no HorizontalPodAutoscaler for %s", s)
		}
	}
	need := localinfra.MaxConnections(pods)

	root, diags := LoadModule(filepath.Join(repo, "deploy/terraform/aws"))
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	rds, diags := LoadModule(filepath.Join(repo, "deploy/terraform/modules/rds"))
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if set := parameterValue(t, rds, "max_connections"); set != "" {
		t.Fatalf("modules/rds sets max_connections = %s: compare need %d with it", set, need)
	}
	files, _ := filepath.Glob(filepath.Join(repo, "deploy/terraform/aws/environments/*.tfvars"))
	if len(files) < 2 {
		t.Fatalf("want staging and production variables files, found %v", files)
	}
	for _, f := range files {
		class := tfvarsString(t, root, f, "db_instance_class")
		gib, ok := rdsClassGiB[class]
		if !ok {
			t.Fatalf("%s: db_instance_class %q: add its memory to rdsClassGiB", f, class)
		}
		have := min(int(0.9*gib*(1<<30)/9531392), 5000)
		if need > have {
			t.Errorf("%s: %s takes about %d connections; the AWS overlay's services at their autoscalers' maxReplicas plus a rollout's surge (%v pods) need %d",
				filepath.Base(f), class, have, pods, need)
		}
	}
}

// tfvarsString is the string variable name as file sets it, or its default
// in root.
func tfvarsString(t *testing.T, root *Module, file, name string) string {
	t.Helper()
	src, err := os.ReadFile(file) //nolint:gosec // G304: an environment's variables file
	if err != nil {
		t.Fatal(err)
	}
	f, diags := hclparse.NewParser().ParseHCL(src, file)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	attr, ok := f.Body.(*hclsyntax.Body).Attributes[name]
	if !ok {
		v, declared := root.Variables[name]
		if !declared {
			t.Fatalf("%s declares no variable %s", root.Dir, name)
		}
		if attr, ok = v.Body.Attributes["default"]; !ok {
			t.Fatalf("%s sets no %s, which has no default", file, name)
		}
	}
	v, diags := attr.Expr.Value(nil)
	if diags.HasErrors() {
		t.Fatalf("%s: %s is not a literal: %s", file, name, diags.Error())
	}
	return v.AsString()
}

// parameterValue is the value the parameter group of m sets for name, as
// written, or "".
func parameterValue(t *testing.T, m *Module, name string) string {
	t.Helper()
	group, ok := m.Resources["aws_db_parameter_group.this"]
	if !ok {
		t.Fatal("modules/rds has no aws_db_parameter_group.this")
	}
	for _, b := range group.Body.Blocks {
		if b.Type != "parameter" {
			continue
		}
		n, diags := b.Body.Attributes["name"].Expr.Value(nil)
		if diags.HasErrors() || n.AsString() != name {
			continue
		}
		v, diags := b.Body.Attributes["value"].Expr.Value(nil)
		if diags.HasErrors() {
			return fmt.Sprintf("(%s)", strings.TrimSpace(diags.Error()))
		}
		if v.Type() != cty.String {
			return v.GoString()
		}
		return v.AsString()
	}
	return ""
}
