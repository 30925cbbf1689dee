package k8spolicy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// services are Mercato's six programs and their ports.
var services = map[string]int{"gateway": 3000, "user": 3001, "product": 3002, "order": 3003, "payment": 3004, "notification": 3005}

// TestBaseHasWhatEveryServiceNeeds: each of the six has a Deployment of two
// replicas whose pod leaves Consul before SIGTERM, registers its pod IP,
// gives Go its memory limit (GOMEMLIMIT, in bytes: no divisor) and mounts
// its Secret by name; a Service, a CPU HorizontalPodAutoscaler and a
// PodDisruptionBudget keeping one.
func TestBaseHasWhatEveryServiceNeeds(t *testing.T) {
	objs, err := Render(filesys.MakeFsOnDisk(), filepath.Join(repoRoot, "deploy/k8s/base"))
	if err != nil {
		t.Fatal(err)
	}
	byKind := map[string]map[string]Object{}
	for _, o := range objs {
		if byKind[o.Kind] == nil {
			byKind[o.Kind] = map[string]Object{}
		}
		byKind[o.Kind][o.Name] = o
	}
	for name, port := range services {
		d, ok := byKind["Deployment"][name]
		if !ok {
			t.Errorf("no Deployment %s", name)
			continue
		}
		if r := mapAt(d.Body, "spec")["replicas"]; r != int64(2) && r != 2 && r != float64(2) {
			t.Errorf("Deployment %s: replicas %v, want 2", name, r)
		}
		pod := mapAt(d.Body, "spec", "template", "spec")
		if pod["automountServiceAccountToken"] != false {
			t.Errorf("Deployment %s mounts a service account token", name)
		}
		if pod["terminationGracePeriodSeconds"] == nil {
			t.Errorf("Deployment %s: no terminationGracePeriodSeconds", name)
		}
		c, _ := pod["containers"].([]any)[0].(map[string]any)
		pre, _ := mapAt(c, "lifecycle", "preStop", "exec")["command"].([]any)
		if !slices.Equal(pre, []any{"/usr/local/bin/service", "-leave"}) {
			t.Errorf("Deployment %s: preStop %v, want the instance's own -leave", name, pre)
		}
		if !hasPodIP(c) {
			t.Errorf("Deployment %s: MERCATO_ADVERTISE_HOST is not the pod IP (downward API)", name)
		}
		if !hasMemoryLimit(c) {
			t.Errorf("Deployment %s: GOMEMLIMIT is not the container's memory limit (downward API)", name)
		}
		if got := mapAt(c, "readinessProbe", "httpGet")["path"]; got != "/ready" {
			t.Errorf("Deployment %s: readiness on %v, want /ready", name, got)
		}
		if got := mapAt(c, "livenessProbe", "httpGet")["path"]; got != "/health" {
			t.Errorf("Deployment %s: liveness on %v, want /health", name, got)
		}
		if !mountsSecret(pod, name+"-secrets") {
			t.Errorf("Deployment %s does not mount Secret %s-secrets", name, name)
		}
		svc, ok := byKind["Service"][name]
		if ports, _ := mapAt(svc.Body, "spec")["ports"].([]any); !ok || len(ports) == 0 || !samePort(ports[0].(map[string]any)["port"], port) {
			t.Errorf("Service %s missing or not on port %d", name, port)
		}
		hpa, ok := byKind["HorizontalPodAutoscaler"][name]
		if metrics, _ := mapAt(hpa.Body, "spec")["metrics"].([]any); !ok || len(metrics) == 0 ||
			mapAt(metrics[0].(map[string]any), "resource")["name"] != "cpu" || !strings.HasPrefix(hpa.Body["apiVersion"].(string), "autoscaling/v2") {
			t.Errorf("HorizontalPodAutoscaler %s missing or not autoscaling/v2 on CPU", name)
		}
		pdb, ok := byKind["PodDisruptionBudget"][name]
		if !ok || !samePort(mapAt(pdb.Body, "spec")["minAvailable"], 1) {
			t.Errorf("PodDisruptionBudget %s missing or not minAvailable 1", name)
		}
	}
	if len(byKind["Secret"]) != 0 {
		t.Errorf("the base defines Secrets %v; it only names them", keys(byKind["Secret"]))
	}
}

func hasPodIP(c map[string]any) bool {
	env, _ := c["env"].([]any)
	for _, e := range env {
		e, _ := e.(map[string]any)
		if e["name"] == "MERCATO_ADVERTISE_HOST" && mapAt(e, "valueFrom", "fieldRef")["fieldPath"] == "status.podIP" {
			return true
		}
	}
	return false
}

func hasMemoryLimit(c map[string]any) bool {
	env, _ := c["env"].([]any)
	for _, e := range env {
		e, _ := e.(map[string]any)
		if ref := mapAt(e, "valueFrom", "resourceFieldRef"); e["name"] == "GOMEMLIMIT" && ref["resource"] == "limits.memory" && ref["divisor"] == nil {
			return true
		}
	}
	return false
}

func mountsSecret(pod map[string]any, secret string) bool {
	vols, _ := pod["volumes"].([]any)
	for _, v := range vols {
		sources, _ := mapAt(v.(map[string]any), "projected")["sources"].([]any)
		for _, s := range sources {
			if mapAt(s.(map[string]any), "secret")["name"] == secret {
				return true
			}
		}
	}
	return false
}

// samePort compares a rendered number (int64 or float64) with n.
func samePort(v any, n int) bool {
	switch v := v.(type) {
	case int:
		return v == n
	case int64:
		return v == int64(n)
	case float64:
		return v == float64(n)
	}
	return false
}

func keys(m map[string]Object) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// TestLocalImagesHaveStandIns: every image the local overlay runs, other
// than Mercato's own, is in deploy/standins/images.txt, so the test
// cluster can have it without a registry; the gateway is on NodePort 30000.
func TestLocalImagesHaveStandIns(t *testing.T) {
	objs, err := Render(filesys.MakeFsOnDisk(), localOverlayCopy(t))
	if err != nil {
		t.Fatal(err)
	}
	list, err := os.ReadFile(filepath.Join(repoRoot, "deploy/standins/images.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		pod, ok := podTemplate(o)
		if !ok {
			continue
		}
		for _, c := range pod.spec["containers"].([]any) {
			image, _ := c.(map[string]any)["image"].(string)
			if strings.HasPrefix(image, "mercato/") {
				if !strings.HasSuffix(image, ":local") {
					t.Errorf("%s runs %s; the local overlay runs the images tagged local", o, image)
				}
				continue
			}
			// An image is the first field of a line.
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(image) + `\s`).Match(list) {
				t.Errorf("%s runs %s, which deploy/standins/images.txt does not list", o, image)
			}
		}
		if o.Kind == "Service" && o.Name == "gateway" {
			port := mapAt(o.Body, "spec")["ports"].([]any)[0].(map[string]any)
			if mapAt(o.Body, "spec")["type"] != "NodePort" || !samePort(port["nodePort"], 30000) {
				t.Errorf("the gateway's Service is not on NodePort 30000: %v", o.Body["spec"])
			}
		}
	}
}

// TestGrafanaKustomizationHasEveryDashboard: deploy/grafana's kustomization
// (what the cluster's Grafana mounts) lists every generated dashboard.
func TestGrafanaKustomizationHasEveryDashboard(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy/grafana/kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		ConfigMapGenerator []struct {
			Name  string   `json:"name"`
			Files []string `json:"files"`
		} `json:"configMapGenerator"`
	}
	if err := yaml.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, g := range k.ConfigMapGenerator {
		listed = append(listed, g.Files...)
	}
	onDisk, err := filepath.Glob(filepath.Join(repoRoot, "deploy/grafana/dashboards/*.json"))
	if err != nil || len(onDisk) == 0 {
		t.Fatalf("no dashboards in deploy/grafana/dashboards (%v)", err)
	}
	for _, path := range onDisk {
		if rel := "dashboards/" + filepath.Base(path); !slices.Contains(listed, rel) {
			t.Errorf("deploy/grafana/kustomization.yaml does not list %s", rel)
		}
	}
}
