package payment

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/money"
)

// Refund is money given back from a payment.
type Refund struct {
	ID               string       `json:"id"`
	PaymentID        string       `json:"payment_id"`
	Amount           money.Amount `json:"amount"`
	Reason           string       `json:"reason,omitempty"`
	Status           string       `json:"status"`
	ProviderRefundID string       `json:"provider_refund_id"`
	ProcessedAt      *time.Time   `json:"processed_at,omitempty"`
	CreatedAt        time.Time    `json:"created_at"`
	UpdatedAt        time.Time    `json:"updated_at"`

	// IdempotencyKey and RequestHash identify the request that made the
	// refund, so a retry is recognised and a reuse for another request
	// refused.
	IdempotencyKey string `json:"-"`
	RequestHash    []byte `json:"-"`
	// AttemptedAt is when a provider call for the refund last started; an
	// old one on a pending refund means the call was abandoned.
	AttemptedAt *time.Time `json:"-"`
}

// Refund statuses. Refunds are synchronous with the provider: a refund is
// pending from its recording until the provider's answer is (moments, unless
// the call failed or its process stopped), then completed. The seed's
// "failed" is kept for a provider that confirms refunds later.
const (
	RefundPending   = "pending"
	RefundCompleted = "completed"
)

// RefundRequest is an admin's refund. A zero Amount refunds everything left.
type RefundRequest struct {
	PaymentID      string
	Amount         money.Amount
	Reason         string
	IdempotencyKey string // optional
}

// RefundResult is a refund and the payment after it.
type RefundResult struct {
	Refund  Refund
	Payment Payment
	// Replayed is true when an earlier request with the same idempotency key
	// made the refund and this one changed nothing.
	Replayed bool
}

// refundHash fingerprints a refund request, so a retry under the same key is
// told apart from a different request reusing it.
func refundHash(r RefundRequest) []byte {
	h := sha256.Sum256([]byte(r.PaymentID + "\x00" + r.Amount.String() + "\x00" + r.Reason))
	return h[:]
}

// refundNamespace derives refund ids from idempotency keys.
var refundNamespace = uuid.MustParse("9b0e6c1e-3f4a-4d8e-9a57-2f1d6c3b8e01")

func (s *service) Refund(ctx context.Context, r RefundRequest) (RefundResult, error) {
	id, ok := parseID(r.PaymentID)
	if !ok {
		return RefundResult{}, ErrNotFound
	}
	r.PaymentID = id
	hash := refundHash(r)
	refundID := uuid.NewString()
	if r.IdempotencyKey != "" {
		// The same id on every retry of a request, and so the same key at
		// the provider: a retry after a failed commit finds the provider's
		// refund instead of making a second one.
		refundID = uuid.NewSHA1(refundNamespace, []byte("key:"+r.IdempotencyKey)).String()
	}
	var replayed bool
	p, refund, err := s.repo.UpdatePayment(ctx, Lock{PaymentID: id, IdempotencyKey: r.IdempotencyKey},
		func(ctx context.Context, p Payment, prior *Refund) (*Change, error) {
			if prior != nil {
				if !hmac.Equal(prior.RequestHash, hash) {
					return nil, ErrIdempotencyMismatch
				}
				// The first request's refund: an answer to replay or, still
				// pending, a provider call to finish below.
				replayed = prior.Status != RefundPending
				return nil, nil
			}
			if p.Status != StatusCompleted && p.Status != StatusPartiallyRefunded {
				return nil, ErrPaymentNotCaptured
			}
			amount := r.Amount
			if amount == 0 {
				amount = p.Refundable()
			}
			if amount <= 0 || amount > p.Refundable() {
				return nil, ErrRefundExceedsCaptured
			}
			// Recorded first, pending: it holds its amount against other
			// refunds while the provider is called, after the commit.
			return &Change{Payment: p, Refund: &Refund{
				ID: refundID, PaymentID: p.ID, Amount: amount, Reason: r.Reason, Status: RefundPending,
				IdempotencyKey: r.IdempotencyKey, RequestHash: hash,
			}}, nil
		})
	if err != nil {
		return RefundResult{}, err
	}
	if refund == nil {
		return RefundResult{}, fmt.Errorf("payment: refund of %s: nothing stored", id)
	}
	if refund.Status == RefundPending {
		var done bool
		if p, *refund, done, err = s.finishRefund(ctx, p, *refund); err != nil {
			return RefundResult{}, err
		}
		replayed = !done
	}
	return RefundResult{Refund: *refund, Payment: p, Replayed: replayed}, nil
}

// finishRefund has the provider make rf, a pending refund of p, and records
// its answer, completing rf. The call may repeat one that failed or stopped
// before its answer was recorded: the refund's key makes the provider answer
// with the first call's refund. done is false when another call completed
// rf meanwhile. On failure rf stays pending, for its key's next request or
// Recovery to finish.
func (s *service) finishRefund(ctx context.Context, p Payment, rf Refund) (Payment, Refund, bool, error) {
	ctx, cancel := s.providerContext(ctx)
	defer cancel()
	providerID, err := s.provider.Refund(ctx, ProviderRefund{IdempotencyKey: refundKey(rf.ID), ChargeID: p.ChargeID, Amount: rf.Amount})
	if err != nil {
		return Payment{}, Refund{}, false, fmt.Errorf("%w: refund: %w", ErrProviderFailed, err)
	}
	done := false
	p, _, err = s.repo.UpdatePayment(ctx, Lock{PaymentID: p.ID}, func(ctx context.Context, p Payment, _ *Refund) (*Change, error) {
		cur := p.refund(rf.ID)
		switch {
		case cur == nil:
			return nil, fmt.Errorf("payment %s: refund %s is not stored", p.ID, rf.ID)
		case cur.Status != RefundPending:
			return nil, nil
		}
		done = true
		return s.refunded(ctx, p, *cur, providerID)
	})
	if err != nil {
		return Payment{}, Refund{}, false, err
	}
	stored := p.refund(rf.ID)
	if stored == nil {
		return Payment{}, Refund{}, false, fmt.Errorf("payment %s: refund %s is not stored", p.ID, rf.ID)
	}
	return p, *stored, done, nil
}

// refunded returns the change completing rf, a pending refund of p, with the
// provider's id for it, and its payment.refunded event.
func (s *service) refunded(ctx context.Context, p Payment, rf Refund, providerID string) (*Change, error) {
	now := s.now().UTC()
	rf.Status, rf.ProviderRefundID, rf.ProcessedAt = RefundCompleted, providerID, &now
	p.RefundedAmount += rf.Amount
	p.Status = StatusPartiallyRefunded
	if p.RefundedAmount == p.CapturedAmount {
		p.Status = StatusRefunded
	}
	evt, err := events.New(ctx, ServiceName, events.PaymentRefunded, events.PaymentRefundedPayload{
		PaymentID: p.ID, OrderID: p.OrderID, UserID: p.UserID, Amount: rf.Amount,
		RefundedAmount: p.RefundedAmount, FullyRefunded: p.Status == StatusRefunded, Currency: p.Currency,
	})
	if err != nil {
		return nil, err
	}
	return &Change{Payment: p, Refund: &rf, Events: []events.Envelope{evt}}, nil
}

// cancelRefundID is the one refund an order's cancellation makes of a
// payment, the same on every attempt: whichever of the webhook and the
// order.cancelled consumer gets there first makes it, and a redelivered
// event finds it made.
func cancelRefundID(paymentID string) string {
	return uuid.NewSHA1(refundNamespace, []byte("cancel:"+paymentID)).String()
}

func (s *service) CancelOrderPayment(ctx context.Context, orderID string) (Outcome, error) {
	orderID, ok := parseID(orderID)
	if !ok {
		return Outcome{}, ErrNotFound
	}
	var left *Refund // the cancellation's refund, recorded before and still pending
	p, refund, err := s.repo.UpdatePayment(ctx, Lock{OrderID: orderID},
		func(ctx context.Context, p Payment, _ *Refund) (*Change, error) {
			requested := p.CancelRequestedAt != nil
			if !requested {
				now := s.now().UTC()
				p.CancelRequestedAt = &now
			}
			if rf := p.refund(cancelRefundID(p.ID)); rf != nil {
				// Made already; or recorded by a call that stopped before
				// the provider's answer, and finished below.
				if rf.Status == RefundPending {
					left = rf
				}
				return nil, nil
			}
			switch {
			case (p.Status == StatusCompleted || p.Status == StatusPartiallyRefunded) && p.Refundable() > 0:
				// Recorded pending; the provider is called after the commit.
				return &Change{Payment: p, Refund: &Refund{
					ID: cancelRefundID(p.ID), PaymentID: p.ID, Amount: p.Refundable(), Reason: "order cancelled", Status: RefundPending,
				}}, nil
			case requested:
				return nil, nil // a redelivered event: already noted
			default:
				// Pending: the webhook refunds the capture, if one comes.
				// Failed or refunded: no money is held; the mark is a record.
				// Captured, with all that is left in refunds under way:
				// those give it back.
				return &Change{Payment: p}, nil
			}
		})
	if err != nil {
		return Outcome{}, err
	}
	if refund == nil || refund.Status != RefundPending {
		refund = left
	}
	if refund == nil {
		return Outcome{Payment: p}, nil
	}
	p, rf, done, err := s.finishRefund(ctx, p, *refund)
	if err != nil {
		return Outcome{}, err
	}
	out := Outcome{Payment: p, Changed: done}
	if done {
		out.Refund = &rf
	}
	return out, nil
}
