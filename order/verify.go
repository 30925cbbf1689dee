package order

// The saga acts on payment.processed, payment.failed and payment.refunded
// only once the payment service confirms them. The stream is not proof of
// anything: anyone who can write to it (a process on the host, a leaked
// Redis password) could otherwise confirm an order whose card was declined.
// Asking the payment service, which holds the truth in its own database,
// needs no key of its own and holds against a stolen stream password
// (docs/architecture.md).

import (
	"context"
	"errors"
	"fmt"

	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/money"
	"github.com/mercato-dev/mercato/shared/validate"
)

// ErrUnknownPayment is the payment service saying it has no payment with
// the id asked for.
var ErrUnknownPayment = errors.New("the payment service has no such payment")

// PaymentRecord is the payment service's own account of a payment: what an
// event about it must agree with.
type PaymentRecord struct {
	ID          string
	OrderID     string
	UserID      string
	Status      string       // as the order service names it: PaymentPending, PaymentCaptured, …
	Captured    money.Amount // what the processor captured; 0 unless it did
	Refunded    money.Amount // what has been refunded of it
	Currency    string
	FailureCode string
}

// confirmProcessed checks a payment.processed against the payment service.
func (s *Saga) confirmProcessed(ctx context.Context, d events.PaymentProcessedPayload) error {
	return s.confirm(ctx, events.PaymentProcessed, d.PaymentID, d.OrderID, d.UserID, func(p PaymentRecord) string {
		switch {
		// A capture may have been refunded since (the order was cancelled
		// meanwhile): what matters is that it happened.
		case p.Status != PaymentCaptured && p.Status != PaymentPartiallyRefunded && p.Status != PaymentRefunded:
			return "is " + p.Status + ", not captured"
		case p.Captured != d.Amount || p.Currency != d.Currency:
			return fmt.Sprintf("captured %s %s, not %s %s", p.Captured, p.Currency, d.Amount, d.Currency)
		}
		return ""
	})
}

// confirmFailed checks a payment.failed against the payment service.
func (s *Saga) confirmFailed(ctx context.Context, d events.PaymentFailedPayload) error {
	return s.confirm(ctx, events.PaymentFailed, d.PaymentID, d.OrderID, d.UserID, func(p PaymentRecord) string {
		switch {
		case p.Status != PaymentFailed:
			return "is " + p.Status + ", not failed"
		case p.FailureCode != d.FailureCode:
			return fmt.Sprintf("failed with %q, not %q", p.FailureCode, d.FailureCode)
		}
		return ""
	})
}

// confirmRefunded checks a payment.refunded against the payment service. Its
// refunded amount only grows and a full refund is final, so a genuine event
// never claims more than the service answers, however late it is applied.
func (s *Saga) confirmRefunded(ctx context.Context, d events.PaymentRefundedPayload) error {
	return s.confirm(ctx, events.PaymentRefunded, d.PaymentID, d.OrderID, d.UserID, func(p PaymentRecord) string {
		switch {
		case p.Refunded < d.RefundedAmount || p.Currency != d.Currency:
			return fmt.Sprintf("refunded %s %s, not %s %s", p.Refunded, p.Currency, d.RefundedAmount, d.Currency)
		case d.FullyRefunded && p.Status != PaymentRefunded:
			return "is " + p.Status + ", not refunded in full"
		}
		return ""
	})
}

// confirm reads payment paymentID from the payment service and checks that
// it belongs to orderID and userID and that disagree finds nothing wrong with it. An
// event the payment service contradicts, or a payment it does not know, is a
// Permanent error: the consumer dead-letters the event at once with the
// reason, and the order is not touched. The payment service's events are
// written in the transaction that changes the payment, so a genuine event
// never runs ahead of what the service answers. A payment service that
// cannot answer is ErrUpstreamUnavailable, retried until it can (Handle).
func (s *Saga) confirm(ctx context.Context, event, paymentID, orderID, userID string, disagree func(PaymentRecord) string) error {
	refuse := func(format string, args ...any) error {
		return events.Permanent(fmt.Errorf("%s not confirmed by the payment service: "+format, append([]any{event}, args...)...))
	}
	id, ok := validate.ParseUUID(paymentID)
	if !ok {
		return refuse("payment id %q is no UUID", paymentID)
	}
	svcCtx, err := asService(ctx, s.tokens)
	if err != nil {
		return err
	}
	p, err := s.payments.Payment(svcCtx, id)
	switch {
	case errors.Is(err, ErrUnknownPayment):
		return refuse("it has no payment %s", id)
	case err != nil:
		return fmt.Errorf("%s: confirming payment %s: %w", event, id, err)
	}
	if oid, ok := validate.ParseUUID(orderID); !ok || oid != p.OrderID {
		return refuse("payment %s is of order %s, not %q", id, p.OrderID, orderID)
	}
	if p.UserID != userID {
		return refuse("payment %s is of another user", id)
	}
	if why := disagree(p); why != "" {
		return refuse("payment %s %s", id, why)
	}
	return nil
}
