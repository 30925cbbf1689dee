package check

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// placeholderAccount is the account id the example files use where a real
// one must be filled in.
const placeholderAccount = "000000000000"

// Tfvars reports, for a variables file given to root module m: a value for
// a variable m does not declare, a variable m requires (no default) that
// the file does not set, an "anywhere" CIDR, and a real-looking account id.
func Tfvars(m *Module, path string) ([]Finding, hcl.Diagnostics) {
	src, err := os.ReadFile(path) //nolint:gosec // G304: the variables file being checked
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: err.Error()}}
	}
	f, diags := hclparse.NewParser().ParseHCL(src, path)
	if diags.HasErrors() {
		return nil, diags
	}
	body := f.Body.(*hclsyntax.Body)
	var out []Finding
	for _, b := range body.Blocks {
		out = append(out, Finding{"tfvars", b.DefRange(), fmt.Sprintf("block %q in a variables file", b.Type)})
	}
	for _, name := range slices.Sorted(maps.Keys(body.Attributes)) {
		attr := body.Attributes[name]
		if _, ok := m.Variables[name]; !ok {
			out = append(out, Finding{"undeclared", attr.SrcRange, fmt.Sprintf("%s sets %q, which %s does not declare", path, name, m.Dir)})
		}
		for _, s := range stringLiterals(attr.Expr) {
			if anywhere[s] {
				out = append(out, Finding{"open-cidr", attr.SrcRange, fmt.Sprintf("%s = %q", name, s)})
			}
			if accountID.MatchString(strings.ReplaceAll(s, placeholderAccount, "")) {
				out = append(out, Finding{"account-id", attr.SrcRange, fmt.Sprintf("%s holds an account id; keep real ones out of the repository", name)})
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(m.Variables)) {
		if _, hasDefault := m.Variables[name].Body.Attributes["default"]; hasDefault {
			continue
		}
		if _, set := body.Attributes[name]; !set {
			out = append(out, Finding{"tfvars", hcl.Range{Filename: path}, fmt.Sprintf("%s does not set %q, which %s requires", path, name, m.Dir)})
		}
	}
	return out, nil
}
