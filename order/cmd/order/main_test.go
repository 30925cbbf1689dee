package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/httpkit"
	"github.com/mercato-dev/mercato/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const secret = "0123456789abcdef0123456789abcdef"

// hashKey is the order service's own key for request hashes.
const hashKey = "order-request-hash-key-of-32-bytes"

// upstreams fakes the product and payment services' internal routes as the
// contracts describe them, and records the calls.
type upstreams struct {
	mu    sync.Mutex
	calls []string // "<method> <path>"
	auth  []string // the Authorization headers seen
	// payments are the payments charged, by id, as GET answers them;
	// unavailable makes the payment service answer 503.
	payments    map[string]map[string]any
	unavailable bool
}

// settle gives the payment of orderID the status a webhook would, and
// returns its id.
func (u *upstreams) settle(orderID, status string) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	for id, p := range u.payments {
		if p["order_id"] == orderID {
			p["status"] = status
			if status == "completed" {
				p["captured_amount"] = p["amount"]
			}
			return id
		}
	}
	return ""
}

func (u *upstreams) setUnavailable(down bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.unavailable = down
}

func (u *upstreams) record(r *http.Request) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.calls = append(u.calls, r.Method+" "+r.URL.Path)
	u.auth = append(u.auth, r.Header.Get("Authorization"))
}

func (u *upstreams) seen(call string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, c := range u.calls {
		if c == call {
			return true
		}
	}
	return false
}

func health(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Path == "/health" {
		httpkit.WriteJSON(w, 200, map[string]string{"status": "ok"})
		return true
	}
	return false
}

func (u *upstreams) product(w http.ResponseWriter, r *http.Request) {
	if health(w, r) {
		return
	}
	u.record(r)
	switch {
	case r.Method == "POST" && r.URL.Path == "/internal/reservations":
		var req struct {
			OrderID string `json:"order_id"`
			Items   []struct {
				ProductID string  `json:"product_id"`
				VariantID *string `json:"variant_id"`
				Quantity  int     `json:"quantity"`
			} `json:"items"`
			TTLSeconds int `json:"ttl_seconds"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.TTLSeconds != 600 {
			httpkit.WriteError(w, httpkit.BadRequest("bad", fmt.Sprintf("%v, ttl %d", err, req.TTLSeconds)))
			return
		}
		var items []map[string]any
		for _, it := range req.Items {
			items = append(items, map[string]any{"product_id": it.ProductID, "variant_id": it.VariantID, "quantity": it.Quantity,
				"sku": "MUG-1", "name": "Mug", "unit_price": "12.50", "currency": "USD"})
		}
		httpkit.WriteJSON(w, 201, map[string]any{"reservation": map[string]any{"order_id": req.OrderID, "status": "reserved",
			"expires_at": time.Now().Add(10 * time.Minute), "items": items}})
	case r.Method == "POST" && strings.HasPrefix(r.URL.Path, "/internal/reservations/"):
		parts := strings.Split(r.URL.Path, "/")
		status := map[string]string{"commit": "committed", "release": "released"}[parts[len(parts)-1]]
		httpkit.WriteJSON(w, 200, map[string]any{"reservation": map[string]any{"order_id": parts[3], "status": status,
			"expires_at": time.Now(), "items": []any{}}})
	default:
		httpkit.WriteError(w, httpkit.NewError(404, "not_found", "no such route"))
	}
}

func (u *upstreams) payment(w http.ResponseWriter, r *http.Request) {
	if health(w, r) {
		return
	}
	u.record(r)
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.unavailable {
		httpkit.WriteError(w, httpkit.NewError(503, "unavailable", "down for the test"))
		return
	}
	if r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/api/v1/payments/") {
		if p, ok := u.payments[strings.TrimPrefix(r.URL.Path, "/api/v1/payments/")]; ok {
			httpkit.WriteJSON(w, 200, map[string]any{"payment": p})
			return
		}
		httpkit.WriteError(w, httpkit.NewError(404, "not_found", "payment not found"))
		return
	}
	var req struct {
		OrderID string `json:"order_id"`
		UserID  string `json:"user_id"`
		Amount  string `json:"amount"`
		Card    struct {
			Number string `json:"number"`
		} `json:"card"`
	}
	if r.Method != "POST" || !strings.HasSuffix(r.URL.Path, "/internal/payments") || json.NewDecoder(r.Body).Decode(&req) != nil || req.Amount != "25.00" {
		httpkit.WriteError(w, httpkit.NewError(404, "not_found", "unexpected call "+r.URL.Path+" amount "+req.Amount))
		return
	}
	p := map[string]any{"id": uuid.NewString(), "order_id": req.OrderID, "user_id": req.UserID, "amount": req.Amount,
		"captured_amount": "0.00", "currency": "USD", "status": "pending",
		"card": map[string]string{"brand": "visa", "last4": req.Card.Number[len(req.Card.Number)-4:]}}
	if u.payments == nil {
		u.payments = map[string]map[string]any{}
	}
	u.payments[p["id"].(string)] = p
	httpkit.WriteJSON(w, 202, map[string]any{"payment": p})
}

// serve starts handler as an instance of service registered in Consul.
func serve(t *testing.T, consulAddr, service string, handler http.HandlerFunc) {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	port, _ := strconv.Atoi(u.Port())
	consul, err := discovery.NewConsulClientWithToken(consulAddr, testkit.ConsulToken(t, consulAddr, ""))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := discovery.Register(t.Context(), consul, discovery.Registration{Service: service, Host: "127.0.0.1", Port: port}, log.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := reg.Deregister(); err != nil {
			t.Logf("deregister %s: %v", service, err) // Consul may be gone already
		}
	})
	// Passing before the order service looks, or it finds no instance: a
	// test's Consul may be warm from the one before, with its check not
	// run yet.
	waitFor(t, 10*time.Second, service+" passing in Consul", func() bool {
		entries, _, err := consul.Health().Service(service, "", true, nil)
		return err == nil && len(entries) == 1
	})
}

// startWithFakes starts an instance, as the binary would, on real
// PostgreSQL, Redis and Consul, with fakes of the product and payment
// services registered in Consul; extra flags follow the common ones. It
// returns the instance, the fakes and a client of its Redis.
func startWithFakes(t *testing.T, extra ...string) (*testkit.Instance, *upstreams, *redis.Client) {
	t.Helper()
	consulAddr := testkit.ConsulAddr(t)
	rdb := testkit.Redis(t)
	up := &upstreams{}
	serve(t, consulAddr, "product", up.product)
	serve(t, consulAddr, "payment", up.payment)
	args := testkit.InstanceArgs(t, consulAddr, secret, append([]string{
		"-idempotency-hash-key", hashKey,
		"-reservation-ttl", "10m",
	}, extra...)...)
	return testkit.StartInstance(t, run, consulAddr, "order", args...), up, rdb
}

// TestRun starts the service as the binary would, on a free port, and checks
// what the rest of the system relies on: it registers in Consul with its
// real port and a passing check, takes an order through the product and
// payment services it finds in Consul (with its service token), publishes
// order.created, confirms the order when payment.processed arrives on the
// stream, counts it in /metrics, and leaves Consul on shutdown.
func TestRun(t *testing.T) {
	in, up, rdb := startWithFakes(t, "-log-level", "debug")
	instance := in.Entry
	if instance.Service.Port == 0 || instance.Service.ID != fmt.Sprintf("order-127.0.0.1-%d", instance.Service.Port) {
		t.Errorf("registered as %s port %d", instance.Service.ID, instance.Service.Port)
	}
	base := in.BaseURL
	tokens, _ := auth.NewTokens([]byte(secret), time.Minute)
	userID := uuid.NewString()
	token, _ := tokens.Issue(auth.Identity{UserID: userID, Role: auth.RoleCustomer})

	call := func(method, path, body string) (int, string) {
		t.Helper()
		r := testkit.Call(t, method, base+path, token, body)
		return r.Status, r.Body
	}
	if code, body := call("GET", "/ready", ""); code != http.StatusOK {
		t.Errorf("/ready: %d %s", code, body)
	}
	product := uuid.NewString()
	checkout := fmt.Sprintf(`{"items":[{"product_id":%q,"quantity":2}],
		"shipping_address":{"street":"1 Main St","city":"Springfield","state":"IL","zip_code":"62701","country":"US"},
		"payment":{"method":"card","card":{"number":"4242424242424242","exp_month":12,"exp_year":%d,"cvc":"123"}}}`,
		product, time.Now().Year()+1)
	code, body := call("POST", "/api/v1/orders", checkout)
	if code != http.StatusCreated {
		t.Fatalf("POST /orders: %d %s\nlogs:\n%s", code, body, in.Logs)
	}
	var placed struct {
		Order struct {
			ID      string `json:"id"`
			Status  string `json:"status"`
			Total   string `json:"total_amount"`
			Payment struct {
				Status string `json:"status"`
			} `json:"payment"`
		} `json:"order"`
	}
	if err := json.Unmarshal([]byte(body), &placed); err != nil {
		t.Fatal(err)
	}
	if placed.Order.Status != "pending" || placed.Order.Total != "25.00" || placed.Order.Payment.Status != "pending" {
		t.Errorf("placed: %s", body)
	}
	if !up.seen("POST /internal/reservations") || !up.seen("POST /api/v1/internal/payments") && !up.seen("POST /internal/payments") {
		t.Errorf("upstream calls %v", up.calls)
	}
	// On its own behalf: a service token, never the customer's.
	for _, a := range up.auth {
		tok := strings.TrimPrefix(a, "Bearer ")
		if id, err := tokens.Verify(tok); err != nil || id.Role != auth.RoleService || id.UserID != "service:order" {
			t.Errorf("upstream called with %q (%+v, %v)", a, id, err)
		}
	}

	// order.created reaches the stream.
	waitFor(t, 10*time.Second, "order.created on the stream", func() bool {
		return len(streamEvents(t, rdb, events.OrderCreated, placed.Order.ID)) == 1
	})

	// payment.processed on the stream, once the payment service has the
	// capture, confirms the order and commits the reservation.
	paymentID := up.settle(placed.Order.ID, "completed")
	testkit.Publish(t, rdb, "payment", events.PaymentProcessed, map[string]string{
		"payment_id": paymentID, "order_id": placed.Order.ID, "user_id": userID, "amount": "25.00", "currency": "USD"})
	waitFor(t, 15*time.Second, "the order to be confirmed", func() bool {
		_, body := call("GET", "/api/v1/orders/"+placed.Order.ID, "")
		return strings.Contains(body, `"status":"confirmed"`)
	})
	if !up.seen("POST /internal/reservations/" + placed.Order.ID + "/commit") {
		t.Errorf("reservation not committed: %v", up.calls)
	}
	waitFor(t, 10*time.Second, "order.updated on the stream", func() bool {
		return len(streamEvents(t, rdb, events.OrderUpdated, placed.Order.ID)) == 1
	})

	_, metrics := call("GET", "/metrics", "")
	for _, want := range []string{`order_checkouts_total{result="success"} 1`, `order_transitions_total{status="confirmed"} 1`,
		`events_consumed_total{group="order",service="order",type="payment.processed"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, grep(metrics, "order_", "events_consumed"))
		}
	}
	// The monitoring series, the consumer's read with XINFO GROUPS under
	// the service's own Redis ACL user; the scrape does not count itself.
	monitoring := []string{`order_revenue_cents_total{currency="USD"} 2500`, `http_requests_in_flight{service="order"} 0`,
		`upstream_requests_total{outcome="success",upstream="product"}`, `upstream_requests_total{outcome="success",upstream="payment"}`,
		`upstream_retries_total{upstream="product"} 0`, `outbox_oldest_event_age_seconds{service="order"}`,
		`events_consumer_pending{group="order",service="order",stream="events"} 0`,
		`events_consumer_lag{group="order",service="order",stream="events"}`}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, metrics = call("GET", "/metrics", "")
		var missing []string
		for _, want := range monitoring {
			if !strings.Contains(metrics, want) {
				missing = append(missing, want)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks %v:\n%s", missing, grep(metrics, "upstream_", "events_consumer", "outbox_", "in_flight", "revenue"))
		}
	}
	// No card number or token in the logs.
	if out := in.Logs.String(); strings.Contains(out, "4242424242424242") || strings.Contains(out, token) {
		t.Errorf("secrets in the logs:\n%s", out)
	}

	testkit.StopInstances(t, in)
	entries, _, err := in.Consul.Health().Service("order", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("still in Consul after shutdown: %s", entries[0].Service.ID)
	}
}

// streamEvents returns the events of typ about orderID on the stream.
func streamEvents(t *testing.T, rdb *redis.Client, typ, orderID string) []events.Envelope {
	t.Helper()
	entries, err := rdb.XRange(context.Background(), events.DefaultStream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []events.Envelope
	for _, e := range entries {
		var env events.Envelope
		if err := json.Unmarshal([]byte(e.Values["envelope"].(string)), &env); err != nil {
			t.Fatal(err)
		}
		if env.Type == typ && env.Source == "order" && strings.Contains(string(env.Data), orderID) {
			out = append(out, env)
		}
	}
	return out
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func grep(text string, words ...string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		for _, w := range words {
			if strings.Contains(line, w) {
				out = append(out, line)
			}
		}
	}
	return strings.Join(out, "\n")
}

// TestRunRefusesBadConfig checks that a misconfigured instance stops at once
// with an error that names the setting, before serving anything.
func TestRunRefusesBadConfig(t *testing.T) {
	base := []string{"-http-addr", "127.0.0.1:0", "-jwt-secret", secret, "-idempotency-hash-key", hashKey,
		"-database-url", "postgres://127.0.0.1:1/none?sslmode=disable&connect_timeout=2"}
	with := func(extra ...string) []string { return append(base[:len(base):len(base)], extra...) }
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no database", []string{"-jwt-secret", secret}, "-database-url"},
		{"short secret", []string{"-database-url", "postgres://x/y", "-jwt-secret", "short"}, "-jwt-secret"},
		{"bad shipping fee", with("-shipping-fee", "4.999"), "-shipping-fee"},
		{"negative shipping fee", with("-shipping-fee", "-1.00"), "-shipping-fee"},
		{"reservation ttl too short", with("-reservation-ttl", "5s"), "-reservation-ttl"},
		{"retention under a day", with("-idempotency-retention", "1h"), "-idempotency-retention"},
		{"tax over 100%", with("-tax-rate-bps", "10001"), "-tax-rate-bps"},
		{"no hash key", []string{"-database-url", "postgres://x/y", "-jwt-secret", secret}, "-idempotency-hash-key"},
		{"short hash key", with("-idempotency-hash-key", "short"), "-idempotency-hash-key"},
		{"the JWT secret as hash key", with("-idempotency-hash-key", secret), "-idempotency-hash-key"},
		{"unreachable database", base, "database"},
		{"unknown flag", []string{"-no-such-flag"}, "no-such-flag"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// An unreachable database is asked again until the start-up
			// deadline, or this context, ends.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := run(ctx, tc.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one naming %q", err, tc.want)
			}
		})
	}
	if err := run(context.Background(), []string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: err = %v, want flag.ErrHelp", err)
	}
}
