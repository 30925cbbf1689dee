// Package check reads the OpenTofu configuration under deploy/terraform and
// the GitHub workflows, and finds what the format's own tools cannot check
// without an AWS account or provider plugins: references to undeclared
// variables, locals, resources and module outputs; module calls missing an
// input or passing an unknown one; resources reachable from the internet
// or stored unencrypted (policy.go); workflows calling make targets that do
// not exist (workflows.go). `tofu fmt -check` (scripts/check-terraform.sh)
// checks the syntax and layout; these tests the meaning.
package check

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Finding is one problem, at a place in a file.
type Finding struct {
	Rule    string // what was broken: "undeclared", "module-input", "open-cidr", ...
	Range   hcl.Range
	Message string
}

func (f Finding) String() string {
	return fmt.Sprintf("%s:%d: %s: %s", f.Range.Filename, f.Range.Start.Line, f.Rule, f.Message)
}

// Module is one folder of .tf files, as OpenTofu reads it.
type Module struct {
	Dir       string
	Bodies    []*hclsyntax.Body // one per file, in file name order
	Variables map[string]*hclsyntax.Block
	Locals    map[string]*hclsyntax.Attribute
	Outputs   map[string]*hclsyntax.Block
	Calls     map[string]*hclsyntax.Block // module blocks by name
	Resources map[string]*hclsyntax.Block // "type.name" (data sources: "data.type.name")
	Providers []*hclsyntax.Block
}

// topLevel is every block OpenTofu accepts at the top of a file; anything
// else (a misspelt "resouce") is an error, as it is to OpenTofu.
var topLevel = map[string]int{ // block type → number of labels
	"terraform": 0, "provider": 1, "variable": 1, "locals": 0, "output": 1,
	"module": 1, "resource": 2, "data": 2, "moved": 0, "import": 0,
	"removed": 0, "check": 1,
}

// LoadModule parses every .tf file of dir. Syntax errors and unknown or
// duplicate declarations are returned as diagnostics.
func LoadModule(dir string) (*Module, hcl.Diagnostics) {
	files, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	if err != nil || len(files) == 0 {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: fmt.Sprintf("no .tf files in %s", dir)}}
	}
	sort.Strings(files)
	m := &Module{
		Dir:       dir,
		Variables: map[string]*hclsyntax.Block{},
		Locals:    map[string]*hclsyntax.Attribute{},
		Outputs:   map[string]*hclsyntax.Block{},
		Calls:     map[string]*hclsyntax.Block{},
		Resources: map[string]*hclsyntax.Block{},
	}
	parser := hclparse.NewParser()
	var diags hcl.Diagnostics
	for _, name := range files {
		src, err := os.ReadFile(name) //nolint:gosec // G304: a .tf file of the folder being checked
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: err.Error()})
			continue
		}
		f, d := parser.ParseHCL(src, name)
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		body := f.Body.(*hclsyntax.Body)
		m.Bodies = append(m.Bodies, body)
		diags = append(diags, m.declare(body)...)
	}
	return m, diags
}

func (m *Module) declare(body *hclsyntax.Body) hcl.Diagnostics {
	var diags hcl.Diagnostics
	fail := func(r hcl.Range, format string, args ...any) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: fmt.Sprintf(format, args...), Subject: r.Ptr()})
	}
	for name, attr := range body.Attributes {
		fail(attr.SrcRange, "attribute %q outside any block", name)
	}
	once := func(seen map[string]*hclsyntax.Block, key string, b *hclsyntax.Block) {
		if _, dup := seen[key]; dup {
			fail(b.DefRange(), "%s %q declared twice", b.Type, key)
		}
		seen[key] = b
	}
	for _, b := range body.Blocks {
		labels, ok := topLevel[b.Type]
		if !ok {
			fail(b.DefRange(), "unknown block type %q", b.Type)
			continue
		}
		if len(b.Labels) != labels {
			fail(b.DefRange(), "%s block needs %d labels, has %d", b.Type, labels, len(b.Labels))
			continue
		}
		switch b.Type {
		case "variable":
			once(m.Variables, b.Labels[0], b)
		case "output":
			once(m.Outputs, b.Labels[0], b)
		case "module":
			once(m.Calls, b.Labels[0], b)
		case "resource":
			once(m.Resources, b.Labels[0]+"."+b.Labels[1], b)
		case "data":
			once(m.Resources, "data."+b.Labels[0]+"."+b.Labels[1], b)
		case "provider":
			m.Providers = append(m.Providers, b)
		case "locals":
			for name, attr := range b.Body.Attributes {
				if _, dup := m.Locals[name]; dup {
					fail(attr.SrcRange, "local %q declared twice", name)
				}
				m.Locals[name] = attr
			}
		}
	}
	return diags
}

// LocalSource is the folder a module call's literal source names, or ""
// for a registry or remote source (or one that is not a literal).
func (m *Module) LocalSource(call *hclsyntax.Block) string {
	attr, ok := call.Body.Attributes["source"]
	if !ok {
		return ""
	}
	v, diags := attr.Expr.Value(nil)
	if diags.HasErrors() || !v.Type().Equals(cty.String) {
		return ""
	}
	src := v.AsString()
	if !strings.HasPrefix(src, "./") && !strings.HasPrefix(src, "../") {
		return ""
	}
	return filepath.Join(m.Dir, src)
}

// LoadTree loads root and, recursively, every module it calls from a
// local folder, each once, keyed by its cleaned path.
func LoadTree(root string) (map[string]*Module, hcl.Diagnostics) {
	mods := map[string]*Module{}
	var diags hcl.Diagnostics
	var load func(dir string)
	load = func(dir string) {
		dir = filepath.Clean(dir)
		if _, done := mods[dir]; done {
			return
		}
		m, d := LoadModule(dir)
		diags = append(diags, d...)
		if m == nil {
			return
		}
		mods[dir] = m
		for _, call := range m.Calls {
			if src := m.LocalSource(call); src != "" {
				load(src)
			}
		}
	}
	load(root)
	return mods, diags
}

// walkBlocks calls fn for every block of the module, nested ones
// included, with the chain of its enclosing blocks (outermost first).
func (m *Module) walkBlocks(fn func(path []*hclsyntax.Block, b *hclsyntax.Block)) {
	var walk func(path []*hclsyntax.Block, body *hclsyntax.Body)
	walk = func(path []*hclsyntax.Block, body *hclsyntax.Body) {
		for _, b := range body.Blocks {
			inner := append(append([]*hclsyntax.Block(nil), path...), b)
			fn(path, b)
			walk(inner, b.Body)
		}
	}
	for _, body := range m.Bodies {
		walk(nil, body)
	}
}

// attribute is an attribute with the blocks it sits in (outermost first).
type attribute struct {
	path []*hclsyntax.Block
	attr *hclsyntax.Attribute
}

// attributes lists every attribute of the module's blocks, nested ones
// included, in a stable order.
func (m *Module) attributes() []attribute {
	var out []attribute
	add := func(path []*hclsyntax.Block, body *hclsyntax.Body) {
		names := make([]string, 0, len(body.Attributes))
		for n := range body.Attributes {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			out = append(out, attribute{path: path, attr: body.Attributes[n]})
		}
	}
	m.walkBlocks(func(path []*hclsyntax.Block, b *hclsyntax.Block) {
		add(append(append([]*hclsyntax.Block(nil), path...), b), b.Body)
	})
	return out
}
