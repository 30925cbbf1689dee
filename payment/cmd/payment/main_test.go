package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/localinfra"
	"github.com/mercato-dev/mercato/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const (
	secret        = "0123456789abcdef0123456789abcdef"
	webhookSecret = "webhook-secret-webhook-secret-32"
	card          = "4242424242424242"
)

// instance is one run of the service in this process.
type instance struct {
	*testkit.Instance
	base string // http://127.0.0.1:port
}

// start runs the service on a free port whose webhooks go to webhookBase
// (its own address when ""), and waits until it passes in Consul.
func start(t *testing.T, dbURL, webhookBase string, extra ...string) *instance {
	t.Helper()
	port, err := localinfra.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if webhookBase == "" {
		webhookBase = base
	}
	args := append([]string{
		"-http-addr", fmt.Sprintf("127.0.0.1:%d", port),
		"-consul-addr", testkit.ConsulAddr(t),
		"-database-url", dbURL,
		"-redis-addr", testkit.RedisAddr(t),
		"-jwt-secret", secret,
		"-webhook-secret", webhookSecret,
		"-webhook-url", webhookBase + "/api/v1/webhooks/payments/sandbox",
		"-log-level", "debug",
	}, extra...)
	in := testkit.StartInstance(t, run, testkit.ConsulAddr(t), "payment", args...)
	if id := fmt.Sprintf("payment-127.0.0.1-%d", port); in.Entry.Service.ID != id {
		t.Fatalf("passing in Consul as %s, want %s\nlogs:\n%s", in.Entry.Service.ID, id, in.Logs)
	}
	return &instance{Instance: in, base: base}
}

func (in *instance) do(t *testing.T, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	r := testkit.Call(t, method, in.base+path, token, body)
	return r.Status, r.Object(t)
}

func (in *instance) status(t *testing.T, id, token string) string {
	t.Helper()
	code, body := in.do(t, "GET", "/api/v1/payments/"+id, token, nil)
	if code != http.StatusOK {
		t.Fatalf("GET payment: %d %v", code, body)
	}
	return body["payment"].(map[string]any)["status"].(string)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tokens(t *testing.T) *auth.Tokens {
	t.Helper()
	tk, err := auth.NewTokens([]byte(secret), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func chargeBody(orderID, userID string) map[string]any {
	return map[string]any{"order_id": orderID, "user_id": userID, "amount": "12.50", "currency": "USD",
		"card": map[string]any{"number": card, "exp_month": 12, "exp_year": time.Now().Year() + 2, "cvc": "123"}}
}

// streamEvents returns the events on the stream about payment id, by type.
func streamEvents(t *testing.T, rdb *redis.Client, paymentID string) []string {
	t.Helper()
	entries, err := rdb.XRange(context.Background(), "events", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		var env events.Envelope
		if err := json.Unmarshal([]byte(e.Values["envelope"].(string)), &env); err != nil {
			t.Fatal(err)
		}
		var data struct {
			PaymentID string `json:"payment_id"`
		}
		_ = env.Decode(&data)
		if data.PaymentID == paymentID && env.Source == "payment" {
			out = append(out, env.Type)
		}
	}
	return out
}

// TestRun starts the service as the binary would and checks what the rest
// of the system relies on: it registers in Consul with its real port, takes
// a charge, delivers the sandbox's webhook to itself, publishes the saga's
// events to the Redis stream, refunds on order.cancelled, counts it all in
// /metrics, logs no card, and leaves Consul on shutdown.
func TestRun(t *testing.T) {
	rdb := testkit.Redis(t)
	in := start(t, testkit.PostgresURL(t), "")
	tk := tokens(t)
	serviceToken, _ := tk.ServiceToken("order")
	userID, orderID := uuid.NewString(), uuid.NewString()
	customer, _ := tk.Issue(auth.Identity{UserID: userID, Role: auth.RoleCustomer})

	if code, body := in.do(t, "GET", "/ready", "", nil); code != http.StatusOK {
		t.Errorf("/ready: %d %v", code, body)
	}
	code, body := in.do(t, "POST", "/internal/payments", serviceToken, chargeBody(orderID, userID))
	if code != http.StatusAccepted {
		t.Fatalf("charge: %d %v", code, body)
	}
	id := body["payment"].(map[string]any)["id"].(string)
	waitFor(t, "the payment to complete", func() bool { return in.status(t, id, customer) == "completed" })
	waitFor(t, "payment.processed on the stream", func() bool {
		return strings.Join(streamEvents(t, rdb, id), ",") == events.PaymentProcessed
	})

	// The order service cancels the order: the payment is refunded.
	cancelled, err := events.New(context.Background(), "order", events.OrderCancelled,
		map[string]string{"order_id": orderID, "user_id": userID, "reason": "changed my mind"})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(cancelled)
	if err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: "events",
		Values: []any{"id", cancelled.ID, "type", cancelled.Type, "envelope", string(raw)}}).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the refund", func() bool { return in.status(t, id, customer) == "refunded" })
	waitFor(t, "payment.refunded on the stream", func() bool {
		return strings.Join(streamEvents(t, rdb, id), ",") == events.PaymentProcessed+","+events.PaymentRefunded
	})

	metricsBody := testkit.Call(t, "GET", in.base+"/metrics", "", nil).Body
	for _, line := range []string{
		`payments_total{status="pending"} 1`, `payments_total{status="completed"} 1`, `payments_total{status="refunded"} 1`,
		`refunds_total 1`, `refunded_amount_cents_total 1250`, `sandbox_webhook_deliveries_total{result="delivered"} 1`,
		`events_consumed_total{group="payment",service="payment",type="order.cancelled"} 1`,
	} {
		if !strings.Contains(metricsBody, line) {
			t.Errorf("/metrics lacks %s", line)
		}
	}

	if out := in.Logs.String(); strings.Contains(out, card) || strings.Contains(out, serviceToken) || strings.Contains(out, webhookSecret) {
		t.Errorf("a card, token or secret in the logs:\n%s", out)
	}

	testkit.StopInstances(t, in.Instance)
	entries, _, err := in.Consul.Health().Service("payment", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(in.base, fmt.Sprintf(":%d", e.Service.Port)) {
			t.Errorf("still in Consul after shutdown: %s", e.Service.ID)
		}
	}
}

// TestRunRecoversUndeliveredWebhooks: an instance stops between a charge and
// its webhook; a new instance on the same database delivers it.
func TestRunRecoversUndeliveredWebhooks(t *testing.T) {
	dbURL := testkit.PostgresURL(t)
	tk := tokens(t)
	serviceToken, _ := tk.ServiceToken("order")

	first := start(t, dbURL, "", "-webhook-delay", "5s")
	code, body := first.do(t, "POST", "/internal/payments", serviceToken, chargeBody(uuid.NewString(), uuid.NewString()))
	if code != http.StatusAccepted {
		t.Fatalf("charge: %d %v", code, body)
	}
	id := body["payment"].(map[string]any)["id"].(string)
	testkit.StopInstances(t, first.Instance)

	second := start(t, dbURL, "")
	if s := second.status(t, id, serviceToken); s != "pending" {
		t.Fatalf("status %s before the delay ran out: the test proves nothing", s)
	}
	waitFor(t, "the payment to complete", func() bool { return second.status(t, id, serviceToken) == "completed" })
}

// TestRunRefusesBadConfig checks that a misconfigured instance stops at once
// with an error that names the setting, before serving anything.
func TestRunRefusesBadConfig(t *testing.T) {
	db := "postgres://127.0.0.1:1/none?sslmode=disable&connect_timeout=2"
	base := []string{"-http-addr", "127.0.0.1:0", "-jwt-secret", secret, "-webhook-secret", webhookSecret, "-database-url", db}
	with := func(extra ...string) []string { return append(base[:len(base):len(base)], extra...) }
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no database", []string{"-jwt-secret", secret, "-webhook-secret", webhookSecret}, "-database-url"},
		{"no webhook secret", []string{"-jwt-secret", secret, "-database-url", db}, "-webhook-secret"},
		{"short webhook secret", with("-webhook-secret", "short"), "-webhook-secret"},
		{"bad webhook url", with("-webhook-url", "ftp://x/y"), "-webhook-url"},
		{"negative delay", with("-webhook-delay", "-1s"), "-webhook-delay"},
		{"bad delay", with("-webhook-delay", "soon"), "webhook-delay"},
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
