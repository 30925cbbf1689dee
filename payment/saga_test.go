package payment_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/payment"
	"github.com/mercato-dev/mercato/payment/sandbox"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// consumer runs the order.cancelled consumer of s on a stream of the test's
// own, and returns a function publishing an order's cancellation to it (the
// order service's side), which returns the envelope sent.
func (s *stack) consumer(t *testing.T) (cancel func(orderID string) events.Envelope, republish func(events.Envelope)) {
	t.Helper()
	rdb := testkit.Redis(t)
	stream := "events-" + uuid.NewString()
	h := payment.NewEventHandler(s.svc)
	c := &events.Consumer{DB: s.db, Redis: rdb, Group: payment.ServiceName, Stream: stream,
		DeadLetterStream: stream + ".dead", Types: h.EventTypes(),
		Handler: h.Handle, Block: 100 * time.Millisecond}
	run(t, c.Run)
	publish := func(e events.Envelope) {
		raw, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		// The fields the outbox relay writes.
		if err := rdb.XAdd(testCtx(t), &redis.XAddArgs{Stream: stream,
			Values: []any{"id", e.ID, "type", e.Type, "envelope", string(raw)}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	return func(orderID string) events.Envelope {
		e, err := events.New(context.Background(), "order", events.OrderCancelled,
			map[string]string{"order_id": orderID, "user_id": uuid.NewString(), "reason": "customer request"})
		if err != nil {
			t.Fatal(err)
		}
		publish(e)
		return e
	}, publish
}

// handled waits until the consumer has recorded event e in its inbox.
func (s *stack) handled(t *testing.T, e events.Envelope) {
	t.Helper()
	eventually(t, "order.cancelled "+e.ID+" in the inbox", func() bool {
		var n int
		if err := s.db.Get(&n, `SELECT count(*) FROM inbox WHERE consumer = 'payment' AND event_id = $1`, e.ID); err != nil {
			t.Fatal(err)
		}
		return n == 1
	})
}

func TestOrderCancelledRefundsACapturedPayment(t *testing.T) {
	s := newStack(t, stackOptions{dispatch: true})
	cancel, republish := s.consumer(t)
	userID := uuid.NewString()

	paid := s.charge(t, userID, "25.00", sandbox.CardSucceeds)
	id, orderID := paid["id"].(string), paid["order_id"].(string)
	s.waitStatus(t, id, payment.StatusCompleted)
	e := cancel(orderID)
	p := s.waitStatus(t, id, payment.StatusRefunded)
	s.handled(t, e)
	if p.RefundedAmount != 2500 || len(p.Refunds) != 1 || p.Refunds[0].Reason != "order cancelled" || p.Refunds[0].Amount != 2500 {
		t.Errorf("payment after the cancellation: %+v", p)
	}
	es := s.events(t, id)
	if !slices.Equal(eventTypes(es), []string{events.PaymentProcessed, events.PaymentRefunded}) {
		t.Fatalf("events %v", eventTypes(es))
	}
	checkData(t, es[1], map[string]any{"payment_id": id, "order_id": orderID, "user_id": userID,
		"amount": "25.00", "refunded_amount": "25.00", "fully_refunded": true, "currency": "USD"})

	// The event again (redelivery) and the method again (a crash between the
	// refund's commit and the inbox's): nothing more happens.
	republish(e)
	if _, err := s.svc.CancelOrderPayment(testCtx(t), orderID); err != nil {
		t.Fatal(err)
	}
	e2 := cancel(orderID) // a second cancellation event, as a retrying producer might send
	s.handled(t, e2)
	if p := s.payment(t, id); len(p.Refunds) != 1 || p.RefundedAmount != 2500 {
		t.Errorf("after repeats: %+v", p)
	}
	if es := s.events(t, id); len(es) != 2 {
		t.Errorf("events after repeats %v", eventTypes(es))
	}

	// A partially refunded payment: the rest goes back.
	part := s.charge(t, userID, "10.00", sandbox.CardSucceeds)
	s.waitStatus(t, part["id"].(string), payment.StatusCompleted)
	want(t, s.call(t, "POST", "/api/v1/payments/"+part["id"].(string)+"/refunds", s.adminToken(t), map[string]any{"amount": "4.00"}), http.StatusCreated)
	s.handled(t, cancel(part["order_id"].(string)))
	if p := s.payment(t, part["id"].(string)); p.Status != payment.StatusRefunded || p.RefundedAmount != 1000 || len(p.Refunds) != 2 || p.Refunds[1].Amount != 600 {
		t.Errorf("partially refunded then cancelled: %+v", p)
	}

	// A failed payment and an order that never got to payment: nothing.
	failed := s.charge(t, userID, "10.00", sandbox.CardDeclined)
	s.waitStatus(t, failed["id"].(string), payment.StatusFailed)
	before := s.rowCounts(t)
	s.handled(t, cancel(failed["order_id"].(string)))
	s.handled(t, cancel(uuid.NewString()))
	if p := s.payment(t, failed["id"].(string)); p.Status != payment.StatusFailed || len(p.Refunds) != 0 {
		t.Errorf("failed payment after the cancellation: %+v", p)
	}
	after := s.rowCounts(t)
	after["payments updated"] = before["payments updated"] // the failed one's cancellation is noted
	if !maps(before, after) {
		t.Errorf("cancellations with nothing to refund wrote: before %v, after %v", before, after)
	}

	var sandboxRefunded string
	if err := s.db.Get(&sandboxRefunded, `SELECT sum(refunded_amount)::text FROM sandbox_charges`); err != nil || sandboxRefunded != "35.00" {
		t.Errorf("the sandbox refunded %s (%v), want 35.00", sandboxRefunded, err)
	}
}

// TestOrderCancelledWhilePending: the order is cancelled before the
// processor confirms the charge; the capture the webhook then reports is
// refunded in the same transaction, so no money stays captured.
func TestOrderCancelledWhilePending(t *testing.T) {
	s := newStack(t, stackOptions{}) // the test delivers the webhook itself
	cancel, _ := s.consumer(t)
	userID := uuid.NewString()
	pending := s.charge(t, userID, "40.00", sandbox.CardSucceeds)
	id, orderID := pending["id"].(string), pending["order_id"].(string)

	s.handled(t, cancel(orderID))
	p := s.payment(t, id)
	if p.Status != payment.StatusPending || p.CancelRequestedAt == nil || len(p.Refunds) != 0 {
		t.Fatalf("pending payment after the cancellation: %+v", p)
	}
	if es := s.events(t, id); len(es) != 0 {
		t.Fatalf("events before the webhook: %v", eventTypes(es))
	}

	evt := payment.WebhookEvent{ID: "evt_" + uuid.NewString(), Type: payment.WebhookChargeSucceeded, ChargeID: s.chargeID(t, id), PaymentID: id}
	want(t, s.webhook(t, evt, time.Now()), http.StatusOK)
	p = s.payment(t, id)
	if p.Status != payment.StatusRefunded || p.CapturedAmount != 4000 || p.RefundedAmount != 4000 || len(p.Refunds) != 1 {
		t.Errorf("payment after the webhook: %+v", p)
	}
	es := s.events(t, id)
	if !slices.Equal(eventTypes(es), []string{events.PaymentProcessed, events.PaymentRefunded}) {
		t.Fatalf("events %v", eventTypes(es))
	}
	checkData(t, es[1], map[string]any{"payment_id": id, "order_id": orderID, "user_id": userID,
		"amount": "40.00", "refunded_amount": "40.00", "fully_refunded": true, "currency": "USD"})
	var sandboxRefunded string
	if err := s.db.Get(&sandboxRefunded, `SELECT refunded_amount::text FROM sandbox_charges WHERE id = $1`, evt.ChargeID); err != nil || sandboxRefunded != "40.00" {
		t.Errorf("the sandbox refunded %s (%v), want 40.00", sandboxRefunded, err)
	}
	for status, n := range map[string]float64{"completed": 1, "refunded": 1} {
		if got := s.metric(t, "payments_total", "status", status); got != n {
			t.Errorf("payments_total{status=%q} = %v, want %v", status, got, n)
		}
	}

	// A declined charge of a cancelled order just fails.
	declined := s.charge(t, userID, "5.00", sandbox.CardDeclined)
	s.handled(t, cancel(declined["order_id"].(string)))
	evt = payment.WebhookEvent{ID: "evt_" + uuid.NewString(), Type: payment.WebhookChargeFailed,
		ChargeID: s.chargeID(t, declined["id"].(string)), PaymentID: declined["id"].(string), FailureCode: sandbox.FailureCardDeclined}
	want(t, s.webhook(t, evt, time.Now()), http.StatusOK)
	if p := s.payment(t, declined["id"].(string)); p.Status != payment.StatusFailed || len(p.Refunds) != 0 {
		t.Errorf("declined payment of a cancelled order: %+v", p)
	}
	if got := s.metric(t, "payment_failures_total", "code", sandbox.FailureCardDeclined); got != 1 {
		t.Errorf("payment_failures_total{code=card_declined} = %v, want 1", got)
	}
}

// TestWebhookDeliveredAfterCrash: the instance that took the charge stops
// before its dispatcher delivers the webhook; another instance on the same
// database delivers it and the payment completes. Then a dispatcher dies
// holding a charge's lease: once the lease runs out, another delivers it.
func TestWebhookDeliveredAfterCrash(t *testing.T) {
	dbURL := testkit.PostgresURL(t)
	a := newStackOn(t, dbURL, stackOptions{delay: 500 * time.Millisecond})
	stopA := a.startDispatcher(t, nil)
	id := a.charge(t, uuid.NewString(), "15.00", sandbox.CardSucceeds)["id"].(string)
	stopA() // before the 500 ms are up
	a.srv.Close()

	var delivered bool
	if err := a.db.Get(&delivered, `SELECT delivered_at IS NOT NULL FROM sandbox_charges`); err != nil || delivered {
		t.Fatalf("delivered before the crash (%v): the test proves nothing", err)
	}
	// b's own charges wait 2 s before their first delivery, so the lease
	// below is in place before its dispatcher could deliver id2 by itself.
	b := newStackOn(t, dbURL, stackOptions{dispatch: true, delay: 2 * time.Second})
	p := b.waitStatus(t, id, payment.StatusCompleted)
	if p.CapturedAmount != 1500 {
		t.Errorf("payment %+v", p)
	}

	// A dispatcher took this charge (lease until 1 s from now) and died.
	id2 := b.charge(t, uuid.NewString(), "16.00", sandbox.CardSucceeds)["id"].(string)
	if _, err := b.db.Exec(`
		UPDATE sandbox_charges SET next_delivery_at = now() + interval '1 second', delivery_attempts = 1
		WHERE payment_id = $1 AND delivered_at IS NULL`, id2); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	b.waitStatus(t, id2, payment.StatusCompleted)
	if time.Since(start) < 500*time.Millisecond {
		t.Errorf("delivered %s after the lease was taken: the lease was not respected", time.Since(start))
	}
	var attempts int
	if err := b.db.Get(&attempts, `SELECT delivery_attempts FROM sandbox_charges WHERE payment_id = $1`, id2); err != nil || attempts != 2 {
		t.Errorf("delivery attempts %d (%v), want 2", attempts, err)
	}
}
