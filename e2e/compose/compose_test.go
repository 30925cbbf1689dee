//go:build compose

// Package compose proves docker-compose.yml runs the platform: it brings the
// stack up from the images `make images` built, checks out through the
// gateway on 127.0.0.1:3000, reads the emails from Mailpit, the instances
// from Consul and the targets from Prometheus, kills one replica of every
// backend service and checks out again, then takes the stack down with its
// volumes. The host ports are docker-compose.yml's (3000, 8500, 9090, 8025),
// or those GATEWAY_PORT, CONSUL_PORT, PROMETHEUS_PORT and MAILPIT_PORT say.
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

	"github.com/mercato-dev/mercato/e2e/deployed"
)

// The host ports docker-compose.yml publishes, moved by the same variables
// it reads (GATEWAY_PORT...), so the test can run beside a make run.
var (
	gatewayURL    = hostURL("GATEWAY_PORT", "3000")
	consulURL     = hostURL("CONSUL_PORT", "8500")
	prometheusURL = hostURL("PROMETHEUS_PORT", "9090")
	mailpitURL    = hostURL("MAILPIT_PORT", "8025")
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

// compose runs docker compose on the root's file and returns its output.
func compose(t *testing.T, timeout time.Duration, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", append([]string{"compose", "--project-directory", root(t), "-f", filepath.Join(root(t), "docker-compose.yml")}, args...)...)
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
	first := shopper.Checkout("4242424242424242")
	t.Logf("checkout %s confirmed", first)
	shopper.WaitMail(mailpitURL, email, "confirmed")

	mgmt := strings.TrimSpace(readFile(t, filepath.Join(root(t), ".local/compose/secrets/consul-management-token")))
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

	for _, svc := range deployed.Backends {
		name := "mercato-" + svc + "-1"
		if out, err := exec.Command("docker", "kill", name).CombinedOutput(); err != nil {
			t.Fatalf("docker kill %s: %v\n%s", name, err, out)
		}
	}
	t.Logf("killed mercato-{%s}-1", strings.Join(deployed.Backends, ","))
	second := shopper.Checkout("4242424242424242")
	t.Logf("checkout %s confirmed with one replica of each backend killed", second)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
