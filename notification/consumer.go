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
		events.PaymentFailed, events.PaymentRefunded,
	}
}

// errInvalidEvent marks payloads no retry can fix; the consumer retries them
// all the same and then dead-letters them, where an operator sees them.
var errInvalidEvent = errors.New("invalid event payload")

// message is what one event asks to be told: template to user, named by
// subject (what makes two messages the same one), with details.
type message struct {
	user     string
	template string
	subject  string
	details  Details
}

// key is the message's dedupe key, e.g. order_confirmed:<order id>.
func (m message) key() string { return m.template + ":" + m.subject }

// Handle records the notifications of one event through tx. It is an
// events.HandlerFunc.
func (h *EventHandler) Handle(ctx context.Context, tx events.Tx, e events.Envelope) error {
	m, err := h.message(ctx, tx, e)
	if err != nil || m.template == "" {
		return err
	}
	return h.notify(ctx, tx, e, m)
}

// message decodes e into the message it asks for; a message without a
// template asks for nothing. order.created also keeps the order summary
// through tx.
func (h *EventHandler) message(ctx context.Context, tx events.Tx, e events.Envelope) (message, error) {
	switch e.Type {
	case events.UserCreated:
		var d events.UserPayload
		err := decode(e, &d, ids{"user_id": &d.UserID})
		return message{user: d.UserID, template: TemplateWelcome, subject: d.UserID}, err

	case events.OrderCreated:
		var d events.OrderCreatedPayload
		if err := decode(e, &d, orderIDs(&d.UserID, &d.OrderID)); err != nil {
			return message{}, err
		}
		if err := validOrder(d); err != nil {
			return message{}, fmt.Errorf("%w: %s %s: %v", errInvalidEvent, e.Type, e.ID, err)
		}
		err := h.store.SaveOrderSummary(ctx, tx, OrderSummary{
			OrderID: d.OrderID, OrderNumber: d.OrderNumber, UserID: d.UserID,
			Total: d.TotalAmount, Currency: d.Currency, Items: orderLines(d.Items),
		})
		return message{user: d.UserID, template: TemplateOrderReceived, subject: d.OrderID,
			details: Details{OrderID: d.OrderID, OrderNumber: d.OrderNumber, Amount: &d.TotalAmount, Currency: d.Currency}}, err

	case events.OrderUpdated:
		var d events.OrderUpdatedPayload
		err := decode(e, &d, orderIDs(&d.UserID, &d.OrderID))
		// Other statuses are not news to the user (no template: nothing is
		// recorded).
		tmpl := map[string]string{
			// The order's own word, not payment.processed's: a payment
			// captured for an order cancelled meanwhile (or whose
			// reservation expired) confirms nothing. The amount is the
			// order summary's total.
			"confirmed": TemplateOrderConfirmed,
			"shipped":   TemplateOrderShipped,
			"delivered": TemplateOrderDelivered,
			// The same message as order.cancelled (same key): whichever of
			// the two arrives first is sent, once.
			"cancelled": TemplateOrderCancelled,
		}[d.Status]
		return message{user: d.UserID, template: tmpl, subject: d.OrderID,
			details: Details{OrderID: d.OrderID, OrderNumber: d.OrderNumber}}, err

	case events.OrderCancelled:
		var d events.OrderCancelledPayload
		err := decode(e, &d, orderIDs(&d.UserID, &d.OrderID))
		return message{user: d.UserID, template: TemplateOrderCancelled, subject: d.OrderID,
			details: Details{OrderID: d.OrderID, Reason: d.Reason}}, err

	case events.PaymentFailed:
		var d events.PaymentFailedPayload
		err := decode(e, &d, orderIDs(&d.UserID, &d.OrderID))
		return message{user: d.UserID, template: TemplatePaymentFailed, subject: d.OrderID,
			details: Details{OrderID: d.OrderID, PaymentID: d.PaymentID, FailureCode: d.FailureCode}}, err

	case events.PaymentRefunded:
		var d events.PaymentRefundedPayload
		err := decode(e, &d, orderIDs(&d.UserID, &d.OrderID))
		// Every refund is news (partial refunds may follow one another), so
		// the subject is the event itself.
		return message{user: d.UserID, template: TemplateRefundIssued, subject: e.ID,
			details: Details{OrderID: d.OrderID, PaymentID: d.PaymentID, Amount: &d.Amount, RefundedAmount: &d.RefundedAmount,
				FullyRefunded: d.FullyRefunded, Currency: d.Currency}}, err
	}
	return message{}, nil
}

// notify records the notifications of m, one per configured channel its
// template uses.
func (h *EventHandler) notify(ctx context.Context, tx events.Tx, e events.Envelope, m message) error {
	spec := templateSpecs[m.template]
	prefs, hasPush, err := h.store.RecipientSettings(ctx, tx, m.user)
	if err != nil {
		return err
	}
	var ns []Notification
	for _, ch := range spec.channels {
		if !h.configured[ch] {
			continue // no provider: nothing could ever be sent, so nothing is logged
		}
		n := Notification{
			ID: uuid.NewString(), EventID: e.ID, EventType: e.Type, DedupeKey: m.key(), UserID: m.user,
			Channel: ch, Template: m.template, Details: m.details, Status: StatusPending,
		}
		switch {
		case !prefs.allows(ch, spec):
			n.Status, n.Error = StatusSkipped, switchedOff
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

// orderIDs are the ids every order and payment event carries.
func orderIDs(userID, orderID *string) ids { return ids{"user_id": userID, "order_id": orderID} }

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
