package order_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/order"
	"github.com/mercato-dev/mercato/shared/events"
)

// TestSagaRefusesPaymentEventsThePaymentServiceContradicts forges payment
// events the way anyone who can write to the stream could: each changes
// nothing and is refused as Permanent (dead-lettered at once) with a reason
// naming what is wrong.
func TestSagaRefusesPaymentEventsThePaymentServiceContradicts(t *testing.T) {
	w := newWorld(t, order.Options{})
	o := w.place(t, uuid.NewString())
	other := w.place(t, uuid.NewString())
	declined := paymentID(o.ID)
	w.payments.record(order.PaymentRecord{ID: declined, OrderID: o.ID, UserID: o.UserID, Status: order.PaymentFailed, FailureCode: "card_declined"})
	captured := paymentID(other.ID)
	w.payments.record(order.PaymentRecord{ID: captured, OrderID: other.ID, UserID: other.UserID, Status: order.PaymentCaptured,
		Captured: other.TotalAmount, Currency: "USD"})
	processed := func(paymentID, orderID, userID, amount string) map[string]any {
		return map[string]any{"payment_id": paymentID, "order_id": orderID, "user_id": userID, "amount": amount, "currency": "USD"}
	}
	total := o.TotalAmount.String()

	for _, tc := range []struct {
		name, typ string
		data      map[string]any
		reason    string
	}{
		{"a declined payment claiming processed", events.PaymentProcessed, processed(declined, o.ID, o.UserID, total), "is failed, not captured"},
		{"an unknown payment", events.PaymentProcessed, processed(uuid.NewString(), o.ID, o.UserID, total), "has no payment"},
		{"a payment id that is no UUID", events.PaymentProcessed, processed("pay_1", o.ID, o.UserID, total), "no UUID"},
		{"another order's capture", events.PaymentProcessed, processed(captured, o.ID, o.UserID, other.TotalAmount.String()), "is of order " + other.ID},
		{"an amount the payment service did not capture", events.PaymentProcessed, processed(captured, other.ID, other.UserID, "0.01"), "captured " + other.TotalAmount.String() + " USD, not 0.01 USD"},
		{"another currency", events.PaymentProcessed, map[string]any{"payment_id": captured, "order_id": other.ID, "user_id": other.UserID,
			"amount": other.TotalAmount.String(), "currency": "EUR"}, "not " + other.TotalAmount.String() + " EUR"},
		{"another user", events.PaymentProcessed, processed(captured, other.ID, uuid.NewString(), other.TotalAmount.String()), "another user"},
		{"a captured payment claiming failed", events.PaymentFailed, map[string]any{"payment_id": captured, "order_id": other.ID,
			"user_id": other.UserID, "failure_code": "card_declined"}, "is captured, not failed"},
		{"another failure code", events.PaymentFailed, map[string]any{"payment_id": declined, "order_id": o.ID,
			"user_id": o.UserID, "failure_code": "insufficient_funds"}, `failed with "card_declined"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := w.forge(t, tc.typ, tc.data)
			if !events.IsPermanent(err) || !strings.Contains(err.Error(), tc.reason) || !strings.Contains(err.Error(), "not confirmed by the payment service") {
				t.Errorf("err = %v, want a permanent error saying %q", err, tc.reason)
			}
		})
	}
	for _, id := range []string{o.ID, other.ID} {
		if got := w.order(t, id); got.Status != order.StatusPending || got.Payment.Status != order.PaymentPending || len(got.StatusHistory) != 1 {
			t.Errorf("order %s changed: %s, payment %+v", id, got.Status, got.Payment)
		}
		if s := w.inventory.status(id); s != "reserved" {
			t.Errorf("reservation of %s is %s", id, s)
		}
	}
	if types := w.repo.eventTypes(); !slices.Equal(types, []string{events.OrderCreated, events.OrderCreated}) {
		t.Errorf("events %v", types)
	}

	// The genuine events still apply.
	if err := w.forge(t, events.PaymentFailed, map[string]any{"payment_id": declined, "order_id": o.ID, "user_id": o.UserID,
		"failure_code": "card_declined"}); err != nil {
		t.Fatal(err)
	}
	if err := w.forge(t, events.PaymentProcessed, processed(captured, other.ID, other.UserID, other.TotalAmount.String())); err != nil {
		t.Fatal(err)
	}
	if got := w.order(t, o.ID); got.Status != order.StatusCancelled {
		t.Errorf("declined order %s", got.Status)
	}
	if got := w.order(t, other.ID); got.Status != order.StatusConfirmed {
		t.Errorf("paid order %s", got.Status)
	}
}

// TestSagaRefusesRefundsThePaymentServiceContradicts: a payment.refunded
// claiming a full refund the payment service never made, forged onto the
// stream as a payment.processed or payment.failed could be, must not move a
// paid, confirmed order to refunded (it would then never ship, with all its
// money kept), nor mark a pending order's payment refunded (its genuine
// capture would then cancel it, as a forged payment.failed would).
func TestSagaRefusesRefundsThePaymentServiceContradicts(t *testing.T) {
	w := newWorld(t, order.Options{})
	paid := w.place(t, uuid.NewString())
	pending := w.place(t, uuid.NewString())
	if err := w.deliver(t, events.PaymentProcessed, map[string]any{"payment_id": paymentID(paid.ID), "order_id": paid.ID,
		"user_id": paid.UserID, "amount": paid.TotalAmount.String(), "currency": "USD"}); err != nil {
		t.Fatal(err)
	}
	w.payments.record(order.PaymentRecord{ID: paymentID(pending.ID), OrderID: pending.ID, UserID: pending.UserID,
		Status: order.PaymentCaptured, Captured: pending.TotalAmount, Currency: "USD"})

	for _, o := range []order.Order{paid, pending} {
		err := w.forge(t, events.PaymentRefunded, map[string]any{"payment_id": paymentID(o.ID), "order_id": o.ID, "user_id": o.UserID,
			"amount": o.TotalAmount.String(), "refunded_amount": o.TotalAmount.String(), "fully_refunded": true, "currency": "USD"})
		if !events.IsPermanent(err) || !strings.Contains(err.Error(), "not confirmed by the payment service") {
			t.Errorf("order %s: err = %v, want a permanent error: the payment service refunded nothing", o.ID, err)
		}
	}
	if got := w.order(t, paid.ID); got.Status != order.StatusConfirmed || got.Payment.Status != order.PaymentCaptured || got.Payment.RefundedAmount != 0 {
		t.Errorf("paid order %s, payment %+v after a forged full refund; want confirmed, captured", got.Status, got.Payment)
	}
	if got := w.order(t, pending.ID); got.Payment.Status != order.PaymentPending || got.Payment.RefundedAmount != 0 {
		t.Errorf("pending order's payment %+v after a forged full refund", got.Payment)
	}
	// Its genuine capture still confirms it.
	if err := w.deliver(t, events.PaymentProcessed, map[string]any{"payment_id": paymentID(pending.ID), "order_id": pending.ID,
		"user_id": pending.UserID, "amount": pending.TotalAmount.String(), "currency": "USD"}); err != nil {
		t.Fatal(err)
	}
	if got := w.order(t, pending.ID); got.Status != order.StatusConfirmed {
		t.Errorf("pending order %s after its capture; want confirmed", got.Status)
	}
}
