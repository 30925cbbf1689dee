package sandbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/payment"
	"github.com/mercato-dev/mercato/payment/sandbox"
	"github.com/mercato-dev/mercato/shared/money"
	"github.com/mercato-dev/mercato/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const secret = "webhook-secret-webhook-secret-32"

func newSandbox(t *testing.T, delay time.Duration) (*sandbox.Sandbox, *sqlx.DB) {
	t.Helper()
	db := testkit.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := sandbox.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := sandbox.Migrate(ctx, db); err != nil {
		t.Fatalf("second migrate: %v", err) // every instance migrates at start
	}
	return sandbox.New(db, delay), db
}

func charge(key string, amount int64, card string) payment.ProviderCharge {
	return payment.ProviderCharge{IdempotencyKey: key, PaymentID: uuid.NewString(), Amount: money.Amount(amount), Currency: "USD",
		Card: payment.CardDetails{Number: card, ExpMonth: 12, ExpYear: 2040, CVC: "123"}}
}

func TestCharge(t *testing.T) {
	sb, db := newSandbox(t, time.Hour)
	ctx := context.Background()
	tests := []struct {
		card, outcome, failure string
	}{
		{sandbox.CardSucceeds, "succeeded", ""},
		{sandbox.CardDeclined, "failed", "card_declined"},
		{sandbox.CardInsufficientFunds, "failed", "insufficient_funds"},
		{"5555555555554444", "succeeded", ""},
	}
	for _, tc := range tests {
		key := uuid.NewString()
		id, err := sb.Charge(ctx, charge(key, 1999, tc.card))
		if err != nil || len(id) != len("ch_")+24 || id[:3] != "ch_" {
			t.Fatalf("Charge(%s) = %q, %v", tc.card, id, err)
		}
		var row struct {
			Outcome  string  `db:"outcome"`
			Failure  *string `db:"failure_code"`
			Amount   string  `db:"amount"`
			Due      bool    `db:"due"`
			Attempts int     `db:"delivery_attempts"`
		}
		if err := db.Get(&row, `
			SELECT outcome, failure_code, amount::text, next_delivery_at > now() + interval '59 minutes' AS due, delivery_attempts
			FROM sandbox_charges WHERE id = $1`, id); err != nil {
			t.Fatal(err)
		}
		failure := ""
		if row.Failure != nil {
			failure = *row.Failure
		}
		if row.Outcome != tc.outcome || failure != tc.failure || row.Amount != "19.99" || !row.Due || row.Attempts != 0 {
			t.Errorf("%s: row %+v", tc.card, row)
		}
		// The same key is the same charge; the same key for another amount
		// is refused.
		if again, err := sb.Charge(ctx, charge(key, 1999, tc.card)); err != nil || again != id {
			t.Errorf("Charge again = %q, %v; want %q", again, err, id)
		}
		if _, err := sb.Charge(ctx, charge(key, 2000, tc.card)); !errors.Is(err, sandbox.ErrIdempotencyMismatch) {
			t.Errorf("Charge with another amount: %v", err)
		}
	}
	if _, err := sb.Charge(ctx, charge(uuid.NewString(), 100, "4242424242424241")); !errors.Is(err, sandbox.ErrInvalidCard) {
		t.Errorf("Charge of an invalid card: %v", err)
	}
	var n int
	if err := db.Get(&n, `SELECT count(*) FROM sandbox_charges`); err != nil || n != len(tests) {
		t.Errorf("%d charges (%v), want %d", n, err, len(tests))
	}
}

// TestFindCharge: the charge taken under a key is found by it; a key never
// charged is ErrNoSuchCharge.
func TestFindCharge(t *testing.T) {
	sb, _ := newSandbox(t, time.Hour)
	ctx := context.Background()
	key := uuid.NewString()
	id, err := sb.Charge(ctx, charge(key, 500, sandbox.CardDeclined))
	if err != nil {
		t.Fatal(err)
	}
	if found, err := sb.FindCharge(ctx, key); err != nil || found != id {
		t.Errorf("FindCharge = %q, %v; want %q", found, err, id)
	}
	if found, err := sb.FindCharge(ctx, uuid.NewString()); !errors.Is(err, payment.ErrNoSuchCharge) || found != "" {
		t.Errorf("FindCharge of an unused key = %q, %v", found, err)
	}
}

func TestRefund(t *testing.T) {
	sb, _ := newSandbox(t, time.Hour)
	ctx := context.Background()
	ok, err := sb.Charge(ctx, charge(uuid.NewString(), 1000, sandbox.CardSucceeds))
	if err != nil {
		t.Fatal(err)
	}
	declined, err := sb.Charge(ctx, charge(uuid.NewString(), 1000, sandbox.CardDeclined))
	if err != nil {
		t.Fatal(err)
	}
	refund := func(key, chargeID string, cents int64) (string, error) {
		return sb.Refund(ctx, payment.ProviderRefund{IdempotencyKey: key, ChargeID: chargeID, Amount: money.Amount(cents)})
	}
	r1, err := refund("r1", ok, 600)
	if err != nil || r1[:3] != "re_" {
		t.Fatalf("Refund = %q, %v", r1, err)
	}
	if again, err := refund("r1", ok, 600); err != nil || again != r1 {
		t.Errorf("Refund again = %q, %v", again, err)
	}
	for _, tc := range []struct {
		name    string
		key, id string
		cents   int64
		want    error
	}{
		{"same key, other amount", "r1", ok, 500, sandbox.ErrIdempotencyMismatch},
		{"more than is left", "r2", ok, 401, sandbox.ErrRefundExceedsCharged},
		{"nothing", "r3", ok, 0, sandbox.ErrRefundExceedsCharged},
		{"declined charge", "r4", declined, 100, sandbox.ErrChargeNotSucceeded},
		{"unknown charge", "r5", "ch_nope", 100, sandbox.ErrUnknownCharge},
	} {
		if _, err := refund(tc.key, tc.id, tc.cents); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := refund("r6", ok, 400); err != nil {
		t.Errorf("refund of the rest: %v", err)
	}
	if _, err := refund("r7", ok, 1); !errors.Is(err, sandbox.ErrRefundExceedsCharged) {
		t.Errorf("refund past the charge: %v", err)
	}
}

// receiver is a webhook endpoint that verifies signatures like the payment
// service and answers with the statuses it is given, then 200.
type receiver struct {
	mu       sync.Mutex
	answers  []int
	received []payment.WebhookEvent
	bad      int // deliveries with a bad signature
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if err := payment.VerifyWebhookSignature([]byte(secret), r.Header.Get(payment.SignatureHeader), body, time.Now(), 5*time.Minute); err != nil {
		rc.bad++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var evt payment.WebhookEvent
	if err := json.Unmarshal(body, &evt); err != nil {
		rc.bad++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	rc.received = append(rc.received, evt)
	status := http.StatusOK
	if len(rc.answers) > 0 {
		status, rc.answers = rc.answers[0], rc.answers[1:]
	}
	w.WriteHeader(status)
}

func (rc *receiver) events() []payment.WebhookEvent {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]payment.WebhookEvent(nil), rc.received...)
}

func startDispatcher(t *testing.T, db *sqlx.DB, url string) {
	t.Helper()
	runDispatcher(t, &sandbox.Dispatcher{DB: db, URL: url, Secret: []byte(secret), Client: &http.Client{Timeout: 5 * time.Second},
		PollInterval: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
}

// runDispatcher runs d until the test ends.
func runDispatcher(t *testing.T, d *sandbox.Dispatcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("the dispatcher did not stop")
		}
	})
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDispatcherRetriesUntilAcknowledged(t *testing.T) {
	sb, db := newSandbox(t, 0)
	rc := &receiver{answers: []int{500, 503, 404}}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	c := charge(uuid.NewString(), 500, sandbox.CardInsufficientFunds)
	id, err := sb.Charge(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	startDispatcher(t, db, srv.URL)
	eventually(t, "the delivery", func() bool {
		var delivered bool
		if err := db.Get(&delivered, `SELECT delivered_at IS NOT NULL FROM sandbox_charges WHERE id = $1`, id); err != nil {
			t.Fatal(err)
		}
		return delivered
	})
	got := rc.events()
	if len(got) != 4 {
		t.Fatalf("%d deliveries, want 4 (three refused, then accepted): %+v", len(got), got)
	}
	for _, e := range got {
		want := payment.WebhookEvent{ID: got[0].ID, Type: payment.WebhookChargeFailed, ChargeID: id, PaymentID: c.PaymentID, FailureCode: "insufficient_funds"}
		if e != want {
			t.Errorf("delivered %+v, want %+v (one event id on every attempt)", e, want)
		}
	}
	var row struct {
		Attempts int     `db:"delivery_attempts"`
		Next     *string `db:"next"`
		Err      *string `db:"last_delivery_error"`
	}
	if err := db.Get(&row, `SELECT delivery_attempts, next_delivery_at::text AS next, last_delivery_error FROM sandbox_charges WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if row.Attempts != 4 || row.Next != nil || row.Err != nil || rc.bad != 0 {
		t.Errorf("after delivery: %+v, %d badly signed", row, rc.bad)
	}
}

// TestDispatcherWakesWhenChargeIsDue: the dispatcher of the sandbox's own
// process sends a webhook when its charge comes due, not at its next poll.
// The poll is an hour, and the dispatcher runs before the charge is made,
// so its first round finds nothing: only Sandbox.Due can start the delivery
// within the test's 20 s.
func TestDispatcherWakesWhenChargeIsDue(t *testing.T) {
	sb, db := newSandbox(t, time.Second)
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	runDispatcher(t, &sandbox.Dispatcher{DB: db, URL: srv.URL, Secret: []byte(secret), Client: &http.Client{Timeout: 5 * time.Second},
		PollInterval: time.Hour, Wake: sb.Due()})
	id, err := sb.Charge(context.Background(), charge(uuid.NewString(), 500, sandbox.CardSucceeds))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the webhook, sent on the charge's due signal", func() bool {
		got := rc.events()
		return len(got) == 1 && got[0].ChargeID == id
	})
}

// TestDispatchersShareWork: several dispatchers (instances) on one database
// deliver every webhook once, and a 409 (already had it) counts as delivered.
func TestDispatchersShareWork(t *testing.T) {
	sb, db := newSandbox(t, 0)
	rc := &receiver{answers: []int{409}}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	const n = 30
	for range n {
		if _, err := sb.Charge(context.Background(), charge(uuid.NewString(), 100, sandbox.CardSucceeds)); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		startDispatcher(t, db, srv.URL)
	}
	eventually(t, "every delivery", func() bool {
		var left int
		if err := db.Get(&left, `SELECT count(*) FROM sandbox_charges WHERE delivered_at IS NULL`); err != nil {
			t.Fatal(err)
		}
		return left == 0
	})
	seen := map[string]int{}
	for _, e := range rc.events() {
		seen[e.ID]++
	}
	if len(seen) != n {
		t.Errorf("%d distinct events delivered, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("event %s delivered %d times", id, c)
		}
	}
}
