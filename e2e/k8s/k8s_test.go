//go:build k8s

// Package k8s proves deploy/k8s runs the platform on a real Kubernetes: the
// single-node cluster of package cluster (the pinned upstream release,
// started on this machine), the images `make images` built and the
// stand-ins imported into its containerd, then `kubectl apply -k
// deploy/k8s/overlays/local`. Through the gateway's NodePort a shopper checks
// out, the email reaches Mailpit, Consul lists two passing instances of each
// backend and Prometheus scrapes them all, Jaeger holds the checkout's trace
// and VictoriaLogs its lines, which the collector on the node shipped (and
// ships again after an outage of the store); one pod of every backend is
// deleted while a stream of reads runs, and none of them fails; the aws
// overlay passes a server-side dry run. The cluster is then torn down and
// the host checked to be as it was. `make k8s-test` (scripts/k8s-test.sh)
// builds and generates what it needs, then runs:
//
//	go test -tags k8s -count=1 -run TestKubernetesPlatform ./e2e/k8s/
package k8s

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/clients/go/mercato"
	"github.com/mercato-dev/mercato/e2e/deployed"
	"github.com/mercato-dev/mercato/e2e/k8s/cluster"
	"github.com/mercato-dev/mercato/shared/localinfra"
)

const (
	namespace     = "mercato"
	logsNamespace = "mercato-logs" // the log collector's (components/logs)
	gatewayPort   = 30000          // overlays/local's NodePort
	local         = "deploy/k8s/overlays/local"
	aws           = "deploy/k8s/overlays/aws"
)

func TestKubernetesPlatform(tt *testing.T) {
	t := &causes{TB: tt}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	root, err := localinfra.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	secrets := filepath.Join(root, local, "generated", "secrets")
	if _, err := os.Stat(filepath.Join(secrets, "jwt-secret")); err != nil {
		t.Fatalf("no secrets for %s (make k8s-test writes them with scripts/k8s-secrets.sh): %v", local, err)
	}

	began := time.Now()
	c, err := cluster.Start(ctx, cluster.Config{Logf: t.Logf})
	if err != nil {
		t.Fatalf("start the cluster: %v", err)
	}
	t.Cleanup(func() {
		var report string
		if t.Failed() {
			report = podLines(context.Background(), c, namespace, unwell)
			// DiskPressure or MemoryPressure here says the node evicted them.
			conditions, err := c.Kubectl(context.Background(), "get", "nodes", "-o",
				`jsonpath={range .items[*].status.conditions[?(@.status=="True")]}{.type} {end}`)
			if err != nil {
				conditions = err.Error()
			}
			report += "\nthe node's conditions: " + conditions
			out, _ := c.Kubectl(context.Background(), "-n", namespace, "get", "pods", "-o", "wide")
			t.Logf("pods:\n%s", out)
			out, _ = c.Kubectl(context.Background(), "-n", namespace, "get", "events", "--sort-by=.lastTimestamp")
			t.Logf("events:\n%s", tail(out, 40))
			out, _ = c.Kubectl(context.Background(), "-n", logsNamespace, "logs", "daemonset/vlagent", "--tail=30")
			t.Logf("the log collector's last lines:\n%s", out)
		}
		start := time.Now()
		if err := c.Stop(context.Background()); err != nil {
			t.Errorf("stop the cluster and restore the host: %v", err)
			return
		}
		t.Logf("cluster stopped and the host restored in %s", time.Since(start).Round(time.Second))
		t.repeat()
		if report != "" {
			t.Logf("when the test failed, the pods not ready or restarted:\n%s", report)
		}
	})
	t.Logf("cluster up in %s", time.Since(began).Round(time.Second))
	kubectl := func(args ...string) string {
		t.Helper()
		out, err := c.Kubectl(ctx, args...)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}

	// Every image the overlay names goes into the node; one the Docker
	// engine does not have (Grafana's: no stand-in can be made here) is
	// named, and its workload is left out of the waits.
	rendered := kubectl("kustomize", filepath.Join(root, local))
	present, missing := dockerImages(t, imagesOf(rendered))
	start := time.Now()
	if err := c.ImportDockerImages(ctx, present...); err != nil {
		t.Fatal(err)
	}
	t.Logf("imported %d images into the node in %s", len(present), time.Since(start).Round(time.Second))
	for _, image := range missing {
		t.Logf("not available here: %s (no stand-in; its pod cannot start, the platform runs without it)", image)
	}

	start = time.Now()
	kubectl("apply", "-k", filepath.Join(root, local))
	workloads := workloadsOf(t, c, ctx, missing)
	for _, w := range workloads {
		kubectl("-n", namespace, "rollout", "status", w, "--timeout=5m")
	}
	kubectl("-n", namespace, "wait", "--for=condition=complete", "job/consul-acl-init", "--timeout=5m")
	kubectl("-n", logsNamespace, "rollout", "status", "daemonset/vlagent", "--timeout=5m")
	t.Logf("apply -k %s: %d workloads rolled out in %s: %s, and %s/daemonset/vlagent", local, len(workloads),
		time.Since(start).Round(time.Second), strings.Join(workloads, ", "), logsNamespace)
	t.Logf("pods that restarted before the rollouts ended:\n%s", cmp.Or(podLines(ctx, c, namespace, restarted), "none"))

	gateway := c.NodeURL(gatewayPort)
	consul := serviceURL(t, c, ctx, "consul", 8500)
	mailpit := serviceURL(t, c, ctx, "mailpit", 8025)
	prometheus := serviceURL(t, c, ctx, "prometheus", 9090)
	jaeger := serviceURL(t, c, ctx, "jaeger", 16686)
	vlogs := serviceURL(t, c, ctx, "victoria-logs", 9428)
	token := deployed.Secret(t, filepath.Join(secrets, "consul-management-token"))

	email := "k8s-" + uuid.NewString()[:8] + "@example.com"
	shopper := deployed.NewClient(t, gateway).Customer(email)
	firstID := "k8s-checkout-" + uuid.NewString()
	first := shopper.Checkout("4242424242424242", mercato.RequestID(firstID))
	t.Logf("checkout through the gateway's NodePort (%s): order %s confirmed", gateway, first)
	shopper.WaitMail(mailpit, email, "confirmed")
	traceAndLogs(t, jaeger, vlogs, firstID)
	logStoreOutage(t, kubectl, shopper, vlogs)
	fullStrength(t, consul, token)
	deployed.WaitFor(t, 2*time.Minute, "every Prometheus target up", func() (bool, string) {
		up, all, err := deployed.Targets(prometheus)
		return err == nil && all == 2*(len(deployed.Backends)+1) && up == all, fmt.Sprintf("%d of %d up, %v", up, all, err)
	})
	t.Logf("Prometheus: all %d targets up (two pods of each backend and of the gateway)", 2*(len(deployed.Backends)+1))

	// One pod of every backend deleted while reads of each flow.
	stream := startReads(ctx, shopper)
	time.Sleep(3 * time.Second)
	var deleted []string
	for _, svc := range deployed.Backends {
		pods := strings.Fields(kubectl("-n", namespace, "get", "pods", "-l", "app.kubernetes.io/name="+svc,
			"--field-selector=status.phase=Running", "-o", "jsonpath={.items[*].metadata.name}"))
		if len(pods) != 2 {
			t.Fatalf("%s: running pods %v, want 2", svc, pods)
		}
		kubectl("-n", namespace, "delete", "pod", pods[0], "--wait=false")
		deleted = append(deleted, pods[0])
	}
	start = time.Now()
	t.Logf("deleted %s", strings.Join(deleted, ", "))
	for _, svc := range deployed.Backends {
		kubectl("-n", namespace, "rollout", "status", "deployment/"+svc, "--timeout=3m")
	}
	for _, pod := range deleted {
		kubectl("-n", namespace, "wait", "--for=delete", "pod/"+pod, "--timeout=2m")
	}
	fullStrength(t, consul, token)
	t.Logf("every Deployment back to two ready pods, two passing in Consul, in %s", time.Since(start).Round(time.Second))
	time.Sleep(3 * time.Second)
	sent, failures := stream.stop()
	if err := readsVerdict(sent, failures); err != nil {
		t.Error(err)
	}
	t.Logf("%d reads (one of each backend, every %s) during the pod deletions: %d failed", sent, readEvery, len(failures))
	second := shopper.Checkout("4242424242424242")
	t.Logf("checkout after the pod deletions: order %s confirmed", second)

	out, err := c.Kubectl(ctx, "apply", "--dry-run=server", "-k", filepath.Join(root, aws))
	if err != nil {
		t.Fatalf("apply --dry-run=server -k %s: %v", aws, err)
	}
	t.Logf("apply --dry-run=server -k %s: accepted, %d objects", aws, strings.Count(out, "(server dry run)"))
}

// traceAndLogs: the checkout placed under requestID is one trace in
// Jaeger with the gateway's, order's, product's, payment's and
// notification's spans, and VictoriaLogs holds lines of at least four
// services with its trace id, as fields: vlagent unpacked each JSON line.
func traceAndLogs(t testing.TB, jaeger, vlogs, requestID string) {
	t.Helper()
	tr := deployed.CheckoutTrace(t, jaeger, requestID)
	t.Logf("Jaeger: the checkout's trace\n%s", deployed.RenderTrace(tr))
	services := deployed.WaitLogServices(t, vlogs, "trace_id:"+tr.TraceID, 4)
	t.Logf("VictoriaLogs: lines of trace %s by service: %v", tr.TraceID, services)
}

// logStoreOutage: with VictoriaLogs scaled to nothing a checkout is
// confirmed (no service waits for the log store), and once it runs again
// the collector sends the lines it kept meanwhile. The local overlay keeps
// the store's data in its pod (emptyDir), so what it held before is gone.
func logStoreOutage(t testing.TB, kubectl func(...string) string, shopper *deployed.Client, vlogs string) {
	t.Helper()
	kubectl("-n", namespace, "scale", "statefulset/victoria-logs", "--replicas=0")
	kubectl("-n", namespace, "wait", "--for=delete", "pod/victoria-logs-0", "--timeout=2m")
	id := "k8s-checkout-" + uuid.NewString()
	began := time.Now()
	order := shopper.Checkout("4242424242424242", mercato.RequestID(id))
	t.Logf("VictoriaLogs down: checkout %s confirmed in %s", order, time.Since(began).Round(time.Millisecond))
	kubectl("-n", namespace, "scale", "statefulset/victoria-logs", "--replicas=1")
	kubectl("-n", namespace, "rollout", "status", "statefulset/victoria-logs", "--timeout=3m")
	services := deployed.WaitLogServices(t, vlogs, `request_id:"`+id+`"`, 4)
	t.Logf("VictoriaLogs back: the collector delivered the lines of the checkout it missed: %v", services)
}

// fullStrength waits for two passing instances of every backend in Consul.
func fullStrength(t testing.TB, consul, token string) {
	t.Helper()
	for _, svc := range deployed.Backends {
		deployed.WaitFor(t, 3*time.Minute, svc+": two passing instances in Consul", func() (bool, string) {
			n, err := deployed.Passing(consul, svc, token)
			return n == 2, fmt.Sprintf("%d passing, %v", n, err)
		})
	}
	t.Logf("Consul: two passing instances of each of %s", strings.Join(deployed.Backends, ", "))
}

// readEvery spaces the rounds of reads: five requests a round, so about
// 7 a second, within the gateway's rate limit for one client (600 a
// minute, a burst of 100), which would answer a denser stream with 429.
const readEvery = 700 * time.Millisecond

// reads is a stream of ReadEach rounds, every readEvery, until stop.
type reads struct {
	cancel   context.CancelFunc
	done     chan struct{}
	mu       sync.Mutex
	sent     int
	failures []string
}

func startReads(ctx context.Context, c *deployed.Client) *reads {
	ctx, cancel := context.WithCancel(ctx)
	r := &reads{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		tick := time.NewTicker(readEvery)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			failed := c.ReadEach(ctx)
			if ctx.Err() != nil {
				return // a round cut short by stop is no failure
			}
			r.mu.Lock()
			r.sent += len(deployed.Backends)
			for svc, err := range failed {
				r.failures = append(r.failures, time.Now().Format("15:04:05.000")+" "+svc+": "+err.Error())
			}
			r.mu.Unlock()
		}
	}()
	return r
}

func (r *reads) stop() (sent int, failures []string) {
	r.cancel()
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent, r.failures
}

// readsVerdict: reads were sent, and none of them failed. A round still
// unanswered when the stream stopped counts neither way, so a gateway that
// answered none would otherwise pass having been read nothing.
func readsVerdict(sent int, failures []string) error {
	if sent == 0 {
		return fmt.Errorf("no round of reads completed while pods were replaced: nothing was read")
	}
	if len(failures) > 0 {
		return fmt.Errorf("%d of %d reads failed while pods were replaced (the gateway retries an idempotent read on another instance: none may fail):\n%s",
			len(failures), sent, strings.Join(failures[:min(len(failures), 20)], "\n"))
	}
	return nil
}

// imagesOf lists the images a rendering names, once each: a container's
// "image:" line, or its first line when image is its first key (Mailpit's:
// "- image: ...").
func imagesOf(rendered string) []string {
	var images []string
	for _, line := range strings.Split(rendered, "\n") {
		// "image:" may open a list item ("- image: ..."), when it sorts
		// first among the container's fields.
		if rest, ok := strings.CutPrefix(strings.TrimPrefix(strings.TrimSpace(line), "- "), "image: "); ok {
			if image := strings.Trim(rest, `"'`); !slices.Contains(images, image) {
				images = append(images, image)
			}
		}
	}
	slices.Sort(images)
	return images
}

// dockerImages splits images into those the Docker engine has and those
// it has not.
func dockerImages(t testing.TB, images []string) (present, missing []string) {
	t.Helper()
	for _, image := range images {
		if err := exec.Command("docker", "image", "inspect", image).Run(); err != nil {
			missing = append(missing, image)
			continue
		}
		present = append(present, image)
	}
	if len(present) == 0 {
		t.Fatalf("the Docker engine has none of %v (make k8s-test builds them: scripts/k8s-test.sh)", images)
	}
	return present, missing
}

// workloadsOf lists the namespace's Deployments and StatefulSets
// (kind/name), leaving out those whose image is missing.
func workloadsOf(t testing.TB, c *cluster.Cluster, ctx context.Context, missing []string) []string {
	t.Helper()
	out, err := c.Kubectl(ctx, "-n", namespace, "get", "deployments,statefulsets", "-o",
		`jsonpath={range .items[*]}{.kind}/{.metadata.name} {.spec.template.spec.containers[*].image}{"\n"}{end}`)
	if err != nil {
		t.Fatal(err)
	}
	var workloads []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || slices.ContainsFunc(fields[1:], func(image string) bool { return slices.Contains(missing, image) }) {
			continue
		}
		workloads = append(workloads, strings.ToLower(fields[0]))
	}
	return workloads
}

// serviceURL is http://<ClusterIP>:port of a Service of the namespace:
// kube-proxy routes the host's own connections to ClusterIPs too.
func serviceURL(t testing.TB, c *cluster.Cluster, ctx context.Context, service string, port int) string {
	t.Helper()
	ip, err := c.Kubectl(ctx, "-n", namespace, "get", "service", service, "-o", "jsonpath={.spec.clusterIP}")
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("http://%s:%d", strings.TrimSpace(ip), port)
}

// causes is the test's T remembering what failed it, so that the clean-up
// can say it again as the test's last lines: CI shows the end of a failed
// run's output, and the listings of pods, events and logs that a failure
// prints, then the teardown's lines, would otherwise push it out of view.
type causes struct {
	testing.TB
	mu   sync.Mutex
	said []string
}

func (c *causes) Error(args ...any) {
	c.Helper()
	c.note(fmt.Sprint(args...))
	c.TB.Error(args...)
}

func (c *causes) Errorf(format string, args ...any) {
	c.Helper()
	c.note(fmt.Sprintf(format, args...))
	c.TB.Errorf(format, args...)
}

func (c *causes) Fatal(args ...any) {
	c.Helper()
	c.note(fmt.Sprint(args...))
	c.TB.Fatal(args...)
}

func (c *causes) Fatalf(format string, args ...any) {
	c.Helper()
	c.note(fmt.Sprintf(format, args...))
	c.TB.Fatalf(format, args...)
}

func (c *causes) note(msg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.said = append(c.said, msg)
}

// repeat logs again, last, each failure said so far.
func (c *causes) repeat() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, msg := range c.said {
		c.Logf("failure %d of %d, said above: %s", i+1, len(c.said), msg)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
