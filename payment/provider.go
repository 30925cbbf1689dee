package payment

import (
	"context"
	"errors"

	"github.com/mercato-dev/mercato/shared/money"
)

// Provider is a card processor. Both calls are idempotent by key, as real
// processors' are, so a call repeated after a failure or a stopped process
// returns the first call's result instead of moving money twice: charges are
// keyed by order id, refunds by "refund:" and the refund's id.
type Provider interface {
	// Name is the provider's name in payments and in its webhook route.
	Name() string
	// Charge starts a charge and returns its id at once; the outcome arrives
	// later through the provider's signed webhook.
	Charge(ctx context.Context, c ProviderCharge) (chargeID string, err error)
	// Refund gives back part of a succeeded charge, synchronously.
	Refund(ctx context.Context, r ProviderRefund) (refundID string, err error)
}

// ChargeFinder is a Provider that can say whether it took a charge under an
// idempotency key. Recovery asks it about a charge call that was abandoned
// without an answer; a provider without it cannot be asked, and such a
// payment is failed (see Recovery).
type ChargeFinder interface {
	// FindCharge returns the id of the charge made under key, or
	// ErrNoSuchCharge when the provider never took one.
	FindCharge(ctx context.Context, idempotencyKey string) (chargeID string, err error)
}

// ErrNoSuchCharge is a ChargeFinder's answer for a key it took no charge
// under.
var ErrNoSuchCharge = errors.New("the provider has no charge under this idempotency key")

// ProviderCharge is a charge as sent to the provider.
type ProviderCharge struct {
	IdempotencyKey string
	PaymentID      string // echoed back in the webhook
	Amount         money.Amount
	Currency       string
	Card           CardDetails
}

// ProviderRefund is a refund as sent to the provider.
type ProviderRefund struct {
	IdempotencyKey string
	ChargeID       string
	Amount         money.Amount
}

// chargeKey is the provider's idempotency key of p's charge: its order, of
// which there is one payment.
func chargeKey(p Payment) string { return p.OrderID }

// refundKey is the provider's idempotency key of the refund with id.
func refundKey(id string) string { return "refund:" + id }

// providerContext bounds a provider call and the recording of its answer.
// It outlives the caller's cancellation: a client that gives up must not
// leave the call half recorded.
func (s *service) providerContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), s.providerTimeout)
}
