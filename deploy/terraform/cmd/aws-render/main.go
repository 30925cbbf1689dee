// Command aws-render writes the manifests a deploy applies to one
// environment on AWS: deploy/k8s/overlays/aws with the environment's values
// and the release's images, and the objects of
// deploy/terraform/aws/kubernetes (package release).
//
//	aws-render -config deploy.json -tag v1.4.0 -ca-bundle global-bundle.pem -out rendered.yaml
//	aws-render -config deploy.json -print cluster_name
//
// scripts/aws-deploy.sh runs it with the deploy configuration it read from
// SSM; the kustomization it builds stays in -dir for the run's artifacts.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mercato-dev/mercato/deploy/terraform/release"
)

func main() {
	repo := flag.String("repo", ".", "the repository's root")
	overlay := flag.String("overlay", "", "the overlay to render (default <repo>/deploy/k8s/overlays/aws)")
	configFile := flag.String("config", "", "deploy configuration (JSON of the SSM parameter)")
	tag := flag.String("tag", "", "image tag of the release: sha-<commit> or v<semver>")
	caBundle := flag.String("ca-bundle", "", "RDS CA bundle (PEM)")
	dir := flag.String("dir", "", "where to write the kustomization (default .local/aws-release/<environment>)")
	out := flag.String("out", "", "where to write the rendered manifests (default <dir>/rendered.yaml)")
	print := flag.String("print", "", "print this value of the (checked) configuration and exit")
	flag.Parse()

	var err error
	if *print != "" {
		err = printValue(*configFile, *print)
	} else {
		if *overlay == "" {
			*overlay = filepath.Join(*repo, "deploy/k8s/overlays/aws")
		}
		err = run(*repo, *overlay, *configFile, *tag, *caBundle, *dir, *out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "aws-render:", err)
		os.Exit(1)
	}
}

// printValue prints the value of key in the configuration, after
// checking the configuration is complete.
func printValue(configFile, key string) error {
	data, err := os.ReadFile(configFile) //nolint:gosec // G304: the configuration file the caller names
	if err != nil {
		return err
	}
	if _, err := release.ParseConfig(data); err != nil {
		return err
	}
	var values map[string]any
	if err := json.Unmarshal(data, &values); err != nil {
		return err
	}
	v, ok := values[key].(string)
	if !ok || v == "" {
		return fmt.Errorf("the deploy configuration has no %s", key)
	}
	fmt.Println(v)
	return nil
}

func run(repo, overlay, configFile, tag, caBundle, dir, out string) error {
	if configFile == "" || tag == "" || caBundle == "" {
		return fmt.Errorf("-config, -tag and -ca-bundle are required")
	}
	data, err := os.ReadFile(configFile) //nolint:gosec // G304: the configuration file the caller names
	if err != nil {
		return err
	}
	cfg, err := release.ParseConfig(data)
	if err != nil {
		return err
	}
	if dir == "" {
		dir = filepath.Join(repo, ".local", "aws-release", cfg.Environment)
	}
	if out == "" {
		out = filepath.Join(dir, "rendered.yaml")
	}
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			return p
		}
		return a
	}
	manifests, err := release.Render(cfg, tag, release.Options{
		Overlay:   abs(overlay),
		Templates: abs(filepath.Join(repo, "deploy/terraform/aws/kubernetes")),
		Dir:       abs(dir),
		CABundle:  caBundle,
	})
	if err != nil {
		return err
	}
	return os.WriteFile(out, manifests, 0o600) //nolint:gosec // G703: the output file the caller names
}
