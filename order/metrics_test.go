package order_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mercato-dev/mercato/order"
	"github.com/mercato-dev/mercato/shared/events"
)

// The series the business alerts watch exist from the start, at 0: an
// instance's first checkout and first confirmation are then an increase
// that increase() sees, not the value a new series appears with, which it
// does not (NoConfirmedOrders in deploy/prometheus/alerts.yml).
func TestBusinessSeriesFromTheStart(t *testing.T) {
	reg := prometheus.NewRegistry()
	order.NewMetrics(reg)
	want := `
# HELP order_checkouts_total Answers to POST /orders by result: success or the error code.
# TYPE order_checkouts_total counter
order_checkouts_total{result="success"} 0
# HELP order_transitions_total Order status changes by the status reached, whoever made them.
# TYPE order_transitions_total counter
order_transitions_total{status="cancelled"} 0
order_transitions_total{status="confirmed"} 0
order_transitions_total{status="delivered"} 0
order_transitions_total{status="refunded"} 0
order_transitions_total{status="shipped"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "order_checkouts_total", "order_transitions_total"); err != nil {
		t.Error(err)
	}
}

// order_revenue_cents_total is 0 from the start, grows by an order's total
// when the saga confirms it (once, however often payment.processed comes),
// and not for an order whose payment failed.
func TestRevenueOfConfirmedOrders(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := order.NewMetrics(reg)
	w := newWorld(t, order.Options{})
	w.saga = order.NewSaga(w.repo, w.inventory, w.payments, w.tokens, nopLogger(), m)
	revenue := func(cents int64) string {
		return fmt.Sprintf(`
# HELP order_revenue_cents_total Totals of the orders confirmed (payment captured), in minor units (cents), by currency.
# TYPE order_revenue_cents_total counter
order_revenue_cents_total{currency="USD"} %d
`, cents)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(revenue(0)), "order_revenue_cents_total"); err != nil {
		t.Error(err)
	}

	confirmed, failed := w.place(t, uuid.NewString()), w.place(t, uuid.NewString())
	for range 2 { // the second delivery changes nothing
		if err := w.deliver(t, events.PaymentProcessed, map[string]any{"payment_id": paymentID(confirmed.ID), "order_id": confirmed.ID,
			"user_id": confirmed.UserID, "amount": confirmed.TotalAmount.String(), "currency": "USD"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.deliver(t, events.PaymentFailed, map[string]any{"payment_id": paymentID(failed.ID), "order_id": failed.ID,
		"user_id": failed.UserID, "failure_code": "card_declined"}); err != nil {
		t.Fatal(err)
	}
	if got := w.order(t, confirmed.ID); got.Status != order.StatusConfirmed {
		t.Fatalf("status %s, want confirmed", got.Status)
	}
	if confirmed.TotalAmount.Cents() <= 0 {
		t.Fatalf("total %s: the test needs a positive one", confirmed.TotalAmount)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(revenue(confirmed.TotalAmount.Cents())), "order_revenue_cents_total"); err != nil {
		t.Error(err)
	}
	want := `
# HELP order_transitions_total Order status changes by the status reached, whoever made them.
# TYPE order_transitions_total counter
order_transitions_total{status="cancelled"} 1
order_transitions_total{status="confirmed"} 1
order_transitions_total{status="delivered"} 0
order_transitions_total{status="refunded"} 0
order_transitions_total{status="shipped"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "order_transitions_total"); err != nil {
		t.Error(err)
	}
}
