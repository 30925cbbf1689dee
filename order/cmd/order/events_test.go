package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// TestRunRefusesForgedPaymentEvents writes payment events straight to the
// stream, as anyone who can reach Redis could, against a running instance
// (real PostgreSQL, Redis and Consul; the payment service faked behind its
// route). Each forged one changes nothing and lands in the dead-letter
// stream at its first delivery with the reason. A genuine one written while
// the payment service is down is retried past the consumer's 20 attempts,
// never dead-lettered, and confirms the order once it answers.
func TestRunRefusesForgedPaymentEvents(t *testing.T) {
	in, up, rdb := startWithFakes(t, "-event-claim-idle", "200ms")
	tokens, _ := auth.NewTokens([]byte(secret), time.Minute)
	userID := uuid.NewString()
	token, _ := tokens.Issue(auth.Identity{UserID: userID, Role: auth.RoleCustomer})
	call := func(method, path, body string) (int, string) {
		t.Helper()
		r := testkit.Call(t, method, in.BaseURL+path, token, body)
		return r.Status, r.Body
	}
	place := func() string {
		t.Helper()
		code, body := call("POST", "/api/v1/orders", fmt.Sprintf(`{"items":[{"product_id":%q,"quantity":2}],
			"shipping_address":{"street":"1 Main St","city":"Springfield","state":"IL","zip_code":"62701","country":"US"},
			"payment":{"method":"card","card":{"number":"4000000000000002","exp_month":12,"exp_year":%d,"cvc":"123"}}}`,
			uuid.NewString(), time.Now().Year()+1))
		var placed struct {
			Order struct {
				ID string `json:"id"`
			} `json:"order"`
		}
		if code != http.StatusCreated || json.Unmarshal([]byte(body), &placed) != nil {
			t.Fatalf("POST /orders: %d %s\nlogs:\n%s", code, body, in.Logs)
		}
		return placed.Order.ID
	}
	status := func(orderID string) string {
		t.Helper()
		_, body := call("GET", "/api/v1/orders/"+orderID, "")
		var got struct {
			Order struct {
				Status  string `json:"status"`
				Payment struct {
					Status string `json:"status"`
				} `json:"payment"`
			} `json:"order"`
		}
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("GET order: %s", body)
		}
		return got.Order.Status + "/" + got.Order.Payment.Status
	}
	processed := func(paymentID, orderID, amount string) map[string]string {
		return map[string]string{"payment_id": paymentID, "order_id": orderID, "user_id": userID, "amount": amount, "currency": "USD"}
	}

	// The card of the first order was declined (its payment.failed is not
	// delivered, so the order would still move); the second was captured.
	declinedOrder, paidOrder := place(), place()
	declined := up.settle(declinedOrder, "failed")
	captured := up.settle(paidOrder, "completed")
	forged := []struct {
		name   string
		event  events.Envelope
		reason string
	}{
		{"a declined payment's id claiming processed", testkit.Publish(t, rdb, "payment", events.PaymentProcessed, processed(declined, declinedOrder, "25.00")),
			"payment " + declined + " is failed, not captured"},
		{"an unknown payment id", testkit.Publish(t, rdb, "payment", events.PaymentProcessed, processed(uuid.NewString(), declinedOrder, "25.00")), "it has no payment"},
		{"an amount the payment service did not capture", testkit.Publish(t, rdb, "payment", events.PaymentProcessed, processed(captured, paidOrder, "0.01")),
			"captured 25.00 USD, not 0.01 USD"},
		{"a captured payment claiming failed", testkit.Publish(t, rdb, "payment", events.PaymentFailed, map[string]string{"payment_id": captured,
			"order_id": paidOrder, "user_id": userID, "failure_code": "card_declined"}), "is captured, not failed"},
	}
	waitFor(t, 15*time.Second, "the forged events in the dead-letter stream", func() bool {
		dead := deadLetters(t, rdb) // the package's Redis: other runs' letters may be there
		for _, f := range forged {
			if _, ok := dead[f.event.ID]; !ok {
				return false
			}
		}
		return true
	})
	dead := deadLetters(t, rdb)
	for _, f := range forged {
		d, ok := dead[f.event.ID]
		switch {
		case !ok:
			t.Errorf("%s: not dead-lettered (%v)", f.name, dead)
		case d["group"] != "order" || d["attempts"] != "1" || d["type"] != f.event.Type ||
			!strings.Contains(d["error"].(string), "not confirmed by the payment service") || !strings.Contains(d["error"].(string), f.reason):
			t.Errorf("%s: dead-letter entry %v, want one at the first attempt saying %q", f.name, d, f.reason)
		}
	}
	for _, id := range []string{declinedOrder, paidOrder} {
		if got := status(id); got != "pending/pending" {
			t.Errorf("order %s is %s after forged events, want pending/pending", id, got)
		}
		if up.seen("POST /internal/reservations/" + id + "/commit") {
			t.Errorf("reservation of %s committed by a forged event", id)
		}
	}

	// The payment service down: the genuine capture waits for it, well past
	// MaxAttempts deliveries, and is applied once it answers.
	up.setUnavailable(true)
	genuine := testkit.Publish(t, rdb, "payment", events.PaymentProcessed, processed(captured, paidOrder, "25.00"))
	waitFor(t, 30*time.Second, "the genuine event to be delivered more than 20 times", func() bool {
		// An entry the order service ignores wakes the consumer's blocking
		// read (2s), so the failed entry is reclaimed every claim-idle.
		if err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: events.DefaultStream,
			Values: []any{"id", uuid.NewString(), "type", events.UserUpdated, "envelope", "{}"}}).Err(); err != nil {
			t.Fatal(err)
		}
		p, err := rdb.XPendingExt(context.Background(), &redis.XPendingExtArgs{Stream: events.DefaultStream, Group: "order",
			Start: "-", End: "+", Count: 10}).Result()
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := deadLetters(t, rdb)[genuine.ID]; ok {
			t.Fatalf("a genuine event was dead-lettered while the payment service was down: %v", d)
		}
		// Only an entry whose handler keeps failing is delivered again.
		return slices.ContainsFunc(p, func(e redis.XPendingExt) bool { return e.RetryCount > 22 })
	})
	if got := status(paidOrder); got != "pending/pending" {
		t.Errorf("order moved while the payment service could not confirm: %s", got)
	}
	up.setUnavailable(false)
	waitFor(t, 30*time.Second, "the order to be confirmed once the payment service answers", func() bool {
		return status(paidOrder) == "confirmed/captured"
	})
	if _, ok := deadLetters(t, rdb)[genuine.ID]; ok {
		t.Error("the genuine event was dead-lettered")
	}
	if got := status(declinedOrder); got != "pending/pending" {
		t.Errorf("declined order is %s", got)
	}
}

// deadLetters returns the dead-letter stream's entries by event id.
func deadLetters(t *testing.T, rdb *redis.Client) map[string]map[string]any {
	t.Helper()
	entries, err := rdb.XRange(context.Background(), events.DefaultDeadLetterStream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for _, e := range entries {
		if id, ok := e.Values["id"].(string); ok {
			out[id] = e.Values
		}
	}
	return out
}
