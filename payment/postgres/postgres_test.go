package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/payment"
	"github.com/mercato-dev/mercato/payment/postgres"
	"github.com/mercato-dev/mercato/shared/events"
	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
	"github.com/mercato-dev/mercato/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func newRepo(t *testing.T) (*postgres.Repository, *sqlx.DB) {
	t.Helper()
	db := testkit.Postgres(t)
	ctx := context.Background()
	if err := postgres.Schema.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	// A second run is a no-op: every instance migrates at start.
	if err := postgres.Schema.Migrate(ctx, db); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	return postgres.New(db), db
}

func newPayment() payment.Payment {
	return payment.Payment{ID: uuid.NewString(), OrderID: uuid.NewString(), UserID: uuid.NewString(), Amount: 1000,
		Currency: "USD", Status: payment.StatusPending, PaymentMethod: "card", PaymentProvider: "sandbox",
		Card: payment.Card{Brand: "visa", Last4: "4242"}}
}

func count(t *testing.T, db *sqlx.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.Get(&n, query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// TestWebhookJanitorDeletesOnlyOldEventIDs: a webhook's event id is kept for
// WebhookRetention, then deleted.
func TestWebhookJanitorDeletesOnlyOldEventIDs(t *testing.T) {
	ctx := context.Background()
	repo, db := newRepo(t)
	db.MustExec(`INSERT INTO webhook_events (provider, event_id, type, received_at) VALUES
		('sandbox', 'recent', 'charge.succeeded', now() - make_interval(secs => $1) + interval '1 hour'),
		('sandbox', 'old', 'charge.succeeded', now() - make_interval(secs => $1) - interval '1 hour')`,
		postgres.WebhookRetention.Seconds())
	if n, err := repo.WebhookJanitor(log.NewNopLogger()).Clean(ctx); err != nil || n != 1 {
		t.Fatalf("Clean = %d, %v; want the one old event id", n, err)
	}
	if left := count(t, db, `SELECT count(*) FROM webhook_events WHERE event_id = 'recent'`); left != 1 {
		t.Error("the recent event id was deleted")
	}
}

// charged creates p and records chargeID as its charge, as the service does
// around its provider call.
func charged(t *testing.T, repo *postgres.Repository, p payment.Payment, chargeID string) (payment.Payment, error) {
	t.Helper()
	if _, _, err := repo.CreatePayment(context.Background(), p); err != nil {
		return payment.Payment{}, err
	}
	return repo.RecordCharge(context.Background(), p.ID, chargeID)
}

func TestCreatePayment(t *testing.T) {
	ctx := context.Background()
	repo, db := newRepo(t)

	// The payment is stored before the provider is called: awaiting its
	// charge, attempted now.
	p := newPayment()
	created, ok, err := repo.CreatePayment(ctx, p)
	if err != nil || !ok || created.ID != p.ID || created.ChargeID != "" || created.ChargeAttemptedAt == nil ||
		created.Status != payment.StatusPending || created.Amount != 1000 || created.Card != p.Card ||
		created.CreatedAt.IsZero() || created.CreatedAt.Location() != time.UTC || created.Refunds == nil {
		t.Fatalf("CreatePayment = %+v, %v, %v", created, ok, err)
	}
	// The order's second payment is the first, awaiting its charge: a
	// request may claim the call.
	second := newPayment()
	second.OrderID = p.OrderID
	got, ok, err := repo.CreatePayment(ctx, second)
	if err != nil || ok || got.ID != p.ID || got.ChargeID != "" {
		t.Errorf("CreatePayment of an order with a payment = %+v, %v, %v", got, ok, err)
	}
	claimed, ok, err := repo.ClaimCharge(ctx, p.ID)
	if err != nil || !ok || claimed.ID != p.ID || !claimed.ChargeAttemptedAt.After(*created.ChargeAttemptedAt) {
		t.Errorf("ClaimCharge = %+v, %v, %v", claimed, ok, err)
	}

	// The provider's answer; repeated, it changes nothing; another charge
	// id for the same payment is refused.
	recorded, err := repo.RecordCharge(ctx, p.ID, "ch_1")
	if err != nil || recorded.ChargeID != "ch_1" || !recorded.UpdatedAt.Equal(created.UpdatedAt) || recorded.Refunds == nil {
		t.Fatalf("RecordCharge = %+v, %v", recorded, err)
	}
	if again, err := repo.RecordCharge(ctx, p.ID, "ch_1"); err != nil || again.ChargeID != "ch_1" {
		t.Errorf("RecordCharge again = %+v, %v", again, err)
	}
	if _, err := repo.RecordCharge(ctx, p.ID, "ch_2"); err == nil {
		t.Error("a second charge id was recorded")
	}
	if _, err := repo.RecordCharge(ctx, uuid.NewString(), "ch_3"); !errors.Is(err, payment.ErrNotFound) {
		t.Errorf("RecordCharge of an unknown payment: %v", err)
	}
	// Answered: nothing left to claim.
	if got, ok, err := repo.ClaimCharge(ctx, p.ID); err != nil || ok || got.ChargeID != "ch_1" {
		t.Errorf("ClaimCharge of a charged payment = %+v, %v, %v", got, ok, err)
	}
	if byOrder, err := repo.PaymentByOrder(ctx, p.OrderID); err != nil || byOrder.ID != p.ID || byOrder.ChargeID != "ch_1" {
		t.Errorf("PaymentByOrder = %+v, %v", byOrder, err)
	}
	if _, err := repo.Payment(ctx, uuid.NewString()); !errors.Is(err, payment.ErrNotFound) {
		t.Errorf("Payment of an unknown id: %v", err)
	}
	// The schema refuses what the service never writes: a full card number.
	bad := newPayment()
	bad.Card.Last4 = "4242424242424242"
	if _, _, err := repo.CreatePayment(ctx, bad); err == nil {
		t.Error("a card number longer than four digits was stored")
	}
	if n := count(t, db, `SELECT count(*) FROM payments`); n != 1 {
		t.Errorf("%d payments, want 1", n)
	}
}

// TestUpdatePaymentBeforeChargeRecorded: a webhook that comes before the
// answer to the charge call finds its payment by id and records the charge
// id, which the call's RecordCharge then finds; a payment with another
// charge is not the webhook's.
func TestUpdatePaymentBeforeChargeRecorded(t *testing.T) {
	ctx := context.Background()
	repo, _ := newRepo(t)
	p := newPayment()
	if _, _, err := repo.CreatePayment(ctx, p); err != nil {
		t.Fatal(err)
	}
	capture := func(_ context.Context, p payment.Payment, _ *payment.Refund) (*payment.Change, error) {
		p.Status, p.CapturedAmount = payment.StatusCompleted, p.Amount
		return &payment.Change{Payment: p}, nil
	}
	webhook := &payment.WebhookRecord{Provider: "sandbox", EventID: "evt_early", Type: payment.WebhookChargeSucceeded}
	if _, _, err := repo.UpdatePayment(ctx, payment.Lock{ChargeID: "ch_early", Webhook: webhook}, capture); !errors.Is(err, payment.ErrNotFound) {
		t.Fatalf("by the unrecorded charge id alone: %v, want not found", err)
	}
	got, _, err := repo.UpdatePayment(ctx, payment.Lock{PaymentID: p.ID, ChargeID: "ch_early", Webhook: webhook}, capture)
	if err != nil || got.ChargeID != "ch_early" || got.Status != payment.StatusCompleted {
		t.Fatalf("by payment and charge id = %+v, %v; want completed, charge ch_early recorded", got, err)
	}
	if again, err := repo.RecordCharge(ctx, p.ID, "ch_early"); err != nil || again.ChargeID != "ch_early" {
		t.Fatalf("the charge call's RecordCharge after the webhook = %+v, %v", again, err)
	}
	other := &payment.WebhookRecord{Provider: "sandbox", EventID: "evt_other", Type: payment.WebhookChargeSucceeded}
	if _, _, err := repo.UpdatePayment(ctx, payment.Lock{PaymentID: p.ID, ChargeID: "ch_other", Webhook: other}, capture); !errors.Is(err, payment.ErrNotFound) {
		t.Errorf("a webhook of another charge of the payment: %v, want not found", err)
	}
}

func TestUpdatePayment(t *testing.T) {
	ctx := context.Background()
	repo, db := newRepo(t)
	p, err := charged(t, repo, newPayment(), "ch_1")
	if err != nil {
		t.Fatal(err)
	}
	evt, err := events.New(ctx, payment.ServiceName, events.PaymentProcessed, map[string]string{"payment_id": p.ID})
	if err != nil {
		t.Fatal(err)
	}
	capture := func(_ context.Context, p payment.Payment, prior *payment.Refund) (*payment.Change, error) {
		if prior != nil {
			t.Errorf("prior refund %+v without a key", prior)
		}
		now := time.Now()
		p.Status, p.CapturedAmount, p.ProcessedAt = payment.StatusCompleted, p.Amount, &now
		return &payment.Change{Payment: p, Events: []events.Envelope{evt}}, nil
	}
	webhook := &payment.WebhookRecord{Provider: "sandbox", EventID: "evt_1", Type: payment.WebhookChargeSucceeded}

	// An unknown charge: not found, and the webhook is not recorded.
	if _, _, err := repo.UpdatePayment(ctx, payment.Lock{ChargeID: "ch_nope", Webhook: webhook}, capture); !errors.Is(err, payment.ErrNotFound) {
		t.Fatalf("unknown charge: %v", err)
	}
	if n := count(t, db, `SELECT count(*) FROM webhook_events`); n != 0 {
		t.Errorf("%d webhook events recorded by a failed update", n)
	}
	got, refund, err := repo.UpdatePayment(ctx, payment.Lock{ChargeID: "ch_1", Webhook: webhook}, capture)
	if err != nil || refund != nil || got.Status != payment.StatusCompleted || got.CapturedAmount != 1000 || got.ProcessedAt == nil {
		t.Fatalf("UpdatePayment = %+v, %+v, %v", got, refund, err)
	}
	if n := count(t, db, `SELECT count(*) FROM outbox WHERE id = $1 AND type = 'payment.processed'`, evt.ID); n != 1 {
		t.Errorf("%d outbox rows for the event", n)
	}
	// The same webhook again: refused before anything is looked at.
	if _, _, err := repo.UpdatePayment(ctx, payment.Lock{ChargeID: "ch_1", Webhook: webhook}, capture); !errors.Is(err, payment.ErrWebhookReplayed) {
		t.Errorf("replayed webhook: %v", err)
	}

	// A refund under a key; the key's next use is handed the refund.
	hash := []byte("hash")
	refundOnce := func(_ context.Context, p payment.Payment, prior *payment.Refund) (*payment.Change, error) {
		if prior != nil {
			return nil, nil
		}
		now := time.Now()
		p.RefundedAmount, p.Status = 400, payment.StatusPartiallyRefunded
		return &payment.Change{Payment: p, Refund: &payment.Refund{ID: uuid.NewString(), PaymentID: p.ID, Amount: 400,
			Status: payment.RefundCompleted, ProviderRefundID: "re_1", ProcessedAt: &now, IdempotencyKey: "k", RequestHash: hash}}, nil
	}
	got, refund, err = repo.UpdatePayment(ctx, payment.Lock{PaymentID: p.ID, IdempotencyKey: "k"}, refundOnce)
	if err != nil || refund == nil || refund.Amount != 400 || refund.CreatedAt.IsZero() || got.RefundedAmount != 400 || len(got.Refunds) != 1 {
		t.Fatalf("refund = %+v, %+v, %v", got, refund, err)
	}
	again, prior, err := repo.UpdatePayment(ctx, payment.Lock{PaymentID: p.ID, IdempotencyKey: "k"}, refundOnce)
	if err != nil || prior == nil || prior.ID != refund.ID || string(prior.RequestHash) != "hash" || again.RefundedAmount != 400 {
		t.Errorf("same key = %+v, %+v, %v", again, prior, err)
	}

	// The schema refuses refunding more than was captured, whatever the
	// code decides; the transaction leaves nothing behind.
	over := func(_ context.Context, p payment.Payment, _ *payment.Refund) (*payment.Change, error) {
		p.RefundedAmount = 1001
		return &payment.Change{Payment: p, Events: []events.Envelope{evt}}, nil
	}
	if _, _, err := repo.UpdatePayment(ctx, payment.Lock{OrderID: p.OrderID}, over); !sharedpg.IsCheckViolation(err, "payments_refunded_check") {
		t.Errorf("over-refund: %v", err)
	}
	if after, _ := repo.Payment(ctx, p.ID); after.RefundedAmount != 400 {
		t.Errorf("refunded after the refused update: %s", after.RefundedAmount)
	}
}

func TestListPayments(t *testing.T) {
	ctx := context.Background()
	repo, _ := newRepo(t)
	ada := uuid.NewString()
	var ids []string
	for i := range 3 {
		p := newPayment()
		if i < 2 {
			p.UserID = ada
		}
		if _, err := charged(t, repo, p, "ch_"+p.ID); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, p.ID)
	}
	items, total, err := repo.ListPayments(ctx, payment.PaymentQuery{UserID: ada, Page: 1, PageSize: 1})
	if err != nil || total != 2 || len(items) != 1 || items[0].ID != ids[1] {
		t.Errorf("Ada's first page = %+v, %d, %v", items, total, err)
	}
	items, total, err = repo.ListPayments(ctx, payment.PaymentQuery{Page: 1, PageSize: 10})
	if err != nil || total != 3 || len(items) != 3 || items[0].ID != ids[2] || items[0].Refunds != nil {
		t.Errorf("everyone's = %+v, %d, %v", items, total, err)
	}
	p, _ := repo.Payment(ctx, ids[2])
	items, total, err = repo.ListPayments(ctx, payment.PaymentQuery{UserID: ada, OrderID: p.OrderID, Page: 1, PageSize: 10})
	if err != nil || total != 0 || len(items) != 0 {
		t.Errorf("Ada filtering on another's order = %+v, %d, %v", items, total, err)
	}
}

// TestAbandonedAttempts: attempts whose provider call was last started long
// ago are claimed once, by one claimant; answered ones, recent ones and ones
// another transaction holds are left alone.
func TestAbandonedAttempts(t *testing.T) {
	ctx := context.Background()
	repo, db := newRepo(t)
	age := func(table, column, id string) {
		t.Helper()
		if _, err := db.Exec(`UPDATE `+table+` SET `+column+` = now() - interval '10 minutes' WHERE id = $1`, id); err != nil {
			t.Fatal(err)
		}
	}

	abandoned, recent, answered := newPayment(), newPayment(), newPayment()
	for _, p := range []payment.Payment{abandoned, recent, answered} {
		if _, _, err := repo.CreatePayment(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := repo.RecordCharge(ctx, answered.ID, "ch_answered"); err != nil {
		t.Fatal(err)
	}
	age("payments", "charge_attempted_at", abandoned.ID)
	age("payments", "charge_attempted_at", answered.ID)

	// Held by another transaction (a request claiming it right now): skipped.
	tx, err := db.Beginx()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`SELECT 1 FROM payments WHERE id = $1 FOR UPDATE`, abandoned.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := repo.ClaimAbandonedCharges(ctx, time.Minute, 10); err != nil || len(got) != 0 {
		t.Errorf("claimed %+v (%v) while the row was held", got, err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	got, err := repo.ClaimAbandonedCharges(ctx, time.Minute, 10)
	if err != nil || len(got) != 1 || got[0].ID != abandoned.ID || time.Since(*got[0].ChargeAttemptedAt) > time.Minute {
		t.Fatalf("ClaimAbandonedCharges = %+v, %v", got, err)
	}
	// Claimed: attempted now, so not abandoned again until age has passed.
	if again, err := repo.ClaimAbandonedCharges(ctx, time.Minute, 10); err != nil || len(again) != 0 {
		t.Errorf("claimed again: %+v, %v", again, err)
	}

	// Refunds: recorded pending, attempted now; completed over the pending
	// row by id.
	p, _, err := repo.UpdatePayment(ctx, payment.Lock{PaymentID: answered.ID}, func(_ context.Context, p payment.Payment, _ *payment.Refund) (*payment.Change, error) {
		p.Status, p.CapturedAmount = payment.StatusCompleted, p.Amount
		return &payment.Change{Payment: p}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pending := payment.Refund{ID: uuid.NewString(), PaymentID: p.ID, Amount: 300, Status: payment.RefundPending}
	_, rf, err := repo.UpdatePayment(ctx, payment.Lock{PaymentID: p.ID}, func(_ context.Context, p payment.Payment, _ *payment.Refund) (*payment.Change, error) {
		return &payment.Change{Payment: p, Refund: &pending}, nil
	})
	if err != nil || rf == nil || rf.Status != payment.RefundPending || rf.AttemptedAt == nil {
		t.Fatalf("pending refund = %+v, %v", rf, err)
	}
	if got, err := repo.ClaimAbandonedRefunds(ctx, time.Minute, 10); err != nil || len(got) != 0 {
		t.Errorf("a refund attempted now was claimed: %+v, %v", got, err)
	}
	age("refunds", "attempted_at", pending.ID)
	refunds, err := repo.ClaimAbandonedRefunds(ctx, time.Minute, 10)
	if err != nil || len(refunds) != 1 || refunds[0].ID != pending.ID || refunds[0].Amount != 300 {
		t.Fatalf("ClaimAbandonedRefunds = %+v, %v", refunds, err)
	}
	complete := func(_ context.Context, p payment.Payment, _ *payment.Refund) (*payment.Change, error) {
		if len(p.Refunds) != 1 || p.Refunds[0].Status != payment.RefundPending || p.Refundable() != 700 {
			t.Errorf("the change func was handed %+v, refundable %s", p.Refunds, p.Refundable())
		}
		now := time.Now()
		done := p.Refunds[0]
		done.Status, done.ProviderRefundID, done.ProcessedAt = payment.RefundCompleted, "re_1", &now
		p.RefundedAmount, p.Status = 300, payment.StatusPartiallyRefunded
		return &payment.Change{Payment: p, Refund: &done}, nil
	}
	after, rf, err := repo.UpdatePayment(ctx, payment.Lock{PaymentID: p.ID}, complete)
	if err != nil || rf == nil || rf.Status != payment.RefundCompleted || rf.ProviderRefundID != "re_1" ||
		len(after.Refunds) != 1 || after.RefundedAmount != 300 || after.Refundable() != 700 {
		t.Fatalf("completed = %+v, %+v, %v", after, rf, err)
	}
	// A completed refund is not stored over.
	if _, _, err := repo.UpdatePayment(ctx, payment.Lock{PaymentID: p.ID}, func(_ context.Context, p payment.Payment, _ *payment.Refund) (*payment.Change, error) {
		return &payment.Change{Payment: p, Refund: &pending}, nil
	}); err == nil {
		t.Error("a completed refund was stored over")
	}
	age("refunds", "attempted_at", pending.ID)
	if got, err := repo.ClaimAbandonedRefunds(ctx, time.Minute, 10); err != nil || len(got) != 0 {
		t.Errorf("a completed refund was claimed: %+v, %v", got, err)
	}
}

// TestAttemptsRecordedBeforeTheirColumn: a charge or refund left pending
// before migration 00002 has no attempt time; its attempt is as old as its
// row, so Recovery claims it once that is old enough. Before, NULL never
// compared older than anything, and such attempts were never finished.
func TestAttemptsRecordedBeforeTheirColumn(t *testing.T) {
	ctx := context.Background()
	repo, db := newRepo(t)
	exec := func(query string, args ...any) {
		t.Helper()
		if _, err := db.Exec(query, args...); err != nil {
			t.Fatal(err)
		}
	}
	old, recent := newPayment(), newPayment()
	for _, p := range []payment.Payment{old, recent} {
		if _, _, err := repo.CreatePayment(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	exec(`UPDATE payments SET charge_attempted_at = NULL`)
	exec(`UPDATE payments SET created_at = now() - interval '10 minutes' WHERE id = $1`, old.ID)
	got, err := repo.ClaimAbandonedCharges(ctx, time.Minute, 10)
	if err != nil || len(got) != 1 || got[0].ID != old.ID {
		t.Fatalf("ClaimAbandonedCharges = %+v, %v; want the old payment alone", got, err)
	}

	// A refund of the recent payment, left pending without an attempt time.
	p, _, err := repo.UpdatePayment(ctx, payment.Lock{PaymentID: recent.ID}, func(_ context.Context, p payment.Payment, _ *payment.Refund) (*payment.Change, error) {
		p.Status, p.CapturedAmount, p.ChargeID = payment.StatusCompleted, p.Amount, "ch_recent"
		return &payment.Change{Payment: p, Refund: &payment.Refund{ID: uuid.NewString(), PaymentID: p.ID, Amount: 300, Status: payment.RefundPending}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	exec(`UPDATE refunds SET attempted_at = NULL, created_at = now() - interval '10 minutes' WHERE payment_id = $1`, p.ID)
	refunds, err := repo.ClaimAbandonedRefunds(ctx, time.Minute, 10)
	if err != nil || len(refunds) != 1 || refunds[0].PaymentID != p.ID {
		t.Fatalf("ClaimAbandonedRefunds = %+v, %v; want the refund left pending", refunds, err)
	}
}

// TestListPaymentsTotalIsThePages lists a customer's payments while more are
// created: the total and the page come from one snapshot, so a page never
// lists more payments than its total counts.
func TestListPaymentsTotalIsThePages(t *testing.T) {
	ctx := context.Background()
	repo, _ := newRepo(t)
	user := uuid.NewString()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 40 {
			p := newPayment()
			p.UserID = user
			if _, _, err := repo.CreatePayment(ctx, p); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	skewed := 0
	for {
		select {
		case <-done:
			if skewed > 0 {
				t.Errorf("%d pages listing more payments than their total", skewed)
			}
			return
		default:
		}
		items, total, err := repo.ListPayments(ctx, payment.PaymentQuery{UserID: user, Page: 1, PageSize: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(items) > total {
			skewed++
		}
	}
}

// TestMigrateAfterAnInterruptedIndexBuild: a concurrent index build that the
// start-up deadline cut short is built again at the next start. It left an
// INVALID index, which CREATE INDEX CONCURRENTLY IF NOT EXISTS took for the
// index, and the migration was recorded as applied without one.
func TestMigrateAfterAnInterruptedIndexBuild(t *testing.T) {
	testkit.MigrateInterrupted(t, testkit.Postgres(t), postgres.Schema.Migrate)
}
