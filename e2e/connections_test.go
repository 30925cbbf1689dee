package e2e

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/mercato-dev/mercato/shared/localinfra"
)

// TestPostgresHoldsEveryPool: the PostgreSQL of docker-compose.yml and of
// the local Kubernetes overlay accepts as many connections as the most
// pods each may run of every service open when their pools are full
// (localinfra.MaxConnections, as make run sizes its own). PostgreSQL's
// default of 100 does not: two replicas of each may open 250, and under
// load the rest are refused ("sorry, too many clients already").
func TestPostgresHoldsEveryPool(t *testing.T) {
	root, project := loadCompose(t)
	t.Run("compose", func(t *testing.T) {
		replicas := map[string]int{}
		for name := range localinfra.ServiceConnections {
			s, ok := project.Services[name]
			if !ok {
				t.Fatalf("no compose service %s", name)
			}
			replicas[name] = 1
			if s.Deploy != nil && s.Deploy.Replicas != nil {
				replicas[name] = *s.Deploy.Replicas
			}
		}
		checkMaxConnections(t, project.Services["postgres"].Command, replicas)
	})
	t.Run("kubernetes local overlay", func(t *testing.T) {
		// The overlay patches neither the services nor their autoscalers:
		// the base's maxReplicas are the most each may run, and a release
		// adds the surge of their rolling updates (deploy/terraform/check's
		// TestRDSHoldsEveryPool counts the AWS overlay's alike).
		replicas := map[string]int{}
		for name := range localinfra.ServiceConnections {
			for _, doc := range yamlDocs(t, filepath.Join(root, "deploy/k8s/base", name+".yaml")) {
				if doc.Kind == "HorizontalPodAutoscaler" && doc.Spec.ScaleTargetRef.Name == name {
					// and a rolling update's surge: 25%, rounded up
					replicas[name] = doc.Spec.MaxReplicas + (doc.Spec.MaxReplicas+3)/4
				}
			}
			if replicas[name] == 0 {
				t.Fatalf("no HorizontalPodAutoscaler for %s in deploy/k8s/base/%s.yaml", name, name)
			}
		}
		var args []string
		for _, doc := range yamlDocs(t, filepath.Join(root, "deploy/k8s/overlays/local/postgres.yaml")) {
			if doc.Kind == "StatefulSet" && doc.Metadata.Name == "postgres" {
				args = doc.Spec.Template.Spec.Containers[0].Args
			}
		}
		checkMaxConnections(t, args, replicas)
	})
}

// checkMaxConnections fails t unless the max_connections PostgreSQL's
// command line sets (PostgreSQL's 100 if none) holds replicas.
func checkMaxConnections(t *testing.T, command []string, replicas map[string]int) {
	t.Helper()
	have := 100
	for i, arg := range command {
		if v, ok := strings.CutPrefix(arg, "max_connections="); ok && i > 0 && command[i-1] == "-c" {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("postgres command %q: %v", command, err)
			}
			have = n
		}
	}
	if need := localinfra.MaxConnections(replicas); have < need {
		t.Errorf("postgres max_connections is %d (command %q); %v replicas need %d", have, command, replicas, need)
	}
}

// k8sDoc is what TestPostgresHoldsEveryPool reads of a manifest.
type k8sDoc struct {
	Kind     string
	Metadata struct{ Name string }
	Spec     struct {
		MaxReplicas    int                   `yaml:"maxReplicas"`
		ScaleTargetRef struct{ Name string } `yaml:"scaleTargetRef"`
		Template       struct {
			Spec struct {
				Containers []struct{ Args []string }
			}
		}
	}
}

// yamlDocs decodes every document of a manifest file.
func yamlDocs(t *testing.T, file string) []k8sDoc {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var docs []k8sDoc
	for dec := yaml.NewDecoder(bytes.NewReader(raw)); ; {
		var d k8sDoc
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			return docs
		} else if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		docs = append(docs, d)
	}
}
