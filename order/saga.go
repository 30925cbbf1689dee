package order

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/logging"
	"github.com/mercato-dev/mercato/shared/validate"
)

// Saga moves orders along as the other services report back. It is the
// handler of the order service's events.Consumer (group "order"): each
// event is applied in the consumer's transaction together with its inbox
// row, so a redelivered event changes nothing, and a handler that fails
// (the product service is down) rolls back and is retried.
//
// payment.processed, payment.failed and payment.refunded change nothing
// until the payment service confirms them (verify.go): one it contradicts is
// dead-lettered at once with the reason. While an upstream (payment or product service) is
// unavailable the event is retried for as long as that lasts.
//
//   - payment.processed: commit the reservation, then pending → confirmed.
//     If the reservation expired before the money came, the order is
//     cancelled instead and the payment refunded (order.cancelled); if the
//     payment was refunded in full before this event was applied, it is
//     cancelled too, with nothing committed.
//   - payment.failed: pending → cancelled.
//   - inventory.released with reason "expired": pending → cancelled. This is
//     how an order whose charge never happened (a crash between storing it
//     and calling the payment service) ends.
//   - payment.refunded with fully_refunded: confirmed/shipped/delivered →
//     refunded; partial refunds are recorded on the order's payment.
//   - order.cancelled (our own): release the reservation, committed or not.
//     Every way to cancel goes through this one event, so stock comes back
//     exactly when the cancellation commits, whoever cancelled.
type Saga struct {
	repo      Repository
	inventory Inventory
	payments  Payments
	tokens    *auth.Tokens
	logger    log.Logger
	metrics   *Metrics // order_transitions_total, order_revenue_cents_total
}

// NewSaga returns the event handlers; payments confirms the payment events,
// m counts the status changes they make and the revenue of the orders they
// confirm (nil counts nothing).
func NewSaga(repo Repository, inventory Inventory, payments Payments, tokens *auth.Tokens, logger log.Logger, m *Metrics) *Saga {
	return &Saga{repo: repo, inventory: inventory, payments: payments, tokens: tokens, logger: logger, metrics: m}
}

// EventTypes are the events the saga consumes.
func (s *Saga) EventTypes() []string {
	return []string{events.PaymentProcessed, events.PaymentFailed, events.PaymentRefunded,
		events.InventoryReleased, events.OrderCancelled}
}

// Handle applies one event through tx. It is an events.HandlerFunc. A
// failure because an upstream is unavailable is events.Transient: the event
// waits for the upstream however long it is down, never dead-lettered for it.
func (s *Saga) Handle(ctx context.Context, tx events.Tx, e events.Envelope) error {
	err := s.handle(ctx, tx, e)
	if errors.Is(err, ErrUpstreamUnavailable) {
		return events.Transient(err)
	}
	return err
}

func (s *Saga) handle(ctx context.Context, tx events.Tx, e events.Envelope) error {
	switch e.Type {
	case events.PaymentProcessed:
		return decoded(e, func(d events.PaymentProcessedPayload) error { return s.paymentProcessed(ctx, tx, d) })
	case events.PaymentFailed:
		return decoded(e, func(d events.PaymentFailedPayload) error { return s.paymentFailed(ctx, tx, d) })
	case events.PaymentRefunded:
		return decoded(e, func(d events.PaymentRefundedPayload) error { return s.paymentRefunded(ctx, tx, d) })
	case events.InventoryReleased:
		return decoded(e, func(d events.InventoryReleasedPayload) error {
			if d.Reason != events.ReleaseReasonExpired {
				return nil // our own releases coming back
			}
			return s.reservationExpired(ctx, tx, d.OrderID)
		})
	case events.OrderCancelled:
		return decoded(e, func(d events.OrderCancelledPayload) error { return s.release(ctx, d.OrderID) })
	}
	return nil
}

// decoded decodes the payload of e as a T and hands it to handle; a payload
// that does not decode is the handler's error.
func decoded[T any](e events.Envelope, handle func(T) error) error {
	var d T
	if err := e.Decode(&d); err != nil {
		return err
	}
	return handle(d)
}

// transition applies decide to the order of an event. An event about an
// order this service never stored (another environment's, or a forged one)
// cannot be made right by retrying, so it is logged and dropped.
func (s *Saga) transition(ctx context.Context, tx events.Tx, orderID, event string, decide func(Order) (*Change, error)) error {
	id, ok := validate.ParseUUID(orderID)
	if !ok {
		level.Warn(logging.WithRequest(ctx, s.logger)).Log("msg", "event for an invalid order id; dropped", "event", event, "order_id", orderID)
		return nil
	}
	before := StatusPending
	o, err := s.repo.Transition(ctx, tx, id, func(o Order) (*Change, error) {
		before = o.Status
		return decide(o)
	})
	if errors.Is(err, ErrNotFound) {
		level.Warn(logging.WithRequest(ctx, s.logger)).Log("msg", "event for an unknown order; dropped", "event", event, "order_id", id)
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s for order %s: %w", event, id, err)
	}
	if o.Status != before {
		s.metrics.transitioned(o)
	}
	return nil
}

func (s *Saga) paymentProcessed(ctx context.Context, tx events.Tx, d events.PaymentProcessedPayload) error {
	if err := s.confirmProcessed(ctx, d); err != nil {
		return err
	}
	return s.transition(ctx, tx, d.OrderID, events.PaymentProcessed, func(o Order) (*Change, error) {
		p := mergePayment(o.Payment, Payment{ID: d.PaymentID, Status: PaymentCaptured})
		if d.Amount != o.TotalAmount {
			// The charge is made from the stored total, so this is a bug
			// somewhere; the order goes ahead, and the log says where to look.
			level.Error(logging.WithRequest(ctx, s.logger)).Log("msg", "captured amount differs from the order total",
				"order_id", o.ID, "captured", d.Amount, "total", o.TotalAmount)
		}
		switch o.Status {
		case StatusPending:
			if p.Status == PaymentRefunded {
				// Refunded in full before this event was applied (its
				// payment.refunded overtook it): the money is back, so
				// nothing is sold; confirming would commit the stock of an
				// order nobody paid for, which no event moves to refunded.
				return paymentChange(ctx, o, StatusCancelled, "payment_refunded: refunded in full before the order was confirmed", p)
			}
		case StatusCancelled:
			// Cancelled while the charge was in flight (by the customer, or
			// because the reservation expired). The payment service refunds
			// captured payments of cancelled orders; telling it again now that
			// the capture exists makes sure it does.
			// Captured: this capture was seen already. Refunded: nothing is
			// left to give back. A partial refund says nothing of either: a
			// payment.refunded may overtake the payment.processed.
			if o.Payment != nil && (o.Payment.Status == PaymentCaptured || o.Payment.Status == PaymentRefunded) {
				return nil, nil
			}
			again, err := newOrderCancelled(ctx, o, "payment captured after the order was cancelled")
			if err != nil {
				return nil, err
			}
			return &Change{Payment: &p, Events: []events.Envelope{again}}, nil
		default:
			return &Change{Payment: &p}, nil // confirmed already
		}

		// Commit first: if the stock is gone the order must not be confirmed.
		// The row lock held meanwhile keeps a concurrent cancel waiting.
		svcCtx, err := asService(ctx, s.tokens)
		if err != nil {
			return nil, err
		}
		switch err := s.inventory.Commit(svcCtx, o.ID); {
		case errors.Is(err, ErrReservationReleased):
			return paymentChange(ctx, o, StatusCancelled, "reservation_expired before the payment was captured", p)
		case err != nil:
			return nil, fmt.Errorf("commit reservation: %w", err) // retried
		}
		return paymentChange(ctx, o, StatusConfirmed, "payment captured", p)
	})
}

func (s *Saga) paymentFailed(ctx context.Context, tx events.Tx, d events.PaymentFailedPayload) error {
	if err := s.confirmFailed(ctx, d); err != nil {
		return err
	}
	return s.transition(ctx, tx, d.OrderID, events.PaymentFailed, func(o Order) (*Change, error) {
		p := mergePayment(o.Payment, Payment{ID: d.PaymentID, Status: PaymentFailed, FailureCode: d.FailureCode})
		if o.Status != StatusPending {
			return &Change{Payment: &p}, nil
		}
		return paymentChange(ctx, o, StatusCancelled, "payment_failed: "+d.FailureCode, p)
	})
}

func (s *Saga) paymentRefunded(ctx context.Context, tx events.Tx, d events.PaymentRefundedPayload) error {
	if err := s.confirmRefunded(ctx, d); err != nil {
		return err
	}
	return s.transition(ctx, tx, d.OrderID, events.PaymentRefunded, func(o Order) (*Change, error) {
		status := PaymentPartiallyRefunded
		if d.FullyRefunded {
			status = PaymentRefunded
		}
		p := mergePayment(o.Payment, Payment{ID: d.PaymentID, Status: status, RefundedAmount: d.RefundedAmount})
		if !d.FullyRefunded || !o.Status.CanBecome(StatusRefunded) {
			return &Change{Payment: &p}, nil // partial, or a cancelled order's refund
		}
		return paymentChange(ctx, o, StatusRefunded, "payment fully refunded", p)
	})
}

func (s *Saga) reservationExpired(ctx context.Context, tx events.Tx, orderID string) error {
	return s.transition(ctx, tx, orderID, events.InventoryReleased, func(o Order) (*Change, error) {
		if o.Status != StatusPending {
			return nil, nil
		}
		return statusChange(ctx, o, StatusCancelled, "reservation_expired: the payment did not complete in time")
	})
}

// release gives back the stock of a cancelled order. It writes nothing here;
// the inbox row alone records that it was done.
func (s *Saga) release(ctx context.Context, orderID string) error {
	id, ok := validate.ParseUUID(orderID)
	if !ok {
		return nil
	}
	svcCtx, err := asService(ctx, s.tokens)
	if err != nil {
		return err
	}
	if err := s.inventory.Release(svcCtx, id); err != nil {
		return fmt.Errorf("release reservation of order %s: %w", id, err)
	}
	return nil
}

// paymentChange is the status change to "to" that also records the
// payment p as an event about it left it.
func paymentChange(ctx context.Context, o Order, to Status, reason string, p Payment) (*Change, error) {
	c, err := statusChange(ctx, o, to, reason)
	if err != nil {
		return nil, err
	}
	c.Payment = &p
	return c, nil
}
