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

	"github.com/mercato-dev/mercato/clients/go/mercato"
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

	email := "compose-" + uuid.NewString()[:8] + "@example.com"
	shopper := newClient(t).customer(email)
	first := shopper.checkout("4242424242424242")
	t.Logf("checkout %s confirmed", first)
	shopper.waitMail(email, "confirmed")

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
	second := shopper.checkout("4242424242424242")
	t.Logf("checkout %s confirmed with one replica of each backend killed", second)
}

// client is the generated Go client (clients/go) on the gateway.
type client struct {
	t   *testing.T
	api *mercato.ClientWithResponses
}

func newClient(t *testing.T, opts ...mercato.ClientOption) *client {
	api, err := mercato.New(gatewayURL, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return &client{t: t, api: api}
}

// must fails the test unless the call answered want; answer gives the
// status and body of an answer that came.
func (c *client) must(what string, err error, answer func() (int, []byte), want int) {
	c.t.Helper()
	if err != nil {
		c.t.Fatalf("%s: %v", what, err)
	}
	if status, b := answer(); status != want {
		c.t.Fatalf("%s: %d %s, want %d", what, status, b, want)
	}
}

// customer registers email and returns a client signed in as it.
func (c *client) customer(email string) *client {
	c.t.Helper()
	ctx := context.Background()
	reg, err := c.api.RegisterWithResponse(ctx, mercato.Registration{Email: email, Password: "correct-horse",
		FirstName: "Ada", LastName: "Lovelace"})
	c.must("register", err, func() (int, []byte) { return reg.StatusCode(), reg.Body }, http.StatusCreated)
	login, err := c.api.LoginWithResponse(ctx, mercato.Credentials{Email: email, Password: "correct-horse"})
	c.must("login", err, func() (int, []byte) { return login.StatusCode(), login.Body }, http.StatusOK)
	return newClient(c.t, mercato.WithToken(login.JSON200.AccessToken))
}

// checkout orders one of the cheapest product in stock (a variant in stock,
// when it has variants) with card and waits for the order to be
// confirmed; it returns the order's id.
func (c *client) checkout(card string) string {
	c.t.Helper()
	ctx := context.Background()
	inStock, sort, size := true, mercato.ListProductsParamsSort("price"), 50
	list, err := c.api.ListProductsWithResponse(ctx, &mercato.ListProductsParams{InStock: &inStock, Sort: &sort, PageSize: &size})
	c.must("list products", err, func() (int, []byte) { return list.StatusCode(), list.Body }, http.StatusOK)
	if len(list.JSON200.Items) == 0 {
		c.t.Fatal("no product in stock: the demo catalogue was not seeded")
	}
	detail, err := c.api.GetProductWithResponse(ctx, list.JSON200.Items[0].Id)
	c.must("get product", err, func() (int, []byte) { return detail.StatusCode(), detail.Body }, http.StatusOK)
	product := detail.JSON200.Product
	line := mercato.CheckoutLine{ProductId: product.Id, Quantity: 1}
	for _, v := range product.Variants {
		if v.StockQuantity > 0 {
			line.VariantId = &v.Id
			break
		}
	}
	placed, err := c.api.PlaceOrderWithResponse(ctx, &mercato.PlaceOrderParams{}, mercato.Checkout{
		Items:           []mercato.CheckoutLine{line},
		ShippingAddress: mercato.OrderAddressInput{Street: "1 Infinite Loop", City: "Cupertino", State: "CA", ZipCode: "95014", Country: "US"},
		Payment: mercato.PaymentInput{Method: mercato.PaymentInputMethodCard,
			Card: mercato.CardInput{Number: card, ExpMonth: 12, ExpYear: time.Now().Year() + 3, Cvc: "123"}},
	})
	c.must("place order", err, func() (int, []byte) { return placed.StatusCode(), placed.Body }, http.StatusCreated)
	id := placed.JSON201.Order.Id
	waitFor(c.t, 2*time.Minute, "order "+id+" confirmed", func() (bool, string) {
		got, err := c.api.GetOrderWithResponse(ctx, id)
		if err != nil {
			return false, err.Error()
		}
		if got.JSON200 == nil {
			return false, fmt.Sprintf("GET /orders/%s: %d %s", id, got.StatusCode(), got.Body)
		}
		return got.JSON200.Order.Status == mercato.OrderStatusConfirmed, "status " + string(got.JSON200.Order.Status)
	})
	return id
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
