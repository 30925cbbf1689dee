// Package events carries domain events between Mercato services over Redis
// Streams without dual writes: producers insert an Envelope into an outbox
// table inside their own transaction (Enqueue), a Relay publishes the outbox
// to the stream, and a Consumer hands each event to a handler inside a
// transaction that also records it in an inbox table, so every effect happens
// once even though delivery is at-least-once.
//
// The payload of every event type is declared here too (payloads.go), once
// for its producer and all its consumers; handlers receive the consumer's
// transaction as a Tx, which service code passes on to its repository.
package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/shared/requestid"
	"github.com/mercato-dev/mercato/shared/validate"
)

// Event types. The seed's types plus those the checkout saga needs.
const (
	UserCreated       = "user.created"
	UserUpdated       = "user.updated"
	ProductCreated    = "product.created"
	ProductUpdated    = "product.updated"
	OrderCreated      = "order.created"
	OrderUpdated      = "order.updated"
	OrderCancelled    = "order.cancelled"
	PaymentProcessed  = "payment.processed"
	PaymentFailed     = "payment.failed"
	PaymentRefunded   = "payment.refunded"
	InventoryReleased = "inventory.released"
	InventoryLowStock = "inventory.low_stock"
)

// Envelope is the wire format of every event: who said what, when, in answer
// to which request, with the type-specific payload in Data.
type Envelope struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	Source    string    `json:"source"`
	Timestamp time.Time `json:"timestamp"`
	RequestID string    `json:"request_id,omitempty"`
	// TraceContext is the W3C trace context (traceparent, tracestate) of
	// the relay's span that published the event, which consumers continue;
	// set by the relay, from the producer's trace (tracing.ToMap).
	TraceContext map[string]string `json:"trace_context,omitempty"`
	Data         json.RawMessage   `json:"data"`
}

// New builds an envelope with a fresh id, the current UTC time and the
// request id carried by ctx, marshalling data as the payload.
func New(ctx context.Context, source, typ string, data any) (Envelope, error) {
	if typ == "" {
		return Envelope{}, errors.New("events: empty event type")
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return Envelope{}, fmt.Errorf("events: marshal %s data: %w", typ, err)
	}
	return Envelope{
		ID:        uuid.NewString(),
		Type:      typ,
		Source:    source,
		Timestamp: time.Now().UTC(),
		RequestID: requestid.FromContext(ctx),
		Data:      raw,
	}, nil
}

// Decode unmarshals the payload into v.
func (e Envelope) Decode(v any) error {
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("events: decode %s %s: %w", e.Type, e.ID, err)
	}
	return nil
}

// validate rejects envelopes that could not be stored or deduplicated: the
// id is the outbox primary key and the consumers' inbox key, so it must be a
// UUID in the form PostgreSQL's uuid type takes, as every relay writes it
// (uuid.Parse alone also takes "urn:uuid:…", which PostgreSQL refuses).
func (e Envelope) validate() error {
	if _, ok := validate.ParseUUID(e.ID); !ok {
		return fmt.Errorf("events: envelope id %q is not a UUID", e.ID)
	}
	if e.Type == "" {
		return fmt.Errorf("events: envelope %s has no type", e.ID)
	}
	return nil
}
