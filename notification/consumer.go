package notification

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/shared/events"
)

// EventStore is the store side of event handling. Every method works in tx,
// the event consumer's transaction, which also holds the inbox row: the
// notifications exist if and only if the event is marked handled.
type EventStore interface {
	SaveOrderSummary(ctx context.Context, tx events.Tx, o OrderSummary) error
	// RecipientSettings returns the user's preferences (the defaults when
	// none are stored) and whether a push token is registered.
	RecipientSettings(ctx context.Context, tx events.Tx, userID string) (Preferences, bool, error)
	// CreateNotifications inserts ns, leaving out any whose (event, channel)
	// or (dedupe key, channel) is already logged.
	CreateNotifications(ctx context.Context, tx events.Tx, ns []Notification) error
}

// EventHandler is the handler of the service's events.Consumer (group
// "notification"). It only records: one notification per channel of
// channels (those with a configured provider) that the template uses,
// pending or skipped by the user's preferences. The dispatcher sends them
// later, so no provider or user-service call ever holds the consumer's
// transaction.
type EventHandler struct {
	store      EventStore
	configured map[Channel]bool
}

// NewEventHandler returns the handler of the events the service consumes,
// recording through store for channels.
func NewEventHandler(store EventStore, channels []Channel) *EventHandler {
	h := &EventHandler{store: store, configured: map[Channel]bool{}}
	for _, ch := range channels {
		h.configured[ch] = true
	}
	return h
}

// EventTypes are the events the service consumes; the consumer acknowledges
// every other type untouched.
func (h *EventHandler) EventTypes() []string {
	return []string{
		events.UserCreated,
		events.OrderCreated, events.OrderUpdated, events.OrderCancelled,
		events.PaymentProcessed, events.PaymentFailed, events.PaymentRefunded,
	}
}

// errInvalidEvent marks payloads no retry can fix; the consumer retries them
// all the same and then dead-letters them, where an operator sees them.
var errInvalidEvent = errors.New("invalid event payload")

// Handle records the notifications of one event through tx. It is an
// events.HandlerFunc.
func (h *EventHandler) Handle(ctx context.Context, tx events.Tx, e events.Envelope) error {
	switch e.Type {
	case events.UserCreated:
		var d events.UserPayload
		if err := decode(e, &d, ids{"user_id": &d.UserID}); err != nil {
			return err
		}
		return h.notify(ctx, tx, e, d.UserID, TemplateWelcome, "welcome:"+d.UserID, Details{})

	case events.OrderCreated:
		var d events.OrderCreatedPayload
		if err := decode(e, &d, ids{"user_id": &d.UserID, "order_id": &d.OrderID}); err != nil {
			return err
		}
		if err := validOrder(d); err != nil {
			return fmt.Errorf("%w: %s %s: %v", errInvalidEvent, e.Type, e.ID, err)
		}
		if err := h.store.SaveOrderSummary(ctx, tx, OrderSummary{
			OrderID: d.OrderID, OrderNumber: d.OrderNumber, UserID: d.UserID,
			Total: d.TotalAmount, Currency: d.Currency, Items: orderLines(d.Items),
		}); err != nil {
			return err
		}
		return h.notify(ctx, tx, e, d.UserID, TemplateOrderReceived, "order_received:"+d.OrderID,
			Details{OrderID: d.OrderID, OrderNumber: d.OrderNumber, Amount: &d.TotalAmount, Currency: d.Currency})

	case events.OrderUpdated:
		var d events.OrderUpdatedPayload
		if err := decode(e, &d, ids{"user_id": &d.UserID, "order_id": &d.OrderID}); err != nil {
			return err
		}
		tmpl := map[string]string{
			"shipped":   TemplateOrderShipped,
			"delivered": TemplateOrderDelivered,
			// The same message as order.cancelled (same key): whichever of
			// the two arrives first is sent, once.
			"cancelled": TemplateOrderCancelled,
		}[d.Status]
		if tmpl == "" {
			return nil // confirmed comes with payment.processed; others are not news to the user
		}
		return h.notify(ctx, tx, e, d.UserID, tmpl, tmpl+":"+d.OrderID,
			Details{OrderID: d.OrderID, OrderNumber: d.OrderNumber})

	case events.OrderCancelled:
		var d events.OrderCancelledPayload
		if err := decode(e, &d, ids{"user_id": &d.UserID, "order_id": &d.OrderID}); err != nil {
			return err
		}
		return h.notify(ctx, tx, e, d.UserID, TemplateOrderCancelled, TemplateOrderCancelled+":"+d.OrderID,
			Details{OrderID: d.OrderID, Reason: d.Reason})

	case events.PaymentProcessed:
		var d events.PaymentProcessedPayload
		if err := decode(e, &d, ids{"user_id": &d.UserID, "order_id": &d.OrderID}); err != nil {
			return err
		}
		// One confirmation per order, even if a second payment event for it
		// (a retried capture) comes along.
		return h.notify(ctx, tx, e, d.UserID, TemplateOrderConfirmed, TemplateOrderConfirmed+":"+d.OrderID,
			Details{OrderID: d.OrderID, PaymentID: d.PaymentID, Amount: &d.Amount, Currency: d.Currency})

	case events.PaymentFailed:
		var d events.PaymentFailedPayload
		if err := decode(e, &d, ids{"user_id": &d.UserID, "order_id": &d.OrderID}); err != nil {
			return err
		}
		return h.notify(ctx, tx, e, d.UserID, TemplatePaymentFailed, TemplatePaymentFailed+":"+d.OrderID,
			Details{OrderID: d.OrderID, PaymentID: d.PaymentID, FailureCode: d.FailureCode})

	case events.PaymentRefunded:
		var d events.PaymentRefundedPayload
		if err := decode(e, &d, ids{"user_id": &d.UserID, "order_id": &d.OrderID}); err != nil {
			return err
		}
		// Every refund is news (partial refunds may follow one another), so
		// the key is the event's own.
		return h.notify(ctx, tx, e, d.UserID, TemplateRefundIssued, TemplateRefundIssued+":"+e.ID,
			Details{OrderID: d.OrderID, PaymentID: d.PaymentID, Amount: &d.Amount, RefundedAmount: &d.RefundedAmount,
				FullyRefunded: d.FullyRefunded, Currency: d.Currency})
	}
	return nil
}

// notify records the notifications of tmpl for userID, one per configured
// channel the template uses.
func (h *EventHandler) notify(ctx context.Context, tx events.Tx, e events.Envelope, userID, tmpl, key string, d Details) error {
	spec := templateSpecs[tmpl]
	prefs, hasPush, err := h.store.RecipientSettings(ctx, tx, userID)
	if err != nil {
		return err
	}
	var ns []Notification
	for _, ch := range spec.channels {
		if !h.configured[ch] {
			continue // no provider: nothing could ever be sent, so nothing is logged
		}
		n := Notification{
			ID: uuid.NewString(), EventID: e.ID, EventType: e.Type, DedupeKey: key, UserID: userID,
			Channel: ch, Template: tmpl, Details: d, Status: StatusPending,
		}
		switch {
		case !prefs.allows(ch, spec):
			n.Status, n.Error = StatusSkipped, "switched off in the user's preferences"
		case ch == ChannelPush && !hasPush:
			n.Status, n.Error = StatusSkipped, "no push token registered"
		}
		ns = append(ns, n)
	}
	if len(ns) == 0 {
		return nil
	}
	return h.store.CreateNotifications(ctx, tx, ns)
}

// ids names the id fields of a payload that must be UUIDs; decode puts them
// in canonical form.
type ids map[string]*string

func decode(e events.Envelope, v any, required ids) error {
	if err := e.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", errInvalidEvent, err)
	}
	for name, p := range required {
		id, ok := parseID(*p)
		if !ok {
			return fmt.Errorf("%w: %s %s: %s %q is not a UUID", errInvalidEvent, e.Type, e.ID, name, *p)
		}
		*p = id
	}
	return nil
}

// validOrder checks what the order summary's columns and the templates rely on.
func validOrder(d events.OrderCreatedPayload) error {
	switch {
	case strings.TrimSpace(d.OrderNumber) == "" || utf8.RuneCountInString(d.OrderNumber) > 50:
		return errors.New("order_number must be 1 to 50 characters")
	case len(d.Currency) != 3:
		return errors.New("currency must be a three-letter code")
	case len(d.Items) == 0:
		return errors.New("an order has at least one item")
	}
	for i, it := range d.Items {
		if it.Quantity < 1 || it.UnitPrice < 0 {
			return fmt.Errorf("items[%d]: quantity must be positive and unit_price not negative", i)
		}
	}
	return nil
}

// orderLines are the lines of order.created as the order summary keeps them.
func orderLines(items []events.OrderItemPayload) []OrderLine {
	lines := make([]OrderLine, len(items))
	for i, it := range items {
		lines[i] = OrderLine{ProductID: it.ProductID, Name: it.Name, Quantity: it.Quantity, UnitPrice: it.UnitPrice}
		if it.VariantID != nil {
			lines[i].VariantID = *it.VariantID
		}
	}
	return lines
}
