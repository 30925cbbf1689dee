//go:build compose

// Package compose proves docker-compose.yml runs the platform: it brings the
// stack up from the images `make images` built, Jaeger's profile included,
// checks out through the gateway on 127.0.0.1:3000, reads the emails from
// Mailpit, the instances from Consul, the targets from Prometheus, the
// checkout's trace from Jaeger and its log lines from VictoriaLogs; checks
// out with VictoriaLogs stopped, then, with it started again and one replica
// of every backend service killed, once more; and takes the stack down with
// its volumes. The host ports are docker-compose.yml's (3000, 8500, 9090,
// 8025, 16686, 9428), or those GATEWAY_PORT, CONSUL_PORT, PROMETHEUS_PORT,
// MAILPIT_PORT, JAEGER_PORT and VLOGS_PORT say.
// `make compose-test` (scripts/compose-test.sh) prepares the engine,
// stand-in images, secrets and images, then runs it:
//
//	go test -tags compose -count=1 ./e2e/compose/
package compose

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/clients/go/mercato"
	"github.com/mercato-dev/mercato/e2e/deployed"
)

// The host ports docker-compose.yml publishes, moved by the same variables
// it reads (GATEWAY_PORT...), so the test can run beside a make run.
var (
	gatewayURL    = hostURL("GATEWAY_PORT", "3000")
	consulURL     = hostURL("CONSUL_PORT", "8500")
	prometheusURL = hostURL("PROMETHEUS_PORT", "9090")
	mailpitURL    = hostURL("MAILPIT_PORT", "8025")
	jaegerURL     = hostURL("JAEGER_PORT", "16686")
	vlogsURL      = hostURL("VLOGS_PORT", "9428")
)

func hostURL(portVar, port string) string {
	if p := os.Getenv(portVar); p != "" {
		port = p
	}
	return "http://127.0.0.1:" + port
}

// root is the repository root: docker-compose.yml's folder.
func root(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "docker-compose.yml")); err != nil {
		t.Fatalf("docker-compose.yml not found at the repository root: %v", err)
	}
	return dir
}

// compose runs docker compose on the root's file, with the profile jaeger
// and the services exporting their spans to it, and returns its output.
func compose(t *testing.T, timeout time.Duration, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", append([]string{"compose", "--project-directory", root(t), "-f", filepath.Join(root(t), "docker-compose.yml")}, args...)...)
	cmd.Env = append(os.Environ(), "COMPOSE_PROFILES=jaeger", "MERCATO_OTLP_ENDPOINT=http://jaeger:4318")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestComposePlatform(t *testing.T) {
	if out, err := exec.Command("docker", "compose", "version").CombinedOutput(); err != nil {
		t.Fatalf("docker compose is not available (make compose-test installs it): %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(root(t), ".local/compose/secrets/jwt-secret")); err != nil {
		t.Fatalf("no compose secrets (make compose-test makes them with bin/mercato-local -compose-secrets): %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := compose(t, time.Minute, "ps", "--all")
			t.Logf("docker compose ps:\n%s", out)
			out, _ = compose(t, time.Minute, "logs", "--no-color", "--tail", "40")
			t.Logf("docker compose logs (last 40 lines of each):\n%s", out)
		}
		start := time.Now()
		if out, err := compose(t, 3*time.Minute, "down", "--volumes", "--remove-orphans"); err != nil {
			t.Errorf("docker compose down -v: %v\n%s", err, out)
		}
		t.Logf("docker compose down -v: %s", time.Since(start).Round(time.Second))
	})

	start := time.Now()
	if out, err := compose(t, 8*time.Minute, "up", "--detach", "--wait", "--no-build"); err != nil {
		t.Fatalf("docker compose up --wait: %v\n%s", err, out)
	}
	t.Logf("docker compose up --wait: every container healthy in %s", time.Since(start).Round(time.Second))

	email := "compose-" + uuid.NewString()[:8] + "@example.com"
	shopper := deployed.NewClient(t, gatewayURL).Customer(email)
	firstID := "compose-checkout-" + uuid.NewString()
	began := time.Now()
	first := shopper.Checkout("4242424242424242", mercato.RequestID(firstID))
	firstTook := time.Since(began)
	t.Logf("checkout %s confirmed in %s", first, firstTook.Round(time.Millisecond))
	shopper.WaitMail(mailpitURL, email, "confirmed")

	mgmt := deployed.Secret(t, filepath.Join(root(t), ".local/compose/secrets/consul-management-token"))
	for _, svc := range deployed.Backends {
		deployed.WaitFor(t, 2*time.Minute, svc+": two passing instances in Consul", func() (bool, string) {
			n, err := deployed.Passing(consulURL, svc, mgmt)
			return n == 2, fmt.Sprintf("%d passing, %v", n, err)
		})
	}
	t.Logf("Consul: two passing instances of each of %s", strings.Join(deployed.Backends, ", "))
	deployed.WaitFor(t, 2*time.Minute, "every Prometheus target up", func() (bool, string) {
		up, all, err := deployed.Targets(prometheusURL)
		return err == nil && all == 2*len(deployed.Backends)+1 && up == all, fmt.Sprintf("%d of %d up, %v", up, all, err)
	})
	t.Logf("Prometheus: all %d targets up (two instances of each backend, the gateway)", 2*len(deployed.Backends)+1)

	traceAndLogs(t, firstID)
	withoutLogStore(t, shopper, firstTook)

	for _, svc := range deployed.Backends {
		name := "mercato-" + svc + "-1"
		if out, err := exec.Command("docker", "kill", name).CombinedOutput(); err != nil {
			t.Fatalf("docker kill %s: %v\n%s", name, err, out)
		}
	}
	t.Logf("killed mercato-{%s}-1", strings.Join(deployed.Backends, ","))
	// A killed container's address answers nothing: until Consul's check
	// has marked it critical, a call sent there waits out its timeout, and
	// a POST without an idempotency key is not retried elsewhere.
	for _, svc := range deployed.Backends {
		deployed.WaitFor(t, time.Minute, svc+": the killed instance critical in Consul", func() (bool, string) {
			n, err := deployed.Passing(consulURL, svc, mgmt)
			return n == 1, fmt.Sprintf("%d passing, %v", n, err)
		})
	}
	lastID := "compose-checkout-" + uuid.NewString()
	last := shopper.Checkout("4242424242424242", mercato.RequestID(lastID))
	t.Logf("checkout %s confirmed with one replica of each backend killed", last)
	// Lines reach VictoriaLogs again now that it runs again.
	services := deployed.WaitLogServices(t, vlogsURL, `"`+lastID+`" | unpack_json`, 4)
	t.Logf("VictoriaLogs, started again, holds the last checkout's lines: %v", services)
}

// traceAndLogs: the checkout placed under requestID is one trace in
// Jaeger, with the gateway's, order's, product's, payment's and
// notification's spans, and VictoriaLogs finds lines of at least four
// services by its trace id.
func traceAndLogs(t *testing.T, requestID string) {
	t.Helper()
	tr := deployed.CheckoutTrace(t, jaegerURL, requestID)
	t.Logf("Jaeger: the checkout's trace\n%s", deployed.RenderTrace(tr))
	// Docker's syslog driver sends each line as it is: the service's JSON
	// is the record's message, whose fields unpack_json brings out.
	services := deployed.WaitLogServices(t, vlogsURL, `"`+tr.TraceID+`" | unpack_json | trace_id:=`+tr.TraceID, 4)
	t.Logf("VictoriaLogs: lines of trace %s by service: %v", tr.TraceID, services)
}

// withoutLogStore: with VictoriaLogs stopped every container keeps
// running and a checkout is as quick as the first one (a blocked log
// driver would hold the services' writes, so their requests); its lines
// are in docker compose logs; then VictoriaLogs starts again.
func withoutLogStore(t *testing.T, shopper *deployed.Client, firstTook time.Duration) {
	t.Helper()
	if out, err := compose(t, time.Minute, "stop", "victoria-logs"); err != nil {
		t.Fatalf("docker compose stop victoria-logs: %v\n%s", err, out)
	}
	id := "compose-checkout-" + uuid.NewString()
	began := time.Now()
	order := shopper.Checkout("4242424242424242", mercato.RequestID(id))
	took := time.Since(began)
	t.Logf("VictoriaLogs stopped: checkout %s confirmed in %s (the first: %s)", order, took.Round(time.Millisecond), firstTook.Round(time.Millisecond))
	if took > 3*firstTook+2*time.Second {
		t.Errorf("with VictoriaLogs stopped a checkout took %s, the first %s: the log store slows the services", took, firstTook)
	}
	out, err := compose(t, time.Minute, "ps", "--format", "{{.Service}} {{.State}} {{.Health}}")
	if err != nil {
		t.Fatalf("docker compose ps: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) < 2 || f[1] != "running" || (len(f) > 2 && f[2] != "healthy") {
			t.Errorf("VictoriaLogs stopped: %q, want every container running and healthy", line)
		}
	}
	logs, err := compose(t, time.Minute, "logs", "--no-color", "gateway", "order")
	if err != nil || strings.Count(logs, id) < 2 {
		t.Errorf("docker compose logs gateway order: %d lines of checkout %s (%v), want its lines, VictoriaLogs or not", strings.Count(logs, id), id, err)
	}
	if out, err := compose(t, time.Minute, "start", "victoria-logs"); err != nil {
		t.Fatalf("docker compose start victoria-logs: %v\n%s", err, out)
	}
	deployed.WaitFor(t, time.Minute, "VictoriaLogs answers again", func() (bool, string) {
		_, err := deployed.LogServices(vlogsURL, "_time:1m | limit 1")
		return err == nil, fmt.Sprint(err)
	})
	lost, err := deployed.LogServices(vlogsURL, `"`+id+`"`)
	t.Logf("VictoriaLogs started again; of the checkout it missed it holds %v (%v): lines sent while it was down are lost", lost, err)
}
