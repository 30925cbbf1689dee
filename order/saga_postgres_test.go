package order_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/order"
	"github.com/mercato-dev/mercato/order/postgres"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// newPostgresWorld is newWorld on the real repository: a fresh, migrated
// PostgreSQL database, the product and payment services faked.
func newPostgresWorld(t *testing.T) (*world, *sqlx.DB) {
	t.Helper()
	db := testkit.Postgres(t)
	if err := postgres.Schema.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	return newWorldOn(t, postgres.New(db), order.Options{}), db
}

// TestSagaFullRefundOvertakesTheCapture: an admin refunds a payment in full
// right after its capture, and the order consumer applies payment.refunded
// before payment.processed (which waits on the product service, or simply
// lost the race on another instance). All the money is back before the order
// was confirmed, so nothing is sold: the capture that comes after must not
// confirm the order (and commit its stock) with a refunded payment, which
// would leave a confirmed order to ship for free that never becomes refunded.
func TestSagaFullRefundOvertakesTheCapture(t *testing.T) {
	ctx := context.Background()
	w, db := newPostgresWorld(t)
	o := w.place(t, uuid.NewString())
	pid := paymentID(o.ID)

	if err := w.deliver(t, events.PaymentRefunded, map[string]any{"payment_id": pid, "order_id": o.ID, "user_id": o.UserID,
		"amount": o.TotalAmount.String(), "refunded_amount": o.TotalAmount.String(), "fully_refunded": true, "currency": "USD"}); err != nil {
		t.Fatal(err)
	}
	if err := w.deliver(t, events.PaymentProcessed, map[string]any{"payment_id": pid, "order_id": o.ID, "user_id": o.UserID,
		"amount": o.TotalAmount.String(), "currency": "USD"}); err != nil {
		t.Fatal(err)
	}
	got, err := postgres.New(db).OrderByID(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != order.StatusCancelled || got.Payment.Status != order.PaymentRefunded || got.Payment.RefundedAmount != o.TotalAmount {
		t.Errorf("order %s with payment %+v after a full refund and then its capture; want cancelled, refunded", got.Status, got.Payment)
	}
	if st := w.inventory.status(o.ID); st == "committed" {
		t.Errorf("reservation %s: the units of a refunded, unconfirmed order were sold", st)
	}
	// The cancellation's order.cancelled is what gives the stock back.
	if err := w.deliver(t, events.OrderCancelled, map[string]string{"order_id": o.ID, "user_id": o.UserID, "reason": "x"}); err != nil {
		t.Fatal(err)
	}
	if st := w.inventory.status(o.ID); st != "released" || w.inventory.available(w.a) != 10 {
		t.Errorf("reservation %s, %d of product a available after the cancellation", st, w.inventory.available(w.a))
	}
}

// TestSagaCaptureAfterCancelRefundedInPartFirst: an order cancelled before
// its payment existed at the payment service (so nothing was marked to be
// refunded there), then captured; an admin refunds part of the capture, and
// that payment.refunded is applied before the payment.processed. The
// capture's event must still repeat order.cancelled, or the rest of the
// capture is kept for an order that was cancelled, and nothing asks for it
// again.
func TestSagaCaptureAfterCancelRefundedInPartFirst(t *testing.T) {
	ctx := context.Background()
	w, db := newPostgresWorld(t)
	o := w.place(t, uuid.NewString())
	if _, err := w.svc.CancelOrder(ctx, order.Caller{UserID: o.UserID}, o.ID, ""); err != nil {
		t.Fatal(err)
	}
	pid := paymentID(o.ID)
	if err := w.deliver(t, events.PaymentRefunded, map[string]any{"payment_id": pid, "order_id": o.ID, "user_id": o.UserID,
		"amount": "10.00", "refunded_amount": "10.00", "fully_refunded": false, "currency": "USD"}); err != nil {
		t.Fatal(err)
	}
	if err := w.deliver(t, events.PaymentProcessed, map[string]any{"payment_id": pid, "order_id": o.ID, "user_id": o.UserID,
		"amount": o.TotalAmount.String(), "currency": "USD"}); err != nil {
		t.Fatal(err)
	}
	var cancelled int
	if err := db.GetContext(ctx, &cancelled, `SELECT count(*) FROM outbox WHERE type = $1`, events.OrderCancelled); err != nil {
		t.Fatal(err)
	}
	if cancelled != 2 {
		t.Errorf("%d order.cancelled events, want 2: the cancel's, and the capture's asking for what is left of it to be refunded", cancelled)
	}
}
