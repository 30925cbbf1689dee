package release

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const repo = "../../.."

func testConfig(t *testing.T) Config {
	t.Helper()
	data, err := os.ReadFile("testdata/deploy.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	// CIDRs other than the overlay's placeholders, so a policy left
	// unpatched shows.
	cfg.VPCCIDR, cfg.DataCIDR = "10.20.0.0/16", "10.20.96.0/19"
	return cfg
}

// overlays are what TestRender renders: the stand-in always, and the real
// deploy/k8s/overlays/aws (issue 11's) where this tree has it, or where
// MERCATO_AWS_OVERLAY points.
func overlays(t *testing.T) map[string]string {
	o := map[string]string{"stand-in": "testdata/overlay"}
	real := os.Getenv("MERCATO_AWS_OVERLAY")
	if real == "" {
		real = filepath.Join(repo, "deploy/k8s/overlays/aws")
	}
	if _, err := os.Stat(filepath.Join(real, "kustomization.yaml")); err == nil {
		o["overlays/aws"] = real
	} else {
		t.Logf("no %s in this tree: rendering the stand-in only", real)
	}
	return o
}

func abs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestRender: the rendering has the release's images, the environment's
// values in place of every placeholder, an ExternalSecret for every Secret
// a pod uses, and the bootstrap job pointed at RDS.
func TestRender(t *testing.T) {
	cfg := testConfig(t)
	for name, overlay := range overlays(t) {
		t.Run(name, func(t *testing.T) {
			out, err := Render(cfg, "v1.2.3", Options{
				Overlay:   abs(t, overlay),
				Templates: abs(t, filepath.Join(repo, "deploy/terraform/aws/kubernetes")),
				Dir:       filepath.Join(t.TempDir(), "release"),
				CABundle:  "testdata/global-bundle.pem",
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, placeholder := range []string{"000000000000", "placeholder.invalid", "mercato.example", "10.0.96.0/19", "10.0.0.0/16", "<no value>"} {
				if bytes.Contains(out, []byte(placeholder)) {
					t.Errorf("the rendering still holds %q", placeholder)
				}
			}
			objs := parse(t, out)
			checkRendering(t, cfg, objs)
		})
	}
}

type object struct {
	Kind     string         `yaml:"kind"`
	Metadata map[string]any `yaml:"metadata"`
	Spec     map[string]any `yaml:"spec"`
	Data     map[string]any `yaml:"data"`
	body     map[string]any
}

func (o object) name() string { s, _ := o.Metadata["name"].(string); return s }

func parse(t *testing.T, out []byte) []object {
	t.Helper()
	var objs []object
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var body map[string]any
		err := dec.Decode(&body)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := yaml.Marshal(body)
		var o object
		if err := yaml.Unmarshal(b, &o); err != nil {
			t.Fatal(err)
		}
		o.body = body
		objs = append(objs, o)
	}
	return objs
}

// at follows keys (and list indices, as ints) through a decoded object.
func at(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func checkRendering(t *testing.T, cfg Config, objs []object) {
	byKind := map[string]map[string]object{}
	for _, o := range objs {
		if byKind[o.Kind] == nil {
			byKind[o.Kind] = map[string]object{}
		}
		byKind[o.Kind][o.name()] = o
		if ns, _ := o.Metadata["namespace"].(string); o.Kind != "Namespace" && o.Kind != "StorageClass" && ns != "mercato" {
			t.Errorf("%s %s is in namespace %q, want mercato", o.Kind, o.name(), ns)
		}
	}

	for _, s := range Services {
		d, ok := byKind["Deployment"][s]
		if !ok {
			t.Errorf("no Deployment %s", s)
			continue
		}
		want := cfg.ImageRegistry + "/" + cfg.ImageRepositoryPrefix + "/" + s + ":v1.2.3"
		if got := at(d.body, "spec", "template", "spec", "containers", 0, "image"); got != want {
			t.Errorf("Deployment %s runs %v, want %s", s, got, want)
		}
	}

	ing := byKind["Ingress"]["gateway"]
	ann, _ := ing.Metadata["annotations"].(map[string]any)
	for k, want := range map[string]string{
		"alb.ingress.kubernetes.io/certificate-arn":                     cfg.CertificateARN,
		"alb.ingress.kubernetes.io/security-groups":                     cfg.ALBSecurityGroupID,
		"alb.ingress.kubernetes.io/manage-backend-security-group-rules": "true",
	} {
		if ann[k] != want {
			t.Errorf("Ingress gateway: annotation %s = %v, want %s", k, ann[k], want)
		}
	}
	if got := at(ing.body, "spec", "rules", 0, "host"); got != cfg.PublicHostname {
		t.Errorf("Ingress gateway: host %v, want %s", got, cfg.PublicHostname)
	}

	for name, want := range map[string]string{
		"services-egress-rds": cfg.DataCIDR, "services-egress-elasticache": cfg.DataCIDR,
		"services-egress-consul-agent": cfg.VPCCIDR, "database-bootstrap-egress": cfg.DataCIDR,
	} {
		if got := at(byKind["NetworkPolicy"][name].body, "spec", "egress", 0, "to", 0, "ipBlock", "cidr"); got != want {
			t.Errorf("NetworkPolicy %s allows %v, want %s", name, got, want)
		}
	}

	configs := map[string]map[string]any{}
	for name, o := range byKind["ConfigMap"] {
		configs[name[:max(0, strings.LastIndex(name, "-"))]] = o.Data // generated: name-<hash>
	}
	if got := configs["mercato-common"]["MERCATO_REDIS_ADDR"]; got != cfg.RedisAddress {
		t.Errorf("MERCATO_REDIS_ADDR = %v, want %s", got, cfg.RedisAddress)
	}
	if got := configs["gateway-config"]["MERCATO_TRUSTED_PROXIES"]; got != cfg.VPCCIDR {
		t.Errorf("MERCATO_TRUSTED_PROXIES = %v, want the VPC's %s (where the ALB's nodes are)", got, cfg.VPCCIDR)
	}
	if got := configs["notification-config"]["MERCATO_SMTP_ADDR"]; got != cfg.SMTPAddress {
		t.Errorf("MERCATO_SMTP_ADDR = %v, want %s", got, cfg.SMTPAddress)
	}
	if _, ok := configs["rds-ca-bundle"]["global-bundle.pem"]; !ok {
		t.Error("no ConfigMap rds-ca-bundle with global-bundle.pem")
	}

	// Every Secret a pod uses comes from Secrets Manager.
	targets := map[string]string{}
	for name, es := range byKind["ExternalSecret"] {
		targets[at(es.body, "spec", "target", "name").(string)] = name
		if key, _ := at(es.body, "spec", "dataFrom", 0, "extract", "key").(string); !strings.HasPrefix(key, cfg.SecretPrefix+"/") && key != cfg.DatabaseMasterSecret {
			t.Errorf("ExternalSecret %s reads %q, outside %s/", name, key, cfg.SecretPrefix)
		}
	}
	used := map[string]bool{}
	for _, o := range objs {
		secretRefs(o.body, used)
	}
	if len(used) < len(Services)+1 {
		t.Errorf("found only %d Secrets used (%v): the walk is broken", len(used), used)
	}
	for name := range used {
		if _, ok := targets[name]; !ok {
			t.Errorf("Secret %s is used by a pod but no ExternalSecret makes it", name)
		}
	}

	if sc := byKind["StorageClass"]["gp3"]; at(sc.body, "parameters", "encrypted") != "true" {
		t.Errorf("no encrypted StorageClass gp3 for Consul's volumes: %v", sc.body)
	}

	job := byKind["Job"]["database-bootstrap"]
	env := at(job.body, "spec", "template", "spec", "containers", 0, "env")
	if !slices.ContainsFunc(env.([]any), func(e any) bool {
		return at(e, "name") == "PGHOST" && at(e, "value") == cfg.DatabaseHost
	}) {
		t.Errorf("database-bootstrap does not connect to %s: %v", cfg.DatabaseHost, env)
	}
}

// secretRefs adds the names of the Secrets v refers to: volumes
// (secretName), projected sources (secret.name), env (secretKeyRef.name)
// and envFrom (secretRef.name).
func secretRefs(v any, names map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			switch k {
			case "secretName":
				if s, ok := c.(string); ok {
					names[s] = true
				}
			case "secret", "secretKeyRef", "secretRef":
				if s, ok := at(c, "name").(string); ok {
					names[s] = true
				}
			}
			secretRefs(c, names)
		}
	case []any:
		for _, c := range x {
			secretRefs(c, names)
		}
	}
}

// TestRenderRefuses: a tag that is not a release's, a configuration that
// lacks a value, and a CA bundle without a certificate are errors.
func TestRenderRefuses(t *testing.T) {
	cfg := testConfig(t)
	o := Options{
		Overlay:   abs(t, "testdata/overlay"),
		Templates: abs(t, filepath.Join(repo, "deploy/terraform/aws/kubernetes")),
		Dir:       filepath.Join(t.TempDir(), "release"),
		CABundle:  "testdata/global-bundle.pem",
	}
	for _, tag := range []string{"latest", "", "v1", "sha-XYZ", "main"} {
		if _, err := Render(cfg, tag, o); err == nil {
			t.Errorf("tag %q was accepted", tag)
		}
	}
	bad := o
	bad.CABundle = "testdata/deploy.json"
	if _, err := Render(cfg, "v1.2.3", bad); err == nil || !strings.Contains(err.Error(), "no PEM") {
		t.Errorf("a CA bundle without a certificate: %v", err)
	}
	if _, err := ParseConfig([]byte(`{"environment": "production"}`)); err == nil || !strings.Contains(err.Error(), "no alb_security_group_id") {
		t.Errorf("an incomplete configuration: %v", err)
	}
	if _, err := ParseConfig([]byte(`{"environment": "production", "surprise": 1}`)); err == nil {
		t.Error("an unknown key was accepted")
	}
}
