package notification

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/money"
)

// EventTypes are the events the service consumes; the consumer acknowledges
// every other type untouched.
var EventTypes = []string{
	events.UserCreated,
	events.OrderCreated, events.OrderUpdated, events.OrderCancelled,
	events.PaymentProcessed, events.PaymentFailed, events.PaymentRefunded,
}

// EventStore is the store side of event handling. Every method works in tx,
// the event consumer's transaction, which also holds the inbox row: the
// notifications exist if and only if the event is marked handled.
type EventStore interface {
	SaveOrderSummary(ctx context.Context, tx *sqlx.Tx, o OrderSummary) error
	// RecipientSettings returns the user's preferences (the defaults when
	// none are stored) and whether a push token is registered.
	RecipientSettings(ctx context.Context, tx *sqlx.Tx, userID string) (Preferences, bool, error)
	// CreateNotifications inserts ns, leaving out any whose (event, channel)
	// or (dedupe key, channel) is already logged.
	CreateNotifications(ctx context.Context, tx *sqlx.Tx, ns []Notification) error
}

// NewEventHandler returns the handler the event consumer runs for every
// event of EventTypes. It only records: one notification per channel of
// channels (those with a configured provider) that the template uses, pending
// or skipped by the user's preferences. The dispatcher sends them later, so
// no provider or user-service call ever holds the consumer's transaction.
func NewEventHandler(store EventStore, channels []Channel) events.HandlerFunc {
	h := &eventHandler{store: store, configured: map[Channel]bool{}}
	for _, ch := range channels {
		h.configured[ch] = true
	}
	return h.handle
}

type eventHandler struct {
	store      EventStore
	configured map[Channel]bool
}

// Event payloads (the producers' contracts). Unknown fields are ignored, so
// producers may add some.

type userCreatedEvent struct {
	UserID string `json:"user_id"`
}

type orderCreatedEvent struct {
	OrderID     string       `json:"order_id"`
	OrderNumber string       `json:"order_number"`
	UserID      string       `json:"user_id"`
	TotalAmount money.Amount `json:"total_amount"`
	Currency    string       `json:"currency"`
	Items       []OrderLine  `json:"items"`
}

type orderUpdatedEvent struct {
	OrderID     string `json:"order_id"`
	OrderNumber string `json:"order_number"`
	UserID      string `json:"user_id"`
	Status      string `json:"status"`
}

type orderCancelledEvent struct {
	OrderID string `json:"order_id"`
	UserID  string `json:"user_id"`
	Reason  string `json:"reason"`
}

type paymentProcessedEvent struct {
	PaymentID string       `json:"payment_id"`
	OrderID   string       `json:"order_id"`
	UserID    string       `json:"user_id"`
	Amount    money.Amount `json:"amount"`
	Currency  string       `json:"currency"`
}

type paymentFailedEvent struct {
	PaymentID   string `json:"payment_id"`
	OrderID     string `json:"order_id"`
	UserID      string `json:"user_id"`
	FailureCode string `json:"failure_code"`
}

type paymentRefundedEvent struct {
	PaymentID      string       `json:"payment_id"`
	OrderID        string       `json:"order_id"`
	UserID         string       `json:"user_id"`
	Amount         money.Amount `json:"amount"`
	RefundedAmount money.Amount `json:"refunded_amount"`
	FullyRefunded  bool         `json:"fully_refunded"`
	Currency       string       `json:"currency"`
}

// errInvalidEvent marks payloads no retry can fix; the consumer retries them
// all the same and then dead-letters them, where an operator sees them.
var errInvalidEvent = errors.New("invalid event payload")

func (h *eventHandler) handle(ctx context.Context, tx *sqlx.Tx, e events.Envelope) error {
	switch e.Type {
	case events.UserCreated:
		var d userCreatedEvent
		if err := decode(e, &d, ids{"user_id": &d.UserID}); err != nil {
			return err
		}
		return h.notify(ctx, tx, e, d.UserID, TemplateWelcome, "welcome:"+d.UserID, Details{})

	case events.OrderCreated:
		var d orderCreatedEvent
		if err := decode(e, &d, ids{"user_id": &d.UserID, "order_id": &d.OrderID}); err != nil {
			return err
		}
		if err := validOrder(d); err != nil {
			return fmt.Errorf("%w: %s %s: %v", errInvalidEvent, e.Type, e.ID, err)
		}
		if err := h.store.SaveOrderSummary(ctx, tx, OrderSummary{
			OrderID: d.OrderID, OrderNumber: d.OrderNumber, UserID: d.UserID,
			Total: d.TotalAmount, Currency: d.Currency, Items: d.Items,
		}); err != nil {
			return err
		}
		return h.notify(ctx, tx, e, d.UserID, TemplateOrderReceived, "order_received:"+d.OrderID,
			Details{OrderID: d.OrderID, OrderNumber: d.OrderNumber, Amount: &d.TotalAmount, Currency: d.Currency})

	case events.OrderUpdated:
		var d orderUpdatedEvent
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
		var d orderCancelledEvent
		if err := decode(e, &d, ids{"user_id": &d.UserID, "order_id": &d.OrderID}); err != nil {
			return err
		}
		return h.notify(ctx, tx, e, d.UserID, TemplateOrderCancelled, TemplateOrderCancelled+":"+d.OrderID,
			Details{OrderID: d.OrderID, Reason: d.Reason})

	case events.PaymentProcessed:
		var d paymentProcessedEvent
		if err := decode(e, &d, ids{"user_id": &d.UserID, "order_id": &d.OrderID}); err != nil {
			return err
		}
		// One confirmation per order, even if a second payment event for it
		// (a retried capture) comes along.
		return h.notify(ctx, tx, e, d.UserID, TemplateOrderConfirmed, TemplateOrderConfirmed+":"+d.OrderID,
			Details{OrderID: d.OrderID, PaymentID: d.PaymentID, Amount: &d.Amount, Currency: d.Currency})

	case events.PaymentFailed:
		var d paymentFailedEvent
		if err := decode(e, &d, ids{"user_id": &d.UserID, "order_id": &d.OrderID}); err != nil {
			return err
		}
		return h.notify(ctx, tx, e, d.UserID, TemplatePaymentFailed, TemplatePaymentFailed+":"+d.OrderID,
			Details{OrderID: d.OrderID, PaymentID: d.PaymentID, FailureCode: d.FailureCode})

	case events.PaymentRefunded:
		var d paymentRefundedEvent
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
func (h *eventHandler) notify(ctx context.Context, tx *sqlx.Tx, e events.Envelope, userID, tmpl, key string, d Details) error {
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
func validOrder(d orderCreatedEvent) error {
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
