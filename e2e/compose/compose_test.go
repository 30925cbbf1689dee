//go:build compose

// Package compose proves docker-compose.yml runs the platform: it brings the
// stack up from the images `make images` built, checks out through the
// gateway on 127.0.0.1:3000, reads the emails from Mailpit, the instances
// from Consul and the targets from Prometheus, kills one replica of every
// backend service and checks out again, then takes the stack down with its
// volumes. `make compose-test` (scripts/compose-test.sh) prepares the engine,
// stand-in images, secrets and images, then runs it:
//
//	go test -tags compose -count=1 ./e2e/compose/
package compose

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

const (
	gatewayURL    = "http://127.0.0.1:3000"
	consulURL     = "http://127.0.0.1:8500"
	prometheusURL = "http://127.0.0.1:9090"
	mailpitURL    = "http://127.0.0.1:8025"
)

// backends are the services compose runs two replicas of.
var backends = []string{"user", "product", "order", "payment", "notification"}

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

	api := &client{t: t}
	email := "compose-" + uuid.NewString()[:8] + "@example.com"
	token := api.customer(email)
	first := api.checkout(token, "4242424242424242")
	t.Logf("checkout %s confirmed", first)
	api.waitMail(email, "confirmed")

	mgmt := strings.TrimSpace(readFile(t, filepath.Join(root(t), ".local/compose/secrets/consul-management-token")))
	for _, svc := range backends {
		waitFor(t, 2*time.Minute, svc+": two passing instances in Consul", func() (bool, string) {
			n, err := passing(svc, mgmt)
			return n == 2, fmt.Sprintf("%d passing, %v", n, err)
		})
	}
	t.Logf("Consul: two passing instances of each of %s", strings.Join(backends, ", "))
	waitFor(t, 2*time.Minute, "every Prometheus target up", func() (bool, string) {
		up, all, err := targets()
		return err == nil && all == 2*len(backends)+1 && up == all, fmt.Sprintf("%d of %d up, %v", up, all, err)
	})
	t.Logf("Prometheus: all %d targets up (two instances of each backend, the gateway)", 2*len(backends)+1)

	for _, svc := range backends {
		name := "mercato-" + svc + "-1"
		if out, err := exec.Command("docker", "kill", name).CombinedOutput(); err != nil {
			t.Fatalf("docker kill %s: %v\n%s", name, err, out)
		}
	}
	t.Logf("killed mercato-{%s}-1", strings.Join(backends, ","))
	second := api.checkout(token, "4242424242424242")
	t.Logf("checkout %s confirmed with one replica of each backend killed", second)
}

// client calls the gateway.
type client struct{ t *testing.T }

func (c *client) call(method, path, token string, body any, want int, out any) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, gatewayURL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		c.t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
}

// customer registers email and returns its access token.
func (c *client) customer(email string) string {
	c.call("POST", "/api/v1/auth/register", "", map[string]string{"email": email, "password": "correct-horse",
		"first_name": "Ada", "last_name": "Lovelace"}, http.StatusCreated, nil)
	var tp struct {
		AccessToken string `json:"access_token"`
	}
	c.call("POST", "/api/v1/auth/login", "", map[string]string{"email": email, "password": "correct-horse"}, http.StatusOK, &tp)
	return tp.AccessToken
}

// checkout orders one of a product in stock with card and waits for the
// order to be confirmed; it returns the order's id.
func (c *client) checkout(token, card string) string {
	c.t.Helper()
	var list struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
		Total int `json:"total"`
	}
	c.call("GET", "/api/v1/products?in_stock=true&sort=price&page_size=50", "", nil, http.StatusOK, &list)
	if len(list.Items) == 0 {
		c.t.Fatal("no product in stock: the demo catalogue was not seeded")
	}
	item := map[string]any{"product_id": list.Items[0].ID, "quantity": 1}
	var detail struct {
		Product struct {
			Variants []struct {
				ID    string `json:"id"`
				Stock int    `json:"stock_quantity"`
			} `json:"variants"`
		} `json:"product"`
	}
	c.call("GET", "/api/v1/products/"+list.Items[0].ID, "", nil, http.StatusOK, &detail)
	for _, v := range detail.Product.Variants {
		if v.Stock > 0 {
			item["variant_id"] = v.ID
			break
		}
	}
	body := map[string]any{
		"items": []any{item},
		"shipping_address": map[string]any{"street": "1 Infinite Loop", "city": "Cupertino", "state": "CA",
			"zip_code": "95014", "country": "US"},
		"payment": map[string]any{"method": "card", "card": map[string]any{"number": card, "exp_month": 12,
			"exp_year": time.Now().Year() + 3, "cvc": "123"}},
	}
	var placed struct {
		Order struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"order"`
	}
	c.call("POST", "/api/v1/orders", token, body, http.StatusCreated, &placed)
	waitFor(c.t, 2*time.Minute, "order "+placed.Order.ID+" confirmed", func() (bool, string) {
		var got struct {
			Order struct {
				Status string `json:"status"`
			} `json:"order"`
		}
		c.call("GET", "/api/v1/orders/"+placed.Order.ID, token, nil, http.StatusOK, &got)
		return got.Order.Status == "confirmed", "status " + got.Order.Status
	})
	return placed.Order.ID
}

// waitMail waits for Mailpit to hold a message to email whose subject
// contains word, and for the welcome email.
func (c *client) waitMail(email, word string) {
	c.t.Helper()
	waitFor(c.t, 2*time.Minute, "emails to "+email+" in Mailpit", func() (bool, string) {
		var res struct {
			Messages []struct {
				Subject string `json:"Subject"`
			} `json:"messages"`
		}
		if err := getJSON(mailpitURL+"/api/v1/search?query="+"to:"+email, "", &res); err != nil {
			return false, err.Error()
		}
		var subjects []string
		confirmed := false
		for _, m := range res.Messages {
			subjects = append(subjects, m.Subject)
			confirmed = confirmed || strings.Contains(strings.ToLower(m.Subject), word)
		}
		ok := confirmed && len(res.Messages) >= 2
		if ok {
			c.t.Logf("Mailpit: %d emails to %s: %q", len(subjects), email, subjects)
		}
		return ok, fmt.Sprintf("subjects %q", subjects)
	})
}

// passing is the number of passing instances of svc in Consul.
func passing(svc, token string) (int, error) {
	var entries []json.RawMessage
	err := getJSON(consulURL+"/v1/health/service/"+svc+"?passing=1", token, &entries)
	return len(entries), err
}

// targets counts Prometheus's active targets, and those up.
func targets() (up, all int, err error) {
	var res struct {
		Data struct {
			ActiveTargets []struct {
				Health string `json:"health"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if err := getJSON(prometheusURL+"/api/v1/targets?state=active", "", &res); err != nil {
		return 0, 0, err
	}
	for _, tg := range res.Data.ActiveTargets {
		if tg.Health == "up" {
			up++
		}
	}
	return up, len(res.Data.ActiveTargets), nil
}

func getJSON(url, consulToken string, out any) error {
	req, _ := http.NewRequest("GET", url, nil)
	if consulToken != "" {
		req.Header.Set("X-Consul-Token", consulToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return json.Unmarshal(b, out)
}

// waitFor polls cond every second until it holds, failing the test with
// cond's last word after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s (%s)", what, timeout, last)
		}
		time.Sleep(time.Second)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
