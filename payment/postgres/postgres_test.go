package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

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
	if err := postgres.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	// A second run is a no-op: every instance migrates at start.
	if err := postgres.Migrate(ctx, db); err != nil {
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

func charged(id string) func(context.Context, payment.Payment) (string, error) {
	return func(context.Context, payment.Payment) (string, error) { return id, nil }
}

func TestCreatePayment(t *testing.T) {
	ctx := context.Background()
	repo, db := newRepo(t)

	// The provider failing rolls the payment back.
	p := newPayment()
	boom := errors.New("provider down")
	if _, _, err := repo.CreatePayment(ctx, p, func(context.Context, payment.Payment) (string, error) { return "", boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if n := count(t, db, `SELECT count(*) FROM payments`); n != 0 {
		t.Fatalf("%d payments after a failed charge", n)
	}

	created, ok, err := repo.CreatePayment(ctx, p, charged("ch_1"))
	if err != nil || !ok || created.ID != p.ID || created.ChargeID != "ch_1" || created.Amount != 1000 ||
		created.Card != p.Card || created.CreatedAt.IsZero() || created.CreatedAt.Location() != time.UTC || created.Refunds == nil {
		t.Fatalf("CreatePayment = %+v, %v, %v", created, ok, err)
	}
	// The order's second payment is the first; the provider is not called.
	second := newPayment()
	second.OrderID = p.OrderID
	got, ok, err := repo.CreatePayment(ctx, second, func(context.Context, payment.Payment) (string, error) {
		t.Error("charge called for an order with a payment")
		return "", nil
	})
	if err != nil || ok || got.ID != p.ID {
		t.Errorf("CreatePayment of a paid order = %+v, %v, %v", got, ok, err)
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
	if _, _, err := repo.CreatePayment(ctx, bad, charged("ch_2")); err == nil {
		t.Error("a card number longer than four digits was stored")
	}
}

func TestUpdatePayment(t *testing.T) {
	ctx := context.Background()
	repo, db := newRepo(t)
	p, _, err := repo.CreatePayment(ctx, newPayment(), charged("ch_1"))
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
		if _, _, err := repo.CreatePayment(ctx, p, charged("ch_"+p.ID)); err != nil {
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
