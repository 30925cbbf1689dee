package order

// The events the order service publishes through the outbox, built with
// the change that they report.

import (
	"context"

	"github.com/mercato-dev/mercato/shared/events"
)

// statusChange moves o to status if the state machine allows it, with the
// events that report it: order.updated always, order.cancelled as well for
// a cancellation (the saga's own consumer releases the stock on it, and the
// payment service refunds a captured payment).
func statusChange(ctx context.Context, o Order, to Status, reason string) (*Change, error) {
	if !o.Status.CanBecome(to) {
		return nil, ErrInvalidTransition
	}
	updated, err := events.New(ctx, ServiceName, events.OrderUpdated, events.OrderUpdatedPayload{
		OrderID: o.ID, OrderNumber: o.OrderNumber, UserID: o.UserID, Status: string(to), PreviousStatus: string(o.Status),
	})
	if err != nil {
		return nil, err
	}
	c := &Change{Status: to, Reason: reason, Events: []events.Envelope{updated}}
	if to == StatusCancelled {
		cancelled, err := newOrderCancelled(ctx, o, reason)
		if err != nil {
			return nil, err
		}
		c.Events = append(c.Events, cancelled)
	}
	return c, nil
}

// newOrderCreated is the payload of order.created for o.
func newOrderCreated(o Order) events.OrderCreatedPayload {
	e := events.OrderCreatedPayload{OrderID: o.ID, OrderNumber: o.OrderNumber, UserID: o.UserID,
		TotalAmount: o.TotalAmount, Currency: o.Currency, Items: make([]events.OrderItemPayload, len(o.Items))}
	for i, it := range o.Items {
		e.Items[i] = events.OrderItemPayload{ProductID: it.ProductID, VariantID: it.VariantID, Name: it.Name,
			Quantity: it.Quantity, UnitPrice: it.UnitPrice}
	}
	return e
}

// newOrderCancelled builds order.cancelled for o.
func newOrderCancelled(ctx context.Context, o Order, reason string) (events.Envelope, error) {
	return events.New(ctx, ServiceName, events.OrderCancelled, events.OrderCancelledPayload{OrderID: o.ID, UserID: o.UserID, Reason: reason})
}
