package check

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// LoadBalancerGroups are the security groups (resource names of
// aws_security_group) of the internet-facing load balancer: the only ones
// whose ingress may come from anywhere.
var LoadBalancerGroups = map[string]bool{"alb": true}

// anywhere are the CIDRs that mean the whole internet.
var anywhere = map[string]bool{"0.0.0.0/0": true, "::/0": true}

// accountID is a 12-digit AWS account id inside a string.
var accountID = regexp.MustCompile(`(^|[^0-9])[0-9]{12}([^0-9]|$)`)

// requirement is one setting a resource type must have.
type requirement struct {
	path string    // attribute, or "block/attribute" inside nested blocks
	want cty.Value // the literal value it must have; cty.NilVal: set to anything
	why  string
}

// requirements: encryption at rest and in transit everywhere, nothing
// public that should not be, backups kept.
var requirements = map[string][]requirement{
	"aws_db_instance": {
		{"publicly_accessible", cty.False, "the database must not be reachable from the internet"},
		{"storage_encrypted", cty.True, "storage must be encrypted"},
		{"kms_key_id", cty.NilVal, "storage must be encrypted with a key of ours"},
		{"backup_retention_period", cty.NilVal, "automated backups must be kept"},
		{"deletion_protection", cty.NilVal, "deletion protection must be decided, not defaulted off"},
	},
	"aws_rds_cluster": {
		{"storage_encrypted", cty.True, "storage must be encrypted"},
	},
	"aws_rds_cluster_instance": {
		{"publicly_accessible", cty.False, "the database must not be reachable from the internet"},
	},
	"aws_elasticache_replication_group": {
		{"at_rest_encryption_enabled", cty.True, "storage must be encrypted"},
		{"transit_encryption_enabled", cty.True, "clients must use TLS"},
		{"kms_key_id", cty.NilVal, "storage must be encrypted with a key of ours"},
		{"user_group_ids", cty.NilVal, "clients must log in as ACL users"},
	},
	"aws_eks_cluster": {
		{"encryption_config/resources", cty.NilVal, "Kubernetes Secrets must be encrypted with a KMS key"},
	},
	"aws_ecr_repository": {
		{"encryption_configuration/encryption_type", cty.StringVal("KMS"), "images must be encrypted with a key of ours"},
		{"image_scanning_configuration/scan_on_push", cty.True, "images must be scanned on push"},
		{"image_tag_mutability", cty.StringVal("IMMUTABLE"), "a release tag must always name the same image"},
	},
	"aws_secretsmanager_secret": {
		{"kms_key_id", cty.NilVal, "secrets must be encrypted with a key of ours"},
	},
	"aws_cloudwatch_log_group": {
		{"kms_key_id", cty.NilVal, "logs must be encrypted with a key of ours"},
		{"retention_in_days", cty.NilVal, "logs must not be kept (and paid for) forever"},
	},
	"aws_kms_key": {
		{"enable_key_rotation", cty.True, "keys must rotate"},
	},
	"aws_ssm_parameter": {
		{"type", cty.StringVal("SecureString"), "parameters must be encrypted"},
	},
	"aws_launch_template": {
		{"block_device_mappings/ebs/encrypted", cty.True, "node volumes must be encrypted"},
		{"metadata_options/http_tokens", cty.StringVal("required"), "nodes must require IMDSv2"},
	},
	"aws_ebs_volume": {
		{"encrypted", cty.True, "volumes must be encrypted"},
	},
	"aws_subnet": {
		{"map_public_ip_on_launch", cty.False, "nothing may get a public address by default"},
	},
}

// secretAttributes name values that must never be literals in the code.
var secretAttributes = map[string]bool{
	"password": true, "passwords": true, "master_password": true, "auth_token": true,
	"secret_string": true, "token": true, "private_key": true, "secret_key": true, "access_key": true,
}

// Policy reports what makes a resource of m reachable from the internet
// when it should not be, or stores or sends data unencrypted, and literal
// secrets and account ids. root is true for the root module (the one with
// the provider configuration).
func Policy(m *Module, root bool) []Finding {
	var out []Finding
	add := func(rule string, r hcl.Range, format string, args ...any) {
		out = append(out, Finding{rule, r, fmt.Sprintf(format, args...)})
	}

	dataStoreGroups := m.dataStoreGroups()
	for _, a := range m.attributes() {
		for _, s := range stringLiterals(a.attr.Expr) {
			if anywhere[s] && !anywhereAllowed(a) {
				add("open-cidr", a.attr.SrcRange, "%s = %q in %s opens it to the internet; only the load balancer's listeners (security group %s) may be", a.attr.Name, s, where(a.path), strings.Join(slices.Sorted(maps.Keys(LoadBalancerGroups)), ", "))
			}
			if accountID.MatchString(s) {
				add("account-id", a.attr.SrcRange, "%s holds what looks like an AWS account id (%q); use data.aws_caller_identity", a.attr.Name, s)
			}
		}
		if secretAttributes[a.attr.Name] {
			if v, diags := a.attr.Expr.Value(nil); !diags.HasErrors() && !v.IsNull() {
				add("literal-secret", a.attr.SrcRange, "%s in %s is a literal; generate it (random_password) or read it from Secrets Manager", a.attr.Name, where(a.path))
			}
		}
		if a.attr.Name == "subnet_ids" && referencesPublic(a.attr.Expr) {
			add("public-subnet", a.attr.SrcRange, "%s places %s in public subnets; everything but the load balancer lives in private ones", a.attr.Name, where(a.path))
		}
		if len(a.path) > 0 && dataStoreIngress(a, dataStoreGroups) {
			add("data-store-ingress", a.attr.SrcRange, "%s admits an address range into a database or cache security group; admit the cluster's security group only", where(a.path))
		}
	}

	for _, key := range slices.Sorted(maps.Keys(m.Resources)) {
		b := m.Resources[key]
		if b.Type != "resource" {
			continue
		}
		for _, req := range requirements[b.Labels[0]] {
			if msg := check(b.Body, strings.Split(req.path, "/"), req.want); msg != "" {
				add("required-setting", b.DefRange(), "%s: %s %s (%s)", key, req.path, msg, req.why)
			}
		}
	}

	hasDefaultTags := false
	for _, p := range m.Providers {
		if !root {
			add("provider-in-module", p.DefRange(), "provider %q configured in a child module; providers belong to the root", p.Labels[0])
		}
		for _, inner := range p.Body.Blocks {
			hasDefaultTags = hasDefaultTags || inner.Type == "default_tags"
		}
	}
	if root && !hasDefaultTags {
		add("tags", hcl.Range{Filename: m.Dir}, "the root module's aws provider has no default_tags, so resources go untagged")
	}

	for _, name := range slices.Sorted(maps.Keys(m.Variables)) {
		v := m.Variables[name]
		for _, attr := range []string{"type", "description"} {
			if _, ok := v.Body.Attributes[attr]; !ok {
				add("documented", v.DefRange(), "variable %q has no %s", name, attr)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(m.Outputs)) {
		if _, ok := m.Outputs[name].Body.Attributes["description"]; !ok {
			add("documented", m.Outputs[name].DefRange(), "output %q has no description", name)
		}
	}
	return out
}

// check returns "" when the nested attribute at path of body has want (or,
// want being NilVal, is set), else what is wrong. Every block on the way
// must have it (a launch template's every block device, say).
func check(body *hclsyntax.Body, path []string, want cty.Value) string {
	if len(path) > 1 {
		found := false
		for _, b := range body.Blocks {
			if b.Type == path[0] {
				found = true
				if msg := check(b.Body, path[1:], want); msg != "" {
					return msg
				}
			}
		}
		if !found {
			return "is missing"
		}
		return ""
	}
	attr, ok := body.Attributes[path[0]]
	if !ok {
		return "is missing"
	}
	if want == cty.NilVal {
		return ""
	}
	got, diags := attr.Expr.Value(nil)
	if diags.HasErrors() || got.IsNull() || !got.Type().Equals(want.Type()) || !got.Equals(want).True() {
		return fmt.Sprintf("must be the literal %s", literal(want))
	}
	return ""
}

func literal(v cty.Value) string {
	if v.Type() == cty.String {
		return fmt.Sprintf("%q", v.AsString())
	}
	if v.Type() == cty.Bool {
		return fmt.Sprint(v.True())
	}
	return v.GoString()
}

// stringLiterals lists the literal strings anywhere inside expr.
func stringLiterals(expr hclsyntax.Expression) []string {
	var out []string
	_ = hclsyntax.VisitAll(expr, func(n hclsyntax.Node) hcl.Diagnostics { // the walker returns no diagnostics
		if lit, ok := n.(*hclsyntax.LiteralValueExpr); ok && lit.Val.Type() == cty.String && lit.Val.IsKnown() && !lit.Val.IsNull() {
			out = append(out, lit.Val.AsString())
		}
		return nil
	})
	return out
}

// anywhereAllowed says whether an "anywhere" CIDR may stand in attribute
// a: as a route's destination, in an egress rule, in a variable's
// validation, or as ingress of a load balancer security group.
func anywhereAllowed(a attribute) bool {
	top := a.path[0]
	if top.Type == "variable" {
		return len(a.path) > 1 && a.path[1].Type == "validation"
	}
	if top.Type != "resource" {
		return false
	}
	switch top.Labels[0] {
	case "aws_route":
		return strings.HasPrefix(a.attr.Name, "destination_")
	case "aws_vpc_security_group_egress_rule":
		return true
	case "aws_security_group_rule":
		if typ, ok := top.Body.Attributes["type"]; ok {
			if v, diags := typ.Expr.Value(nil); !diags.HasErrors() && v.Type() == cty.String && v.AsString() == "egress" {
				return true
			}
		}
		return LoadBalancerGroups[groupOf(top)]
	case "aws_vpc_security_group_ingress_rule":
		return LoadBalancerGroups[groupOf(top)]
	case "aws_security_group":
		return len(a.path) > 1 && (a.path[1].Type == "egress" || LoadBalancerGroups[top.Labels[1]])
	}
	return false
}

// groupOf is the name of the aws_security_group a rule's security_group_id
// refers to, or "".
func groupOf(rule *hclsyntax.Block) string {
	attr, ok := rule.Body.Attributes["security_group_id"]
	if !ok {
		return ""
	}
	for _, t := range attr.Expr.Variables() {
		if t.RootName() == "aws_security_group" && len(t) > 1 {
			if s, ok := t[1].(hcl.TraverseAttr); ok {
				return s.Name
			}
		}
	}
	return ""
}

// dataStoreGroups are the aws_security_group names that an RDS instance or
// an ElastiCache group is placed in.
func (m *Module) dataStoreGroups() map[string]bool {
	groups := map[string]bool{}
	for _, b := range m.Resources {
		if b.Type != "resource" {
			continue
		}
		var attr string
		switch b.Labels[0] {
		case "aws_db_instance", "aws_rds_cluster":
			attr = "vpc_security_group_ids"
		case "aws_elasticache_replication_group", "aws_elasticache_cluster":
			attr = "security_group_ids"
		default:
			continue
		}
		if a, ok := b.Body.Attributes[attr]; ok {
			for _, t := range a.Expr.Variables() {
				if t.RootName() == "aws_security_group" && len(t) > 1 {
					if s, ok := t[1].(hcl.TraverseAttr); ok {
						groups[s.Name] = true
					}
				}
			}
		}
	}
	return groups
}

// cidrAttributes admit address ranges into a security group.
var cidrAttributes = map[string]bool{"cidr_ipv4": true, "cidr_ipv6": true, "cidr_blocks": true, "ipv6_cidr_blocks": true, "prefix_list_id": true, "prefix_list_ids": true}

// dataStoreIngress is true for an address range admitted into one of
// groups, by a rule resource or an inline ingress block.
func dataStoreIngress(a attribute, groups map[string]bool) bool {
	top := a.path[0]
	if top.Type != "resource" || !cidrAttributes[a.attr.Name] {
		return false
	}
	switch top.Labels[0] {
	case "aws_vpc_security_group_ingress_rule":
		return groups[groupOf(top)]
	case "aws_security_group_rule":
		return groups[groupOf(top)]
	case "aws_security_group":
		return groups[top.Labels[1]] && len(a.path) > 1 && a.path[1].Type == "ingress"
	}
	return false
}

// referencesPublic is true when expr names something public (a
// public_subnet_ids output, an aws_subnet.public).
func referencesPublic(expr hclsyntax.Expression) bool {
	for _, t := range expr.Variables() {
		for _, step := range t {
			var name string
			switch s := step.(type) {
			case hcl.TraverseRoot:
				name = s.Name
			case hcl.TraverseAttr:
				name = s.Name
			}
			if strings.Contains(name, "public") {
				return true
			}
		}
	}
	return false
}

// where names the block an attribute is in: resource.type.name, variable.x.
func where(path []*hclsyntax.Block) string {
	if len(path) == 0 {
		return "the file"
	}
	top := path[0]
	return strings.Join(append([]string{top.Type}, top.Labels...), ".")
}
