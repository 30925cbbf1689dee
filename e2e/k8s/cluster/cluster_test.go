//go:build k8s

package cluster_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mercato-dev/mercato/e2e/k8s/cluster"
	"github.com/mercato-dev/mercato/shared/localinfra"
	"github.com/mercato-dev/mercato/shared/wait"
)

const (
	testImage = "mercato-k8s-test/hello:1"
	namespace = "k8s-test"
)

// TestClusterServesAndRestoresTheHost starts the cluster, runs a Deployment
// of the test's own image behind a ClusterIP and a NodePort Service, reaches
// it by name from a pod (CoreDNS, kube-proxy, the pod network) and from the
// host (NodePort), sees a deleted pod replaced, and stops the cluster, which
// must leave the host as it found it.
func TestClusterServesAndRestoresTheHost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	archive := buildTestImage(ctx, t)

	began := time.Now()
	c, err := cluster.Start(ctx, cluster.Config{Logf: t.Logf})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	stopped := false
	defer func() {
		if !stopped {
			if err := c.Stop(context.WithoutCancel(ctx)); err != nil {
				t.Errorf("stop: %v", err)
			}
		}
	}()
	t.Logf("cluster started in %.1fs", time.Since(began).Seconds())

	if err := c.ImportImages(ctx, archive); err != nil {
		t.Fatal(err)
	}
	kubectl := func(args ...string) string {
		t.Helper()
		out, err := c.Kubectl(ctx, args...)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	if _, err := c.KubectlInput(ctx, manifest, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	kubectl("-n", namespace, "rollout", "status", "deployment/hello", "--timeout=120s")

	// From a pod: the Service's name resolves through CoreDNS to its
	// ClusterIP, and requests to it reach both replicas.
	clusterIP := kubectl("-n", namespace, "get", "service", "hello", "-o", "jsonpath={.spec.clusterIP}")
	resolved := kubectl("-n", namespace, "exec", "deploy/hello", "--", "/hello", "-lookup", "hello."+namespace+".svc.cluster.local")
	if resolved != clusterIP {
		t.Fatalf("hello.%s.svc.cluster.local resolved in a pod to %q, want the ClusterIP %s", namespace, resolved, clusterIP)
	}
	pods := strings.Fields(kubectl("-n", namespace, "get", "pods", "-l", "app=hello", "-o", "jsonpath={.items[*].metadata.name}"))
	if len(pods) != 2 {
		t.Fatalf("pods of hello: %v, want 2", pods)
	}
	// kube-proxy programs a pod some time after it is ready: poll.
	waitFor(ctx, t, 30*time.Second, func() (bool, string) {
		answers := kubectl("-n", namespace, "exec", "deploy/hello", "--", "/hello", "-get", "http://hello/", "-n", "20")
		for _, pod := range pods {
			if !strings.Contains(answers, "hello from "+pod) {
				return false, fmt.Sprintf("20 requests to http://hello/ from a pod never reached %s; answers:\n%s", pod, answers)
			}
		}
		return true, ""
	})

	// From the host: the NodePort, on the node IP and on loopback.
	port, err := c.NodePort(ctx, namespace, "hello-nodeport", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, url := range []string{c.NodeURL(port) + "/", fmt.Sprintf("http://127.0.0.1:%d/", port)} {
		body := get(ctx, t, url)
		if !strings.HasPrefix(body, "hello from hello-") {
			t.Errorf("GET %s from the host: %q, want a hello pod's answer", url, body)
		}
	}

	// A deleted pod is replaced.
	kubectl("-n", namespace, "delete", "pod", pods[0], "--wait=true", "--timeout=60s")
	kubectl("-n", namespace, "rollout", "status", "deployment/hello", "--timeout=60s")
	replaced := waitFor(ctx, t, 60*time.Second, func() (bool, string) {
		now := strings.Fields(kubectl("-n", namespace, "get", "pods", "-l", "app=hello",
			"--field-selector=status.phase=Running", "-o", "jsonpath={.items[*].metadata.name}"))
		return len(now) == 2 && !strings.Contains(strings.Join(now, " "), pods[0]), strings.Join(now, " ")
	})
	t.Logf("pod %s replaced: running %s", pods[0], replaced)

	stopped = true
	stopBegan := time.Now()
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	t.Logf("cluster stopped, host state as before, in %.1fs", time.Since(stopBegan).Seconds())
}

const manifest = `apiVersion: v1
kind: Namespace
metadata:
  name: k8s-test
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
  namespace: k8s-test
spec:
  replicas: 2
  selector:
    matchLabels: {app: hello}
  template:
    metadata:
      labels: {app: hello}
    spec:
      terminationGracePeriodSeconds: 2
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        seccompProfile: {type: RuntimeDefault}
      containers:
      - name: hello
        image: ` + testImage + `
        imagePullPolicy: Never
        ports: [{containerPort: 8080}]
        readinessProbe:
          httpGet: {path: /, port: 8080}
          periodSeconds: 1
        resources:
          requests: {cpu: 10m, memory: 16Mi}
          limits: {memory: 64Mi}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
---
apiVersion: v1
kind: Service
metadata:
  name: hello
  namespace: k8s-test
spec:
  selector: {app: hello}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata:
  name: hello-nodeport
  namespace: k8s-test
spec:
  type: NodePort
  selector: {app: hello}
  ports: [{port: 80, targetPort: 8080}]
`

// buildTestImage builds testdata/hello into an image FROM scratch with
// Docker and saves it to an archive, stopping the Docker engine again if it
// had to start one, before the cluster starts.
func buildTestImage(ctx context.Context, t *testing.T) string {
	t.Helper()
	root, err := localinfra.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	build := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, "hello"), "./testdata/hello")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./testdata/hello: %v\n%s", err, out)
	}
	dockerfile := "FROM scratch\nCOPY hello /hello\nUSER 65532\nENTRYPOINT [\"/hello\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o600); err != nil {
		t.Fatal(err)
	}
	engine := filepath.Join(root, "scripts", "docker-engine.sh")
	run(ctx, t, engine, "start")
	defer run(context.WithoutCancel(ctx), t, engine, "stop")
	run(ctx, t, "docker", "build", "-q", "-t", testImage, dir)
	archive := filepath.Join(dir, "hello.tar")
	run(ctx, t, "docker", "save", "-o", archive, testImage)
	return archive
}

func run(ctx context.Context, t *testing.T, name string, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func get(ctx context.Context, t *testing.T, url string) string {
	t.Helper()
	var body string
	waitFor(ctx, t, 30*time.Second, func() (bool, string) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := (&http.Client{Timeout: 3 * time.Second}).Do(req)
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = strings.TrimSpace(string(b))
		return resp.StatusCode == http.StatusOK, resp.Status + " " + body
	})
	return body
}

// waitFor polls check until it reports true, failing after d with its last
// word.
func waitFor(ctx context.Context, t *testing.T, d time.Duration, check func() (bool, string)) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, last := check()
		if ok {
			return last
		}
		if time.Now().After(deadline) || !wait.For(ctx, 500*time.Millisecond) {
			t.Fatalf("not so after %s: %s", d, last)
		}
	}
}
