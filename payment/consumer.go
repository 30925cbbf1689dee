package payment

import (
	"context"
	"errors"
	"fmt"

	"github.com/mercato-dev/mercato/shared/events"
)

// EventHandler is the handler of the payment service's events.Consumer
// (group "payment"): on order.cancelled it calls CancelOrderPayment,
// which refunds a captured payment or, while the charge is pending, marks it
// to be refunded as soon as it is captured.
//
// The refund commits in the service's own transaction rather than the
// consumer's tx, so it goes through the service's middlewares like any call;
// the inbox row commits right after. If the process dies between the two,
// the redelivered event finds the payment refunded (or marked) and does
// nothing: the method is idempotent, and the cancellation's refund has one
// fixed id.
type EventHandler struct {
	svc OrderCanceller
}

// NewEventHandler returns the handler of the events the service consumes,
// calling svc (the service with its middlewares).
func NewEventHandler(svc OrderCanceller) *EventHandler { return &EventHandler{svc: svc} }

// EventTypes are the events the service consumes.
func (h *EventHandler) EventTypes() []string { return []string{events.OrderCancelled} }

// Handle applies one event. It is an events.HandlerFunc; tx is unused (see
// EventHandler).
func (h *EventHandler) Handle(ctx context.Context, _ events.Tx, e events.Envelope) error {
	if e.Type != events.OrderCancelled {
		return nil
	}
	var data events.OrderCancelledPayload
	if err := e.Decode(&data); err != nil {
		return err
	}
	if _, ok := parseID(data.OrderID); !ok {
		// Retried, then dead-lettered for someone to look at.
		return fmt.Errorf("order.cancelled %s: order_id %q is not a UUID", e.ID, data.OrderID)
	}
	_, err := h.svc.CancelOrderPayment(ctx, data.OrderID)
	if errors.Is(err, ErrNotFound) {
		return nil // the order never got to payment: nothing is held
	}
	return err
}
