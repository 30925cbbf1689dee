package check

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Roots of references that name no declaration of the module.
var builtinRoots = map[string]bool{"each": true, "count": true, "self": true, "path": true, "terraform": true}

// metaArguments of a module block, which are not the child's inputs.
var metaArguments = map[string]bool{"source": true, "version": true, "providers": true, "count": true, "for_each": true, "depends_on": true}

// References reports every reference in m to a variable, local, resource,
// data source, module or module output that is not declared (mods holds
// the called modules, by folder, to look their outputs up), and every
// variable or local that nothing uses.
func References(m *Module, mods map[string]*Module) []Finding {
	var out []Finding
	usedVars, usedLocals, usedData := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, a := range m.attributes() {
		if skipReferences(a) {
			continue
		}
		iterators := dynamicIterators(a.path)
		for _, t := range a.attr.Expr.Variables() {
			root := t.RootName()
			if builtinRoots[root] || iterators[root] {
				continue
			}
			if root == "data" && len(t) > 2 {
				usedData[referenceKey(t)] = true
			}
			if f, ok := m.resolve(t, mods, usedVars, usedLocals); !ok {
				out = append(out, f)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(m.Variables)) {
		if !usedVars[name] {
			out = append(out, Finding{"unused", m.Variables[name].DefRange(), fmt.Sprintf("variable %q is declared but never used", name)})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(m.Locals)) {
		if !usedLocals[name] {
			out = append(out, Finding{"unused", m.Locals[name].SrcRange, fmt.Sprintf("local %q is declared but never used", name)})
		}
	}
	for _, key := range slices.Sorted(maps.Keys(m.Resources)) {
		if strings.HasPrefix(key, "data.") && !usedData[key] {
			out = append(out, Finding{"unused", m.Resources[key].DefRange(), fmt.Sprintf("%s is declared but never used", key)})
		}
	}
	return out
}

// referenceKey is the Resources key of a data source reference: data.type.name.
func referenceKey(t hcl.Traversal) string {
	parts := []string{"data"}
	for _, step := range t[1:3] {
		if a, ok := step.(hcl.TraverseAttr); ok {
			parts = append(parts, a.Name)
		}
	}
	return strings.Join(parts, ".")
}

// resolve looks up what t names; ok is false, with a finding, when it is
// not declared.
func (m *Module) resolve(t hcl.Traversal, mods map[string]*Module, usedVars, usedLocals map[string]bool) (Finding, bool) {
	root := t.RootName()
	step := func(i int) string {
		if i < len(t) {
			if a, ok := t[i].(hcl.TraverseAttr); ok {
				return a.Name
			}
		}
		return ""
	}
	missing := func(format string, args ...any) (Finding, bool) {
		return Finding{"undeclared", t.SourceRange(), fmt.Sprintf(format, args...)}, false
	}
	switch root {
	case "var":
		usedVars[step(1)] = true
		if _, ok := m.Variables[step(1)]; !ok {
			return missing("variable %q is not declared in %s", step(1), m.Dir)
		}
	case "local":
		usedLocals[step(1)] = true
		if _, ok := m.Locals[step(1)]; !ok {
			return missing("local %q is not declared in %s", step(1), m.Dir)
		}
	case "module":
		call, ok := m.Calls[step(1)]
		if !ok {
			return missing("module %q is not called in %s", step(1), m.Dir)
		}
		child := mods[m.LocalSource(call)]
		if out := step(2); child != nil && out != "" {
			if _, ok := child.Outputs[out]; !ok {
				return missing("module %q (%s) has no output %q", step(1), child.Dir, out)
			}
		}
	case "data":
		key := "data." + step(1) + "." + step(2)
		if _, ok := m.Resources[key]; !ok {
			return missing("data source %s.%s is not declared in %s", step(1), step(2), m.Dir)
		}
	default:
		key := root + "." + step(1)
		if _, ok := m.Resources[key]; !ok {
			return missing("resource %s is not declared in %s", key, m.Dir)
		}
	}
	return Finding{}, true
}

// skipReferences is true for attributes whose traversals name attributes
// of the enclosing resource, not other objects (lifecycle.ignore_changes),
// a variable's type, provider references, and moved/import/removed blocks,
// which name state addresses.
func skipReferences(a attribute) bool {
	if len(a.path) > 0 {
		switch a.path[0].Type {
		case "moved", "removed", "import":
			return true
		}
	}
	top, last := a.path[0], a.path[len(a.path)-1]
	switch {
	case top.Type == "variable" && a.attr.Name == "type": // a type, not a value
		return true
	case (top.Type == "resource" || top.Type == "data") && len(a.path) == 1 && a.attr.Name == "provider",
		top.Type == "module" && a.attr.Name == "providers": // provider configurations
		return true
	}
	return last.Type == "lifecycle" && a.attr.Name == "ignore_changes"
}

// dynamicIterators are the names a dynamic block's content refers to its
// current element by: the block's label, or its iterator argument.
func dynamicIterators(path []*hclsyntax.Block) map[string]bool {
	names := map[string]bool{}
	for _, b := range path {
		if b.Type != "dynamic" || len(b.Labels) != 1 {
			continue
		}
		name := b.Labels[0]
		if it, ok := b.Body.Attributes["iterator"]; ok {
			if tr, diags := hcl.AbsTraversalForExpr(it.Expr); !diags.HasErrors() {
				name = tr.RootName()
			}
		}
		names[name] = true
	}
	return names
}

// ModuleInputs reports, for every call in m of a local module, the child's
// required variables it does not pass and the arguments it passes that
// the child does not declare.
func ModuleInputs(m *Module, mods map[string]*Module) []Finding {
	var out []Finding
	for _, name := range slices.Sorted(maps.Keys(m.Calls)) {
		call := m.Calls[name]
		child := mods[m.LocalSource(call)]
		if child == nil {
			if _, ok := call.Body.Attributes["source"]; !ok {
				out = append(out, Finding{"module-input", call.DefRange(), fmt.Sprintf("module %q has no source", name)})
			}
			continue
		}
		for _, arg := range slices.Sorted(maps.Keys(call.Body.Attributes)) {
			if metaArguments[arg] {
				continue
			}
			if _, ok := child.Variables[arg]; !ok {
				out = append(out, Finding{"module-input", call.Body.Attributes[arg].SrcRange, fmt.Sprintf("module %q passes %q, which %s does not declare", name, arg, child.Dir)})
			}
		}
		for _, v := range slices.Sorted(maps.Keys(child.Variables)) {
			_, hasDefault := child.Variables[v].Body.Attributes["default"]
			if _, passed := call.Body.Attributes[v]; !passed && !hasDefault {
				out = append(out, Finding{"module-input", call.DefRange(), fmt.Sprintf("module %q does not pass %q, which %s requires (no default)", name, v, child.Dir)})
			}
		}
	}
	return out
}
