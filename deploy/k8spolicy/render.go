// Package k8spolicy renders Mercato's Kubernetes manifests (deploy/k8s) as
// `kubectl apply -k` does, with kustomize's own library (krusty), and checks
// what comes out against the rules a platform team holds manifests to
// (Check): every container probed, limited, non-root, read-only, without
// capabilities; images pinned; Secrets referenced rather than committed;
// every namespace denied by default by a NetworkPolicy. The test renders
// every overlay and fails on any violation; its fixtures prove each rule
// can fail.
package k8spolicy

import (
	"fmt"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Object is one rendered resource.
type Object struct {
	Kind      string
	Name      string
	Namespace string
	Body      map[string]any
}

// String names the object as kubectl does: Kind namespace/name.
func (o Object) String() string {
	if o.Namespace == "" {
		return o.Kind + " " + o.Name
	}
	return o.Kind + " " + o.Namespace + "/" + o.Name
}

// Render builds the kustomization in dir of fsys with kustomize's default
// options, those of `kubectl apply -k` (files only from inside a
// kustomization's own folder, no plugins).
func Render(fsys filesys.FileSystem, dir string) ([]Object, error) {
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	var objs []Object
	for _, r := range m.Resources() {
		body, err := r.Map()
		if err != nil {
			return nil, fmt.Errorf("kustomize build %s: %s: %w", dir, r.CurId(), err)
		}
		objs = append(objs, Object{Kind: r.GetKind(), Name: r.GetName(), Namespace: r.GetNamespace(), Body: body})
	}
	return objs, nil
}
