package payment

import (
	"context"
	"encoding/json"

	"github.com/mercato-dev/mercato/shared/events"
)

// WebhookDelivery is a provider's notification as the transport received
// it: the raw body, kept byte for byte because the signature covers it, and
// the event the transport decoded from that body.
type WebhookDelivery struct {
	Provider  string
	Signature string // the Mercato-Signature header
	Body      []byte
	// Event is Body decoded and validated. When Body is no valid event,
	// Event is zero and Invalid says what is wrong: HandleWebhook answers it
	// only after the signature proved the sender, so an unsigned request
	// learns nothing about what would pass.
	Event   WebhookEvent
	Invalid error
}

// WebhookEvent is the body of a provider notification.
type WebhookEvent struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	ChargeID    string `json:"charge_id"`
	PaymentID   string `json:"payment_id"`
	FailureCode string `json:"failure_code,omitempty"`
}

// Webhook event types the sandbox (and any provider adapted to it) sends.
const (
	WebhookChargeSucceeded = "charge.succeeded"
	WebhookChargeFailed    = "charge.failed"
)

func (s *service) HandleWebhook(ctx context.Context, d WebhookDelivery) (Outcome, error) {
	if d.Provider != s.provider.Name() {
		return Outcome{}, ErrNotFound
	}
	if err := VerifyWebhookSignature(s.secret, d.Signature, d.Body, s.now(), s.tolerance); err != nil {
		return Outcome{}, err
	}
	if d.Invalid != nil {
		return Outcome{}, d.Invalid
	}
	evt := d.Event
	var out Outcome
	// The payment is found by the provider's charge id, which is what the
	// provider knows it by, and by the payment id the charge call gave it,
	// when the event carries it back: a webhook may come before the charge
	// call's answer, whose charge id it then records. Without the payment id,
	// one sent before the charge id is recorded finds nothing (404), and the
	// provider sends it again later.
	lock := Lock{ChargeID: evt.ChargeID, Webhook: &WebhookRecord{Provider: d.Provider, EventID: evt.ID, Type: evt.Type}}
	if evt.PaymentID != "" {
		id, ok := parseID(evt.PaymentID)
		if !ok {
			return Outcome{}, ErrNotFound
		}
		lock.PaymentID = id
	}
	p, refund, err := s.repo.UpdatePayment(ctx, lock,
		func(ctx context.Context, p Payment, _ *Refund) (*Change, error) {
			if p.Status != StatusPending {
				// Another event about this charge already settled it; the
				// provider is told it was received, and nothing changes.
				return nil, nil
			}
			out.Changed = true
			now := s.now().UTC()
			// Stored as parsed, not as received: only the fields this
			// service knows, so nothing unexpected lands in the database.
			p.ProcessedAt, p.ProviderResponse = &now, mustJSON(evt)
			if evt.Type == WebhookChargeFailed {
				return s.chargeFailed(ctx, p, evt.FailureCode)
			}
			p.Status, p.CapturedAmount = StatusCompleted, p.Amount
			processed, err := events.New(ctx, ServiceName, events.PaymentProcessed, events.PaymentProcessedPayload{
				PaymentID: p.ID, OrderID: p.OrderID, UserID: p.UserID, Amount: p.Amount, Currency: p.Currency})
			if err != nil {
				return nil, err
			}
			if p.CancelRequestedAt == nil {
				return &Change{Payment: p, Events: []events.Envelope{processed}}, nil
			}
			// The order was cancelled while the charge was pending: the
			// capture is reported as it happened, and its refund recorded
			// with it, to be made once this commits.
			return &Change{Payment: p, Events: []events.Envelope{processed}, Refund: &Refund{
				ID: cancelRefundID(p.ID), PaymentID: p.ID, Amount: p.Amount, Reason: "order cancelled", Status: RefundPending,
			}}, nil
		})
	if err != nil {
		return Outcome{}, err
	}
	out.Payment = p
	if refund != nil && refund.Status == RefundPending {
		// The webhook stays applied whatever the refund call does: should it
		// fail, the refund stays pending for Recovery, or for the order
		// service, which repeats order.cancelled when it learns of the
		// capture, to finish.
		if p, rf, done, err := s.finishRefund(ctx, p, *refund); err == nil {
			out.Payment = p
			if done {
				out.Refund = &rf
			}
		}
	}
	return out, nil
}

// chargeFailed returns the change recording that p's charge failed with
// code, with its payment.failed event.
func (s *service) chargeFailed(ctx context.Context, p Payment, code string) (*Change, error) {
	p.Status, p.FailureCode = StatusFailed, code
	e, err := events.New(ctx, ServiceName, events.PaymentFailed, events.PaymentFailedPayload{
		PaymentID: p.ID, OrderID: p.OrderID, UserID: p.UserID, FailureCode: p.FailureCode})
	if err != nil {
		return nil, err
	}
	return &Change{Payment: p, Events: []events.Envelope{e}}, nil
}

// mustJSON marshals a value that always marshals.
func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
