package payment_test

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/payment"
	"github.com/mercato-dev/mercato/payment/sandbox"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/money"
)

// hookedProvider wraps a provider with hooks run before each call. A hook
// that answers (handled) stands in for the call; one that does not lets it
// through to the wrapped provider.
type hookedProvider struct {
	payment.Provider
	charge func(context.Context, payment.ProviderCharge) (handled bool, id string, err error)
	refund func(context.Context, payment.ProviderRefund) (handled bool, id string, err error)
}

func (h *hookedProvider) Charge(ctx context.Context, c payment.ProviderCharge) (string, error) {
	if h.charge != nil {
		if handled, id, err := h.charge(ctx, c); handled {
			return id, err
		}
	}
	return h.Provider.Charge(ctx, c)
}

func (h *hookedProvider) Refund(ctx context.Context, r payment.ProviderRefund) (string, error) {
	if h.refund != nil {
		if handled, id, err := h.refund(ctx, r); handled {
			return id, err
		}
	}
	return h.Provider.Refund(ctx, r)
}

// gate holds the calls it is asked to until it is opened: each says so on
// entered, then waits.
type gate struct {
	entered chan struct{}
	open    chan struct{}
}

func newGate() *gate { return &gate{entered: make(chan struct{}, 1), open: make(chan struct{})} }

func (g *gate) hold(ctx context.Context) {
	g.entered <- struct{}{}
	select {
	case <-g.open:
	case <-ctx.Done():
	}
}

// waitEntered waits until a call is held.
func (g *gate) waitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-g.entered:
	case <-time.After(testTimeout):
		t.Fatal("the held call never reached the provider")
	}
}

// lockNowait locks the payment of orderID in a transaction of its own,
// failing at once (55P03 lock_not_available) if any other transaction holds
// the row; it returns the payment's id.
func lockNowait(t *testing.T, db *sqlx.DB, orderID string) string {
	t.Helper()
	tx, err := db.Beginx()
	if err != nil {
		t.Fatal(err)
	}
	// Only ending the transaction matters (it releases the lock); a failed
	// rollback ends it too.
	defer func() { _ = tx.Rollback() }()
	var id string
	if err := tx.Get(&id, `SELECT id FROM payments WHERE order_id = $1 FOR UPDATE NOWAIT`, orderID); err != nil {
		t.Fatalf("lock the payment of order %s: %v", orderID, err)
	}
	return id
}

// heldOpen counts the sessions of the test's database inside a transaction
// between statements, or waiting for a lock.
func heldOpen(t *testing.T, db *sqlx.DB) int {
	t.Helper()
	var n int
	if err := db.Get(&n, `
		SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()
		  AND (state LIKE 'idle in transaction%' OR wait_event_type = 'Lock')`); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSlowProviderHoldsNoLock: while the provider takes seconds over one
// charge, and then over one refund, the payment is committed and unlocked,
// the service holds no connection for it, and other charges and refunds,
// of other payments and of the same one, go through.
func TestSlowProviderHoldsNoLock(t *testing.T) {
	charges, refunds := newGate(), newGate()
	s := newStack(t, stackOptions{dispatch: true, provider: func(p payment.Provider) payment.Provider {
		return &hookedProvider{Provider: p,
			charge: func(ctx context.Context, c payment.ProviderCharge) (bool, string, error) {
				if c.Amount == 7777 {
					charges.hold(ctx)
				}
				return false, "", nil
			},
			refund: func(ctx context.Context, r payment.ProviderRefund) (bool, string, error) {
				if r.Amount == 123 {
					refunds.hold(ctx)
				}
				return false, "", nil
			}}
	}})
	userID, admin := uuid.NewString(), s.adminToken(t)
	captured := s.charge(t, userID, "30.00", sandbox.CardSucceeds)["id"].(string)
	s.waitStatus(t, captured, payment.StatusCompleted)

	// The slow charge.
	slowOrder := uuid.NewString()
	slow := make(chan response, 1)
	go func() {
		slow <- s.call(t, "POST", "/internal/payments", s.serviceToken(t), chargeBody(slowOrder, userID, "77.77", sandbox.CardSucceeds))
	}()
	charges.waitEntered(t)
	held := time.Now()
	slowID := lockNowait(t, s.db, slowOrder)
	if p := s.payment(t, slowID); p.Status != payment.StatusPending || p.Amount != 7777 {
		t.Fatalf("the slow charge's payment: %+v", p)
	}
	// Meanwhile: other orders are charged and captured, a payment is
	// refunded, another order's cancellation refunds it.
	var others []string
	for range 3 {
		others = append(others, s.charge(t, userID, "5.00", sandbox.CardSucceeds)["id"].(string))
	}
	for _, id := range others {
		s.waitStatus(t, id, payment.StatusCompleted)
	}
	want(t, s.call(t, "POST", "/api/v1/payments/"+captured+"/refunds", admin, map[string]any{"amount": "10.00"}), http.StatusCreated)
	if out, err := s.svc.CancelOrderPayment(testCtx(t), s.payment(t, others[0]).OrderID); err != nil || out.Payment.Status != payment.StatusRefunded {
		t.Fatalf("cancellation during the slow charge: %+v, %v", out, err)
	}
	// Still in flight, seconds on, and nothing of the service waits or
	// holds: no connection of its pool in use, no transaction open.
	for time.Since(held) < 2*time.Second {
		time.Sleep(100 * time.Millisecond)
	}
	select {
	case r := <-slow:
		t.Fatalf("the slow charge was answered while held: %d %s", r.status, r.raw)
	default:
	}
	eventually(t, "the service's pool to be idle and no transaction open", func() bool {
		return s.pool.Stats().InUse == 0 && heldOpen(t, s.db) == 0
	})
	lockNowait(t, s.db, slowOrder)

	close(charges.open)
	r := <-slow
	want(t, r, http.StatusAccepted)
	if r.body["payment"].(map[string]any)["id"] != slowID {
		t.Errorf("the slow charge answered %s", r.raw)
	}
	s.waitStatus(t, slowID, payment.StatusCompleted)

	// The slow refund: 1.23 of 10.00, while 8.77 more of the same payment
	// is refunded, and a cent more is refused, the 1.23 being held for it.
	target := s.charge(t, userID, "10.00", sandbox.CardSucceeds)["id"].(string)
	s.waitStatus(t, target, payment.StatusCompleted)
	targetOrder := s.payment(t, target).OrderID
	slowRefund := make(chan response, 1)
	go func() {
		slowRefund <- s.call(t, "POST", "/api/v1/payments/"+target+"/refunds", admin, map[string]any{"amount": "1.23"}, "Idempotency-Key", "slow-"+target)
	}()
	refunds.waitEntered(t)
	lockNowait(t, s.db, targetOrder)
	want(t, s.call(t, "POST", "/api/v1/payments/"+target+"/refunds", admin, map[string]any{"amount": "8.77"}), http.StatusCreated)
	if r := want(t, s.call(t, "POST", "/api/v1/payments/"+target+"/refunds", admin, map[string]any{"amount": "0.01"}), http.StatusConflict); errorCode(r) != "refund_exceeds_captured" {
		t.Errorf("a refund beyond the held one: %s", r.raw)
	}
	p := s.payment(t, target)
	if len(p.Refunds) != 2 || p.Refunds[0].Status != payment.RefundPending || p.Refunds[0].Amount != 123 ||
		p.RefundedAmount != 877 || p.Status != payment.StatusPartiallyRefunded {
		t.Errorf("payment with a refund in flight: %+v", p)
	}
	eventually(t, "the service's pool to be idle and no transaction open", func() bool {
		return s.pool.Stats().InUse == 0 && heldOpen(t, s.db) == 0
	})
	close(refunds.open)
	r = want(t, <-slowRefund, http.StatusCreated)
	if pay := r.body["payment"].(map[string]any); pay["status"] != "refunded" || pay["refunded_amount"] != "10.00" {
		t.Errorf("after the slow refund: %s", r.raw)
	}
	if es := s.events(t, target); !slices.Equal(eventTypes(es), []string{events.PaymentProcessed, events.PaymentRefunded, events.PaymentRefunded}) {
		t.Errorf("events %v", eventTypes(es))
	}
	var sandboxRefunded string
	if err := s.db.Get(&sandboxRefunded, `SELECT sum(refunded_amount)::text FROM sandbox_charges`); err != nil || sandboxRefunded != "25.00" {
		t.Errorf("the sandbox refunded %s (%v), want 25.00", sandboxRefunded, err)
	}
}

// errStopped stands for a process that stops after committing its attempt:
// the provider's answer, if there is one, is never recorded.
var errStopped = errors.New("the process stopped before recording the provider's answer")

// stopping is a provider whose calls for the amounts before picks stop
// before the provider has them, and those after picks once it has made them.
func stopping(before, after func(money.Amount) bool) func(payment.Provider) payment.Provider {
	return func(p payment.Provider) payment.Provider {
		return &hookedProvider{Provider: p,
			charge: stop(before, after, func(c payment.ProviderCharge) money.Amount { return c.Amount }, p.Charge),
			refund: stop(before, after, func(r payment.ProviderRefund) money.Amount { return r.Amount }, p.Refund)}
	}
}

// stop is the hook of stopping for one kind of call.
func stop[C any](before, after func(money.Amount) bool, amount func(C) money.Amount,
	call func(context.Context, C) (string, error)) func(context.Context, C) (bool, string, error) {
	return func(ctx context.Context, c C) (bool, string, error) {
		switch {
		case before(amount(c)):
			return true, "", errStopped
		case after(amount(c)):
			_, err := call(ctx, c)
			return true, "", errors.Join(errStopped, err)
		}
		return false, "", nil
	}
}

// amounts picks the amounts given, in cents.
func amounts(cents ...money.Amount) func(money.Amount) bool {
	return func(a money.Amount) bool { return slices.Contains(cents, a) }
}

// chargeRecorded returns the charge id stored for payment id, "" if none.
func (s *stack) chargeRecorded(t *testing.T, id string) string {
	t.Helper()
	var c sql.NullString
	if err := s.db.Get(&c, `SELECT provider_transaction_id FROM payments WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	return c.String
}

// sandboxCharges counts the sandbox's charges of an order.
func (s *stack) sandboxCharges(t *testing.T, orderID string) int {
	t.Helper()
	var n int
	if err := s.db.Get(&n, `SELECT count(*) FROM sandbox_charges WHERE idempotency_key = $1`, orderID); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRecoveryFinishesAbandonedAttempts: attempts committed without their
// outcome, as a process leaves them that stops right after the commit, or
// right after the provider's answer, are settled by Recovery: a charge the
// provider never took fails (payment.failed), one it took gets its charge id
// and completes through the webhook, and refunds are made once.
//
// The webhooks come 8 s after their charge, and Recovery runs from the
// stops on: a webhook finds its payment by id, and would otherwise settle
// the charge whose answer was lost before Recovery's turn (as it does when
// no Recovery runs).
func TestRecoveryFinishesAbandonedAttempts(t *testing.T) {
	s := newStack(t, stackOptions{dispatch: true, delay: 8 * time.Second, providerTimeout: 300 * time.Millisecond,
		provider: stopping(amounts(1111, 333), amounts(2222, 444))})
	userID, token, admin := uuid.NewString(), s.serviceToken(t), s.adminToken(t)

	neverTaken, answerLost := uuid.NewString(), uuid.NewString()
	for order, amount := range map[string]string{neverTaken: "11.11", answerLost: "22.22"} {
		r := want(t, s.call(t, "POST", "/internal/payments", token, chargeBody(order, userID, amount, sandbox.CardSucceeds)), http.StatusBadGateway)
		if errorCode(r) != "payment_provider_error" {
			t.Errorf("stopped charge: %s", r.raw)
		}
	}
	// What the stopped charges left: payments awaiting their charge,
	// nothing reported.
	var ids []string
	for _, order := range []string{neverTaken, answerLost} {
		p, err := s.svc.PaymentByOrder(testCtx(t), "", order)
		if err != nil || p.Status != payment.StatusPending || s.chargeRecorded(t, p.ID) != "" || len(s.events(t, p.ID)) != 0 {
			t.Fatalf("payment of order %s after the stop: %+v, %v", order, p, err)
		}
		ids = append(ids, p.ID)
	}
	if s.sandboxCharges(t, neverTaken) != 0 || s.sandboxCharges(t, answerLost) != 1 {
		t.Fatal("the sandbox's charges are not what the stops should have left")
	}

	// Recovery, as any instance runs it, takes attempts older than 1 s.
	run(t, (&payment.Recovery{Repo: s.repo, Provider: s.sandbox, After: time.Second, ProviderTimeout: 300 * time.Millisecond,
		Interval: 50 * time.Millisecond, Metrics: s.metrics}).Run)
	eventually(t, "Recovery to record the charge whose answer was lost", func() bool { return s.chargeRecorded(t, ids[1]) != "" })
	if p := s.payment(t, ids[1]); p.Status != payment.StatusPending {
		t.Fatalf("the charge whose answer was lost was settled before Recovery recorded it (its webhook came first): %+v", p)
	}

	captured := s.charge(t, userID, "30.00", sandbox.CardSucceeds)["id"].(string)
	s.waitStatus(t, captured, payment.StatusCompleted)
	for _, amount := range []string{"3.33", "4.44"} {
		want(t, s.call(t, "POST", "/api/v1/payments/"+captured+"/refunds", admin, map[string]any{"amount": amount}), http.StatusBadGateway)
	}
	// What the stopped refunds left: refunds pending (Recovery's turn
	// comes 1 s after them).
	p := s.payment(t, captured)
	if len(p.Refunds) != 2 || p.Refunds[0].Status != payment.RefundPending || p.Refunds[1].Status != payment.RefundPending ||
		p.RefundedAmount != 0 || p.Refundable() != 3000-777 {
		t.Fatalf("payment after the stopped refunds: %+v", p)
	}

	failed := s.waitStatus(t, ids[0], payment.StatusFailed)
	if failed.FailureCode != payment.FailureProcessingError || failed.ProcessedAt == nil {
		t.Errorf("the charge the provider never took: %+v", failed)
	}
	es := s.events(t, ids[0])
	if !slices.Equal(eventTypes(es), []string{events.PaymentFailed}) {
		t.Fatalf("events %v", eventTypes(es))
	}
	checkData(t, es[0], map[string]any{"payment_id": ids[0], "order_id": neverTaken, "user_id": userID, "failure_code": payment.FailureProcessingError})

	completed := s.waitStatus(t, ids[1], payment.StatusCompleted)
	if completed.CapturedAmount != 2222 || s.sandboxCharges(t, answerLost) != 1 || completed.ChargeID == "" {
		t.Errorf("the charge whose answer was lost: %+v", completed)
	}
	if es := s.events(t, ids[1]); !slices.Equal(eventTypes(es), []string{events.PaymentProcessed}) {
		t.Errorf("events %v", eventTypes(es))
	}

	eventually(t, "the stopped refunds to complete", func() bool {
		p = s.payment(t, captured)
		return p.RefundedAmount == 777
	})
	for _, rf := range p.Refunds {
		if rf.Status != payment.RefundCompleted || rf.ProviderRefundID == "" || rf.ProcessedAt == nil {
			t.Errorf("refund after recovery: %+v", rf)
		}
	}
	if p.Status != payment.StatusPartiallyRefunded || p.Refundable() != 3000-777 {
		t.Errorf("payment after recovery: %+v", p)
	}
	if es := s.events(t, captured); !slices.Equal(eventTypes(es), []string{events.PaymentProcessed, events.PaymentRefunded, events.PaymentRefunded}) {
		t.Errorf("events %v", eventTypes(es))
	}
	var sandboxRefunded string
	if err := s.db.Get(&sandboxRefunded, `SELECT refunded_amount::text FROM sandbox_charges WHERE id = $1`, s.chargeID(t, captured)); err != nil || sandboxRefunded != "7.77" {
		t.Errorf("the sandbox refunded %s (%v), want 7.77: each refund once", sandboxRefunded, err)
	}
	if got := s.metric(t, "refunds_total"); got != 2 {
		t.Errorf("refunds_total = %v, want 2", got)
	}
	if got := s.metric(t, "payments_total", "status", payment.StatusFailed); got != 1 {
		t.Errorf("payments_total{failed} = %v, want 1", got)
	}
	if got := s.metric(t, "payment_failures_total", "code", payment.FailureProcessingError); got != 1 {
		t.Errorf("payment_failures_total{code=processing_error} = %v, want 1", got)
	}
}

// TestNextRequestFinishesAnAttempt: the order's next charge request, and a
// refund's retry under its key, make the call the first one stopped before,
// without waiting for Recovery, and the provider moves the money once.
func TestNextRequestFinishesAnAttempt(t *testing.T) {
	// While lost holds, calls are made and their answers lost.
	var lost atomic.Bool
	lost.Store(true)
	s := newStack(t, stackOptions{dispatch: true, provider: stopping(amounts(),
		func(money.Amount) bool { return lost.Load() })})
	orderID, userID := uuid.NewString(), uuid.NewString()
	body := chargeBody(orderID, userID, "12.00", sandbox.CardSucceeds)
	want(t, s.call(t, "POST", "/internal/payments", s.serviceToken(t), body), http.StatusBadGateway)
	lost.Store(false)
	r := want(t, s.call(t, "POST", "/internal/payments", s.serviceToken(t), body), http.StatusOK)
	id := r.body["payment"].(map[string]any)["id"].(string)
	if s.chargeRecorded(t, id) == "" || s.sandboxCharges(t, orderID) != 1 {
		t.Errorf("after the retry: charge %q, %d sandbox charges", s.chargeRecorded(t, id), s.sandboxCharges(t, orderID))
	}
	s.waitStatus(t, id, payment.StatusCompleted)

	lost.Store(true)
	path, admin := "/api/v1/payments/"+id+"/refunds", s.adminToken(t)
	refund := map[string]any{"amount": "2.00", "reason": "scratched"}
	want(t, s.call(t, "POST", path, admin, refund, "Idempotency-Key", "retry-"+id), http.StatusBadGateway)
	lost.Store(false)
	r = want(t, s.call(t, "POST", path, admin, refund, "Idempotency-Key", "retry-"+id), http.StatusCreated)
	if r.body["refund"].(map[string]any)["status"] != payment.RefundCompleted || r.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("the retried refund: %s", r.raw)
	}
	// Once completed, the key's answer is replayed.
	r = want(t, s.call(t, "POST", path, admin, refund, "Idempotency-Key", "retry-"+id), http.StatusCreated)
	if r.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("the refund's replay: %v %s", r.header, r.raw)
	}
	var sandboxRefunded string
	if err := s.db.Get(&sandboxRefunded, `SELECT refunded_amount::text FROM sandbox_charges WHERE idempotency_key = $1`, orderID); err != nil || sandboxRefunded != "2.00" {
		t.Errorf("the sandbox refunded %s (%v), want 2.00", sandboxRefunded, err)
	}
	if p := s.payment(t, id); p.RefundedAmount != 200 || len(p.Refunds) != 1 {
		t.Errorf("payment %+v", p)
	}
}

// TestRecoveryWithoutLookup: a provider that cannot be asked about a charge
// gets the payment failed, as Recovery documents.
func TestRecoveryWithoutLookup(t *testing.T) {
	s := newStack(t, stackOptions{providerTimeout: 100 * time.Millisecond, provider: stopping(amounts(900), amounts())})
	orderID := uuid.NewString()
	want(t, s.call(t, "POST", "/internal/payments", s.serviceToken(t), chargeBody(orderID, uuid.NewString(), "9.00", sandbox.CardSucceeds)), http.StatusBadGateway)
	p, err := s.svc.PaymentByOrder(testCtx(t), "", orderID)
	if err != nil {
		t.Fatal(err)
	}
	noLookup := &hookedProvider{Provider: s.sandbox} // Provider's methods only: no FindCharge
	run(t, (&payment.Recovery{Repo: s.repo, Provider: noLookup, After: 200 * time.Millisecond, ProviderTimeout: 100 * time.Millisecond,
		Interval: 20 * time.Millisecond}).Run)
	if failed := s.waitStatus(t, p.ID, payment.StatusFailed); failed.FailureCode != payment.FailureProcessingError {
		t.Errorf("payment %+v", failed)
	}
	if err := (&payment.Recovery{Repo: s.repo, Provider: s.sandbox, After: time.Second, ProviderTimeout: time.Second}).Run(testCtx(t)); err == nil {
		t.Error("Recovery ran with After not above ProviderTimeout")
	}
}

// TestStaleWebhookAnswer: a stale webhook is told the tolerance the service
// is configured with.
func TestStaleWebhookAnswer(t *testing.T) {
	s := newStack(t, stackOptions{webhookTolerance: time.Minute})
	id := s.charge(t, uuid.NewString(), "3.00", sandbox.CardSucceeds)["id"].(string)
	evt := payment.WebhookEvent{ID: "evt_" + uuid.NewString(), Type: payment.WebhookChargeSucceeded, ChargeID: s.chargeID(t, id), PaymentID: id}
	r := want(t, s.webhook(t, evt, time.Now().Add(-2*time.Minute)), http.StatusUnauthorized)
	if msg, _ := r.body["error"].(map[string]any)["message"].(string); errorCode(r) != "stale_webhook" || msg != "the webhook timestamp is more than 1m0s away from now" {
		t.Errorf("stale webhook: %s", r.raw)
	}
	want(t, s.webhook(t, evt, time.Now().Add(-50*time.Second)), http.StatusOK)
}

// TestLateWebhookOfAFailedCharge: Recovery failed a payment whose provider
// cannot be asked, though the provider had taken the charge (its answer was
// lost). The charge's webhook, coming late, must not be acknowledged as if
// nothing were wrong: it is refused (404), as Recovery documents, so the
// provider keeps reporting a capture nobody holds, and the failed payment is
// left as it was.
func TestLateWebhookOfAFailedCharge(t *testing.T) {
	s := newStack(t, stackOptions{providerTimeout: 100 * time.Millisecond, provider: stopping(amounts(), amounts(950))})
	orderID := uuid.NewString()
	want(t, s.call(t, "POST", "/internal/payments", s.serviceToken(t), chargeBody(orderID, uuid.NewString(), "9.50", sandbox.CardSucceeds)), http.StatusBadGateway)
	p, err := s.svc.PaymentByOrder(testCtx(t), "", orderID)
	if err != nil {
		t.Fatal(err)
	}
	noLookup := &hookedProvider{Provider: s.sandbox} // Provider's methods only: no FindCharge
	stop := run(t, (&payment.Recovery{Repo: s.repo, Provider: noLookup, After: 200 * time.Millisecond, ProviderTimeout: 100 * time.Millisecond,
		Interval: 20 * time.Millisecond}).Run)
	s.waitStatus(t, p.ID, payment.StatusFailed)
	stop()

	var chargeID, eventID string
	if err := s.db.QueryRow(`SELECT id, webhook_event_id FROM sandbox_charges WHERE idempotency_key = $1`, orderID).Scan(&chargeID, &eventID); err != nil {
		t.Fatal(err)
	}
	r := s.webhook(t, payment.WebhookEvent{ID: eventID, Type: payment.WebhookChargeSucceeded, ChargeID: chargeID, PaymentID: p.ID}, time.Now())
	if r.status != http.StatusNotFound {
		t.Errorf("the late webhook of a capture whose payment failed: %d %s, want 404", r.status, r.raw)
	}
	if got := s.chargeRecorded(t, p.ID); got != "" {
		t.Errorf("the failed payment took charge %s", got)
	}
	if after := s.payment(t, p.ID); after.Status != payment.StatusFailed || after.FailureCode != payment.FailureProcessingError {
		t.Errorf("payment after the late webhook: %+v", after)
	}
}

// TestWebhookNamingAnotherPaymentsCharge: a signed webhook whose payment_id
// names a payment still awaiting its charge, and whose charge_id is the
// charge of another payment, is no event about that payment: it is refused
// as one naming a charge the payment does not have (404), not answered 500
// by the charge id's uniqueness, and neither payment changes.
func TestWebhookNamingAnotherPaymentsCharge(t *testing.T) {
	s := newStack(t, stackOptions{provider: stopping(amounts(950), amounts())})
	other := s.charge(t, uuid.NewString(), "10.00", sandbox.CardSucceeds)["id"].(string)
	otherCharge := s.chargeID(t, other)
	orderID := uuid.NewString()
	want(t, s.call(t, "POST", "/internal/payments", s.serviceToken(t), chargeBody(orderID, uuid.NewString(), "9.50", sandbox.CardSucceeds)), http.StatusBadGateway)
	awaiting, err := s.svc.PaymentByOrder(testCtx(t), "", orderID)
	if err != nil {
		t.Fatal(err)
	}
	before := s.webhookRows(t)
	r := s.webhook(t, payment.WebhookEvent{ID: "evt_" + uuid.NewString(), Type: payment.WebhookChargeSucceeded,
		ChargeID: otherCharge, PaymentID: awaiting.ID}, time.Now())
	if r.status != http.StatusNotFound || errorCode(r) != "not_found" {
		t.Errorf("a webhook naming another payment's charge: %d %s, want 404 not_found", r.status, r.raw)
	}
	if after := s.webhookRows(t); after != before {
		t.Errorf("the refused webhook changed rows:\nbefore %s\nafter  %s", before, after)
	}
	if got := s.chargeRecorded(t, awaiting.ID); got != "" {
		t.Errorf("the awaiting payment took charge %s", got)
	}
}
