// Package deployed checks a Mercato platform that runs somewhere else —
// the compose stack, a Kubernetes cluster — through its public URLs only:
// a shopper registers and checks out through the gateway with the
// generated Go client, the emails arrive in Mailpit, Consul lists the
// instances and Prometheus scrapes them. The compose and Kubernetes tests
// share it.
package deployed

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mercato-dev/mercato/clients/go/mercato"
)

// Backends are the services that run two replicas each.
var Backends = []string{"user", "product", "order", "payment", "notification"}

// Client is the generated Go client (clients/go) on a gateway.
type Client struct {
	t       testing.TB
	gateway string
	api     *mercato.ClientWithResponses
}

// NewClient is an anonymous client of the gateway at gatewayURL.
func NewClient(t testing.TB, gatewayURL string, opts ...mercato.ClientOption) *Client {
	api, err := mercato.New(gatewayURL, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return &Client{t: t, gateway: gatewayURL, api: api}
}

// must fails the test unless the call answered want; answer gives the
// status and body of an answer that came.
func (c *Client) must(what string, err error, answer func() (int, []byte), want int) {
	c.t.Helper()
	if err != nil {
		c.t.Fatalf("%s: %v", what, err)
	}
	if status, b := answer(); status != want {
		c.t.Fatalf("%s: %d %s, want %d", what, status, b, want)
	}
}

// Customer registers email and returns a client signed in as it.
func (c *Client) Customer(email string) *Client {
	c.t.Helper()
	ctx := context.Background()
	reg, err := c.api.RegisterWithResponse(ctx, mercato.Registration{Email: email, Password: "correct-horse",
		FirstName: "Ada", LastName: "Lovelace"})
	c.must("register", err, func() (int, []byte) { return reg.StatusCode(), reg.Body }, http.StatusCreated)
	login, err := c.api.LoginWithResponse(ctx, mercato.Credentials{Email: email, Password: "correct-horse"})
	c.must("login", err, func() (int, []byte) { return login.StatusCode(), login.Body }, http.StatusOK)
	return NewClient(c.t, c.gateway, mercato.WithToken(login.JSON200.AccessToken))
}

// Checkout orders one of the cheapest product in stock (a variant in stock,
// when it has variants) with card and waits for the order to be
// confirmed; it returns the order's id. edit changes the request that
// places the order (mercato.RequestID names it, say).
func (c *Client) Checkout(card string, edit ...mercato.RequestEditorFn) string {
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
	}, edit...)
	c.must("place order", err, func() (int, []byte) { return placed.StatusCode(), placed.Body }, http.StatusCreated)
	id := placed.JSON201.Order.Id
	WaitFor(c.t, 2*time.Minute, "order "+id+" confirmed", func() (bool, string) {
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

// WaitMail waits for the Mailpit at mailpitURL to hold a message to email
// whose subject contains word, and the welcome email.
func (c *Client) WaitMail(mailpitURL, email, word string) {
	c.t.Helper()
	WaitFor(c.t, 2*time.Minute, "emails to "+email+" in Mailpit", func() (bool, string) {
		var res struct {
			Messages []struct {
				Subject string `json:"Subject"`
			} `json:"messages"`
		}
		if err := GetJSON(mailpitURL+"/api/v1/search?query="+"to:"+email, "", &res); err != nil {
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

// Passing is the number of passing instances of svc in the Consul at
// consulURL, asked with an ACL token.
func Passing(consulURL, svc, token string) (int, error) {
	var entries []json.RawMessage
	err := GetJSON(consulURL+"/v1/health/service/"+svc+"?passing=1", token, &entries)
	return len(entries), err
}

// Targets counts the active targets of the Prometheus at prometheusURL,
// and those up.
func Targets(prometheusURL string) (up, all int, err error) {
	var res struct {
		Data struct {
			ActiveTargets []struct {
				Health string `json:"health"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if err := GetJSON(prometheusURL+"/api/v1/targets?state=active", "", &res); err != nil {
		return 0, 0, err
	}
	for _, tg := range res.Data.ActiveTargets {
		if tg.Health == "up" {
			up++
		}
	}
	return up, len(res.Data.ActiveTargets), nil
}

// GetJSON decodes the 200 answer of a GET of url into out, sending
// consulToken as X-Consul-Token when set.
func GetJSON(url, consulToken string, out any) error {
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

// WaitFor polls cond every second until it holds, failing the test with
// cond's last word after timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
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

// ReadEach sends one read of a signed-in customer to each backend service
// through the gateway — products, profile, orders, payments, notifications
// — and returns, by service, the error of each that did not answer 200:
// the traffic a test keeps flowing while it disrupts instances.
func (c *Client) ReadEach(ctx context.Context) map[string]error {
	size := 5
	failed := map[string]error{}
	check := func(svc string, err error, status func() (int, []byte)) {
		if err == nil {
			if code, body := status(); code != http.StatusOK {
				err = fmt.Errorf("%d %s", code, body)
			}
		}
		if err != nil {
			failed[svc] = err
		}
	}
	products, err := c.api.ListProductsWithResponse(ctx, &mercato.ListProductsParams{PageSize: &size})
	check("product", err, func() (int, []byte) { return products.StatusCode(), products.Body })
	profile, err := c.api.GetProfileWithResponse(ctx)
	check("user", err, func() (int, []byte) { return profile.StatusCode(), profile.Body })
	orders, err := c.api.ListOrdersWithResponse(ctx, &mercato.ListOrdersParams{})
	check("order", err, func() (int, []byte) { return orders.StatusCode(), orders.Body })
	payments, err := c.api.ListPaymentsWithResponse(ctx, &mercato.ListPaymentsParams{})
	check("payment", err, func() (int, []byte) { return payments.StatusCode(), payments.Body })
	notes, err := c.api.ListNotificationsWithResponse(ctx, &mercato.ListNotificationsParams{})
	check("notification", err, func() (int, []byte) { return notes.StatusCode(), notes.Body })
	return failed
}

// Secret is the content of a secret file a platform was given (a Consul
// token, say), without its trailing newline.
func Secret(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path) //nolint:gosec // G304: a test reads the secret file its platform was given
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
