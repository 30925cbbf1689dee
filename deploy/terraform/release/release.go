// Package release renders what a deploy applies to an environment on AWS:
// deploy/k8s/overlays/aws with the environment's values filled in (the
// release's images in ECR, the certificate and host of the Ingress, the
// ElastiCache endpoint, the VPC's CIDRs in the egress policies, SES), and
// the objects of deploy/terraform/aws/kubernetes (the ExternalSecrets and
// the database bootstrap job). The values come from the deploy
// configuration deploy/terraform/aws writes to SSM (Config). It writes a
// kustomization beside the overlay and builds it with kustomize's own
// library, as `kubectl apply -k` would.
package release

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/template"

	"go.yaml.in/yaml/v3"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Config is the deploy configuration: the JSON of the SSM parameter
// /<name>/<environment>/deploy (deploy/terraform/aws/kubernetes.tf).
type Config struct {
	Environment             string `json:"environment"`
	Region                  string `json:"region"`
	ClusterName             string `json:"cluster_name"`
	VPCID                   string `json:"vpc_id"`
	VPCCIDR                 string `json:"vpc_cidr"`
	DataCIDR                string `json:"data_cidr"`
	PublicURL               string `json:"public_url"`
	PublicHostname          string `json:"public_hostname"`
	CertificateARN          string `json:"certificate_arn"`
	ALBSecurityGroupID      string `json:"alb_security_group_id"`
	ImageRegistry           string `json:"image_registry"`
	ImageRepositoryPrefix   string `json:"image_repository_prefix"`
	RedisAddress            string `json:"redis_address"`
	SMTPAddress             string `json:"smtp_address"`
	EmailFrom               string `json:"email_from"`
	DatabaseHost            string `json:"database_host"`
	DatabaseMasterSecret    string `json:"database_master_secret_arn"`
	SecretPrefix            string `json:"secret_prefix"`
	LoadBalancerControlRole string `json:"load_balancer_controller_role_arn"`
	ExternalSecretsRole     string `json:"external_secrets_role_arn"`
}

// ParseConfig reads a deploy configuration and checks that every value the
// rendering needs is there.
func ParseConfig(data []byte) (Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("deploy configuration: %w", err)
	}
	var missing []string
	for name, v := range map[string]string{
		"environment": c.Environment, "region": c.Region, "vpc_cidr": c.VPCCIDR, "data_cidr": c.DataCIDR,
		"public_hostname": c.PublicHostname, "certificate_arn": c.CertificateARN,
		"alb_security_group_id": c.ALBSecurityGroupID, "image_registry": c.ImageRegistry,
		"image_repository_prefix": c.ImageRepositoryPrefix, "redis_address": c.RedisAddress,
		"smtp_address": c.SMTPAddress, "email_from": c.EmailFrom, "database_host": c.DatabaseHost,
		"database_master_secret_arn": c.DatabaseMasterSecret, "secret_prefix": c.SecretPrefix,
	} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return c, fmt.Errorf("deploy configuration: no %s", strings.Join(slices.Sorted(slices.Values(missing)), ", "))
	}
	return c, nil
}

// Services are the six programs, each a Deployment of the overlay with an
// image in ECR and a Secret <service>-secrets.
var Services = []string{"gateway", "user", "product", "order", "payment", "notification"}

// tagPattern is what a release tag may be: sha-<commit> or v<semver>.
var tagPattern = regexp.MustCompile(`^(sha-[0-9a-f]{7,40}|v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?)$`)

// Options say where the pieces are.
type Options struct {
	Overlay   string // deploy/k8s/overlays/aws
	Templates string // deploy/terraform/aws/kubernetes
	Dir       string // where to write the kustomization (emptied first)
	CABundle  string // the RDS CA bundle (PEM) for the ConfigMap rds-ca-bundle
}

// Render writes the kustomization for cfg and image tag into o.Dir and
// returns what it builds to.
func Render(cfg Config, tag string, o Options) ([]byte, error) {
	if !tagPattern.MatchString(tag) {
		return nil, fmt.Errorf("image tag %q is neither sha-<commit> nor v<major>.<minor>.<patch>", tag)
	}
	bundle, err := os.ReadFile(o.CABundle) //nolint:gosec // G304: the bundle the caller names
	if err != nil {
		return nil, fmt.Errorf("RDS CA bundle: %w", err)
	}
	if !bytes.Contains(bundle, []byte("-----BEGIN CERTIFICATE-----")) {
		return nil, fmt.Errorf("RDS CA bundle %s holds no PEM certificate", o.CABundle)
	}
	if err := os.RemoveAll(o.Dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(o.Dir, "aws"), 0o750); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(o.Dir, "global-bundle.pem"), bundle, 0o600); err != nil { //nolint:gosec // G703: into the folder the caller names
		return nil, err
	}
	for _, name := range []string{"storageclass.yaml", "external-secrets.yaml", "db-bootstrap.yaml"} {
		if err := expand(filepath.Join(o.Templates, name), filepath.Join(o.Dir, "aws", name), cfg); err != nil {
			return nil, err
		}
	}
	overlay, err := filepath.Rel(o.Dir, o.Overlay)
	if err != nil {
		return nil, err
	}
	k, err := yaml.Marshal(kustomization(cfg, tag, overlay))
	if err != nil {
		return nil, err
	}
	header := fmt.Sprintf("# Written by deploy/terraform/release for %s, images %s: not edited by hand.\n", cfg.Environment, tag)
	if err := os.WriteFile(filepath.Join(o.Dir, "kustomization.yaml"), append([]byte(header), k...), 0o600); err != nil {
		return nil, err
	}
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), o.Dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", o.Dir, err)
	}
	return m.AsYaml()
}

// templateData is what the templates of deploy/terraform/aws/kubernetes see.
type templateData struct {
	Config
	ExternalSecrets []externalSecret
}

type externalSecret struct{ Target, Key string }

// expand fills the template src into dst.
func expand(src, dst string, cfg Config) error {
	t, err := template.New(filepath.Base(src)).Option("missingkey=error").ParseFiles(src)
	if err != nil {
		return err
	}
	data := templateData{Config: cfg}
	for _, s := range Services {
		data.ExternalSecrets = append(data.ExternalSecrets, externalSecret{s + "-secrets", cfg.SecretPrefix + "/" + s})
	}
	data.ExternalSecrets = append(data.ExternalSecrets,
		externalSecret{"mercato-jwt", cfg.SecretPrefix + "/jwt"},
		externalSecret{"prometheus-secrets", cfg.SecretPrefix + "/prometheus"},
		externalSecret{"grafana-secrets", cfg.SecretPrefix + "/grafana"},
		externalSecret{"alertmanager-config", cfg.SecretPrefix + "/alertmanager"},
		externalSecret{"database-bootstrap", cfg.SecretPrefix + "/database-bootstrap"},
		externalSecret{"database-master", cfg.DatabaseMasterSecret},
	)
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return err
	}
	return os.WriteFile(dst, b.Bytes(), 0o600)
}

// op is one JSON patch operation.
type op struct {
	Op    string `yaml:"op"`
	Path  string `yaml:"path"`
	Value any    `yaml:"value"`
}

// patch is a kustomization patch of the objects target selects.
func patch(kind, name string, ops ...op) map[string]any {
	b, err := yaml.Marshal(ops)
	if err != nil {
		panic(err) // ops are plain values
	}
	return map[string]any{"target": map[string]string{"kind": kind, "name": name}, "patch": string(b)}
}

// annotation is the JSON pointer of an annotation ("/" escaped as "~1").
func annotation(name string) string {
	return "/metadata/annotations/" + strings.ReplaceAll(name, "/", "~1")
}

// kustomization is the wrapper around the overlay for cfg and tag.
func kustomization(cfg Config, tag, overlay string) map[string]any {
	var patches []map[string]any
	for _, s := range Services {
		image := fmt.Sprintf("%s/%s/%s:%s", cfg.ImageRegistry, cfg.ImageRepositoryPrefix, s, tag)
		patches = append(patches, patch("Deployment", s, op{"replace", "/spec/template/spec/containers/0/image", image}))
	}
	patches = append(patches,
		patch("Ingress", "gateway",
			op{"replace", "/spec/rules/0/host", cfg.PublicHostname},
			op{"add", annotation("alb.ingress.kubernetes.io/certificate-arn"), cfg.CertificateARN},
			// The one security group open to the internet, made by the
			// stack; the controller adds the rules from the ALB to the pods.
			op{"add", annotation("alb.ingress.kubernetes.io/security-groups"), cfg.ALBSecurityGroupID},
			op{"add", annotation("alb.ingress.kubernetes.io/manage-backend-security-group-rules"), "true"},
		),
		patch("NetworkPolicy", "services-egress-rds", op{"replace", "/spec/egress/0/to/0/ipBlock/cidr", cfg.DataCIDR}),
		patch("NetworkPolicy", "services-egress-elasticache", op{"replace", "/spec/egress/0/to/0/ipBlock/cidr", cfg.DataCIDR}),
		patch("NetworkPolicy", "services-egress-consul-agent", op{"replace", "/spec/egress/0/to/0/ipBlock/cidr", cfg.VPCCIDR}),
	)
	return map[string]any{
		"apiVersion": "kustomize.config.k8s.io/v1beta1",
		"kind":       "Kustomization",
		"namespace":  "mercato",
		"resources":  []string{overlay, "aws/storageclass.yaml", "aws/external-secrets.yaml", "aws/db-bootstrap.yaml"},
		"configMapGenerator": []map[string]any{
			{"name": "mercato-common", "behavior": "merge", "literals": []string{"MERCATO_REDIS_ADDR=" + cfg.RedisAddress}},
			// The ALB's nodes have addresses in the VPC: the gateway takes
			// the client's from X-Forwarded-For when a request comes from one.
			{"name": "gateway-config", "behavior": "merge", "literals": []string{"MERCATO_TRUSTED_PROXIES=" + cfg.VPCCIDR}},
			{"name": "notification-config", "behavior": "merge", "literals": []string{
				"MERCATO_SMTP_ADDR=" + cfg.SMTPAddress, "MERCATO_SMTP_FROM=" + cfg.EmailFrom,
			}},
			{"name": "rds-ca-bundle", "files": []string{"global-bundle.pem"},
				"options": map[string]any{"labels": map[string]string{"mercato.dev/deploy-phase": "secrets"}}},
		},
		"patches": patches,
	}
}
