// Package payment is the payment service of Mercato: it charges orders
// through a card processor behind the Provider interface (a built-in sandbox
// that behaves like an external one, package payment/sandbox), learns the
// outcome from the processor's signed webhook, refunds fully or partially,
// and takes part in the checkout saga through events: payment.processed,
// payment.failed and payment.refunded out, order.cancelled in. The go-kit
// layers sit in their own files: service.go (this file: the interfaces,
// domain types and errors, the constructor and the charge), endpoints.go,
// transport_http.go, client.go and middleware.go. The service's other
// concerns have files named for them: refund.go (refunds, and an order's
// cancellation), webhook.go (the provider's notifications), signing.go (their
// signatures), card.go, provider.go (the card processor's port) and
// recovery.go (provider calls left without an answer); consumer.go holds
// the order.cancelled handler, and package payment/postgres the PostgreSQL
// repository.
//
// A full card number exists only in memory, for the provider call: what is
// stored, logged and shown is the brand and the last four digits.
package payment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/money"
	"github.com/mercato-dev/mercato/shared/paging"
)

// ServiceName is the name the service registers in Consul under, puts in the
// source of its events and uses as its consumer group.
const ServiceName = "payment"

// Service is what the payment service does. Reads take the user whose
// payments the caller may see: a customer's own id, or "" for an admin or
// another service, who see every payment; the transport fills it from the
// verified token, never from the request.
type Service interface {
	// Charge asks the provider to charge an order. It is idempotent by order
	// id: a payment of the order already existing is returned as it is with
	// created false, whatever its status, unless the amount, currency or user
	// differ (ErrPaymentMismatch). A new payment is pending until the
	// provider's webhook says how the charge went.
	//
	// The payment is committed before the provider is called, and the
	// provider's charge id after, so no transaction waits on the provider.
	// When the call fails (ErrProviderFailed) or its process stops, the
	// payment stays pending without a charge id: the order's next Charge
	// makes the call again (the order id is the provider's idempotency key,
	// so the provider answers with the first call's charge, if it took one),
	// and Recovery settles a payment nobody comes back for.
	Charge(ctx context.Context, r ChargeRequest) (p Payment, created bool, err error)

	GetPayment(ctx context.Context, userID, id string) (Payment, error)
	// PaymentByOrder returns the payment of an order, with its refunds.
	PaymentByOrder(ctx context.Context, userID, orderID string) (Payment, error)
	ListPayments(ctx context.Context, q PaymentQuery) (PaymentPage, error)

	// Refund gives back part or all of what a payment captured (an admin's
	// decision). Requests with the same idempotency key are answered with the
	// first one's refund; the same key with another request is
	// ErrIdempotencyMismatch. The refund is committed as pending before the
	// provider is called and completed after; one whose call failed
	// (ErrProviderFailed) or stopped is completed by the next request with
	// its key, or by Recovery. Pending refunds count against what is left to
	// refund, so refunds never exceed the capture.
	Refund(ctx context.Context, r RefundRequest) (RefundResult, error)

	// HandleWebhook applies a provider's signed notification of a charge's
	// outcome. The signature is checked over the raw body first; only then is
	// a body that is no valid event answered (d.Invalid). Each notification
	// is applied once: a repeated one is ErrWebhookReplayed.
	HandleWebhook(ctx context.Context, d WebhookDelivery) (Outcome, error)
}

// OrderCanceller is the part of the service no route serves: the
// order.cancelled handler (EventHandler) drives it.
type OrderCanceller interface {
	// CancelOrderPayment is the payment side of an order's cancellation: a
	// captured payment is refunded in full (what is left of it), a pending
	// one is marked so that its capture is refunded as soon as the webhook
	// confirms it. ErrNotFound when the order has no payment. Idempotent: a
	// repeated call completes a cancellation refund left pending.
	CancelOrderPayment(ctx context.Context, orderID string) (Outcome, error)
}

// Backend is the service as it runs behind its transports: the Service its
// endpoints serve and the OrderCanceller its event handler drives.
// NewService builds one and the middlewares wrap one, so both ways in go
// through the same logging and metrics.
type Backend interface {
	Service
	OrderCanceller
}

// Payment statuses.
const (
	StatusPending           = "pending"
	StatusCompleted         = "completed"
	StatusFailed            = "failed"
	StatusRefunded          = "refunded"
	StatusPartiallyRefunded = "partially_refunded"
)

// MethodCard is the only payment method so far.
const MethodCard = "card"

// Payment is the charge of one order.
type Payment struct {
	ID              string       `json:"id"`
	OrderID         string       `json:"order_id"`
	UserID          string       `json:"user_id"`
	Amount          money.Amount `json:"amount"`
	Currency        string       `json:"currency"`
	Status          string       `json:"status"`
	PaymentMethod   string       `json:"payment_method"`
	PaymentProvider string       `json:"payment_provider"`
	Card            Card         `json:"card"`
	FailureCode     string       `json:"failure_code,omitempty"`
	CapturedAmount  money.Amount `json:"captured_amount"`
	RefundedAmount  money.Amount `json:"refunded_amount"`
	ProcessedAt     *time.Time   `json:"processed_at,omitempty"`
	CreatedAt       time.Time    `json:"created_at"`
	UpdatedAt       time.Time    `json:"updated_at"`
	// Refunds are loaded for a single payment, not for lists; omitzero keeps
	// an empty list as [] on a detail and drops the nil one of a list item.
	Refunds []Refund `json:"refunds,omitzero"`

	// ChargeID is the provider's id of the charge (provider_transaction_id),
	// "" until the provider's answer is recorded.
	ChargeID string `json:"-"`
	// ChargeAttemptedAt is when a provider call for the charge last started.
	// While the charge is awaited (chargeAwaited), an old one means the call
	// was abandoned: Recovery settles the payment.
	ChargeAttemptedAt *time.Time `json:"-"`
	// CancelRequestedAt is set when the order was cancelled: a capture
	// confirmed after it is refunded at once.
	CancelRequestedAt *time.Time `json:"-"`
	// ProviderResponse is the last provider notification applied, as stored.
	ProviderResponse json.RawMessage `json:"-"`
}

// Refundable is what is left to refund: the capture, less what was refunded
// and what the refunds still waiting for the provider will give back. It
// counts p.Refunds, so it needs the payment loaded with them (as Repository
// hands it to a ChangeFunc).
func (p Payment) Refundable() money.Amount {
	left := p.CapturedAmount - p.RefundedAmount
	for _, rf := range p.Refunds {
		if rf.Status == RefundPending {
			left -= rf.Amount
		}
	}
	return left
}

// chargeAwaited reports whether p waits for the provider's answer to its
// charge call: pending with no charge id recorded.
func (p Payment) chargeAwaited() bool { return p.Status == StatusPending && p.ChargeID == "" }

// refund returns p's refund with id, or nil.
func (p Payment) refund(id string) *Refund {
	for i := range p.Refunds {
		if p.Refunds[i].ID == id {
			return &p.Refunds[i]
		}
	}
	return nil
}

// ChargeRequest is an order asking to be paid.
type ChargeRequest struct {
	OrderID  string
	UserID   string
	Amount   money.Amount
	Currency string
	Card     CardDetails
}

// Outcome is what a saga step (a webhook, an order's cancellation) did.
type Outcome struct {
	Payment Payment // after the step
	Changed bool    // the payment's status changed
	Refund  *Refund // the refund the step made, if any
}

// PaymentQuery selects a page of payments, newest first.
type PaymentQuery struct {
	UserID   string // "" for every user's
	OrderID  string // "" for every order's
	Page     int
	PageSize int
}

// PaymentPage is one page of payments.
type PaymentPage = paging.Page[Payment]

// Domain errors. The transport maps them to status codes with errors.Is.
var (
	ErrNotFound              = errors.New("not found")
	ErrPaymentMismatch       = errors.New("the order already has a payment with another amount, currency or user")
	ErrRefundExceedsCaptured = errors.New("the refund exceeds what is left of the captured amount")
	ErrPaymentNotCaptured    = errors.New("only a completed or partially refunded payment can be refunded")
	ErrIdempotencyMismatch   = errors.New("this Idempotency-Key was used for another request")
	ErrInvalidSignature      = errors.New("the webhook signature is missing, malformed or wrong")
	ErrStaleWebhook          = errors.New("the webhook timestamp is too far from now") // as a *StaleWebhookError
	ErrWebhookReplayed       = errors.New("this webhook event was already processed")
	ErrProviderFailed        = errors.New("the payment provider failed")
)

// FailureProcessingError is the failure code of a payment whose charge call
// was abandoned before the provider took it (Recovery).
const FailureProcessingError = "processing_error"

// Change is what a locked payment becomes: its new state, at most one new
// refund, and the events reporting it, stored in one transaction.
type Change struct {
	Payment Payment
	Refund  *Refund
	Events  []events.Envelope
}

// Lock selects the payment Repository.UpdatePayment works on (by one of
// PaymentID, OrderID and ChargeID, or by PaymentID and ChargeID together)
// and what else its transaction holds.
type Lock struct {
	PaymentID string
	OrderID   string
	// ChargeID locks the payment of that provider charge. With PaymentID
	// too, it locks that payment when its charge is ChargeID or still
	// awaited (chargeAwaited), and records ChargeID: a webhook that overtook
	// the answer to the charge call (which then records the same id). A
	// ChargeID another payment holds is ErrNotFound.
	ChargeID string
	// Webhook, when set, is recorded as processed in the transaction; one
	// recorded before fails the update with ErrWebhookReplayed.
	Webhook *WebhookRecord
	// IdempotencyKey, when set, serialises the updates carrying it, and the
	// refund already stored under it is handed to the ChangeFunc.
	IdempotencyKey string
}

// WebhookRecord identifies a processed webhook event.
type WebhookRecord struct {
	Provider string
	EventID  string
	Type     string
}

// ChangeFunc decides what a locked payment becomes. p comes with its
// refunds; prior is the refund stored under Lock.IdempotencyKey, if any. A
// nil Change changes nothing; an error rolls the transaction back. A Change's
// Refund is inserted, or, when p has a refund with its id, stored over it.
type ChangeFunc func(ctx context.Context, p Payment, prior *Refund) (*Change, error)

// Repository stores payments and refunds. Methods that change a payment
// write the events reporting the change to the outbox in the same
// transaction. Lookups of missing rows return ErrNotFound. No method holds a
// transaction open beyond its own statements: the provider is called between
// them.
type Repository interface {
	// CreatePayment stores p, pending and without a charge id, as the
	// payment of its order, its charge attempted now; unless the order has a
	// payment: then it returns that one and false. Concurrent calls for one
	// order wait for each other, so exactly one of them creates.
	CreatePayment(ctx context.Context, p Payment) (Payment, bool, error)
	// ClaimCharge marks the charge of payment id as attempted now, if it is
	// still awaited, and returns the payment and whether it was.
	ClaimCharge(ctx context.Context, id string) (Payment, bool, error)
	// RecordCharge stores chargeID as the charge of payment id (a no-op when
	// it is stored already) and returns the payment with its refunds.
	RecordCharge(ctx context.Context, id, chargeID string) (Payment, error)
	// ClaimAbandonedCharges marks as attempted now, and returns, up to limit
	// payments whose charge is awaited and was last attempted more than age
	// ago, skipping those another transaction holds.
	ClaimAbandonedCharges(ctx context.Context, age time.Duration, limit int) ([]Payment, error)
	// ClaimAbandonedRefunds does the same for pending refunds.
	ClaimAbandonedRefunds(ctx context.Context, age time.Duration, limit int) ([]Refund, error)
	// Payment and PaymentByOrder return the payment with its refunds.
	Payment(ctx context.Context, id string) (Payment, error)
	PaymentByOrder(ctx context.Context, orderID string) (Payment, error)
	ListPayments(ctx context.Context, q PaymentQuery) ([]Payment, int, error)
	// UpdatePayment locks the payment lock selects, calls change with it and
	// stores the Change it returns, all in one transaction. It returns the
	// payment as stored afterwards and the refund the change made, or the
	// prior one when the change was nil.
	UpdatePayment(ctx context.Context, lock Lock, change ChangeFunc) (Payment, *Refund, error)
}

// Options tune the service.
type Options struct {
	// WebhookSecret is the key the provider signs its webhooks with; at
	// least 32 bytes.
	WebhookSecret []byte
	// WebhookTolerance is how far a webhook's timestamp may be from now;
	// default 5 minutes.
	WebhookTolerance time.Duration
	// ProviderTimeout bounds each provider call and the recording of its
	// answer; default DefaultProviderTimeout. Recovery's After must exceed
	// it.
	ProviderTimeout time.Duration
}

// DefaultProviderTimeout is the default Options.ProviderTimeout.
const DefaultProviderTimeout = 30 * time.Second

// MinWebhookSecretBytes is the shortest webhook signing key accepted.
const MinWebhookSecretBytes = 32

type service struct {
	repo            Repository
	provider        Provider
	secret          []byte
	tolerance       time.Duration
	providerTimeout time.Duration
	now             func() time.Time
}

// NewService returns the service storing in repo and charging through
// provider.
func NewService(repo Repository, provider Provider, opts Options) (Backend, error) {
	if len(opts.WebhookSecret) < MinWebhookSecretBytes {
		return nil, fmt.Errorf("payment: webhook secret must be at least %d bytes, got %d", MinWebhookSecretBytes, len(opts.WebhookSecret))
	}
	if opts.WebhookTolerance == 0 {
		opts.WebhookTolerance = 5 * time.Minute
	}
	if opts.WebhookTolerance < 0 {
		return nil, errors.New("payment: webhook tolerance must be positive")
	}
	if opts.ProviderTimeout == 0 {
		opts.ProviderTimeout = DefaultProviderTimeout
	}
	if opts.ProviderTimeout < 0 {
		return nil, errors.New("payment: provider timeout must be positive")
	}
	return &service{repo: repo, provider: provider, secret: opts.WebhookSecret, tolerance: opts.WebhookTolerance,
		providerTimeout: opts.ProviderTimeout, now: time.Now}, nil
}

func (s *service) Charge(ctx context.Context, r ChargeRequest) (Payment, bool, error) {
	orderID, ok1 := parseID(r.OrderID)
	userID, ok2 := parseID(r.UserID)
	if !ok1 || !ok2 || r.Amount <= 0 {
		// The endpoint validates; this guards direct callers.
		return Payment{}, false, fmt.Errorf("payment: charge of order %q: invalid request", r.OrderID)
	}
	p := Payment{
		ID:              uuid.NewString(),
		OrderID:         orderID,
		UserID:          userID,
		Amount:          r.Amount,
		Currency:        r.Currency,
		Status:          StatusPending,
		PaymentMethod:   MethodCard,
		PaymentProvider: s.provider.Name(),
		Card:            r.Card.Card(),
	}
	stored, created, err := s.repo.CreatePayment(ctx, p)
	if err != nil {
		return Payment{}, false, err
	}
	if !created {
		if stored.Amount != p.Amount || stored.Currency != p.Currency || stored.UserID != p.UserID {
			return Payment{}, false, ErrPaymentMismatch
		}
		if !stored.chargeAwaited() {
			return stored, false, nil
		}
		// An earlier request recorded the payment and has not recorded the
		// provider's answer: it failed, stopped, or is still waiting. This
		// request has the card, so it makes the call too; the order id as
		// idempotency key makes the provider answer with the one charge.
		// Claiming first keeps Recovery from failing the payment meanwhile.
		var claimed bool
		if stored, claimed, err = s.repo.ClaimCharge(ctx, stored.ID); err != nil || !claimed {
			return stored, false, err
		}
	}
	if stored, err = s.charge(ctx, stored, r.Card); err != nil {
		return Payment{}, false, err
	}
	return stored, created, nil
}

// charge calls the provider for p, whose payment is recorded and claimed,
// and records the charge id it answers. On failure p stays awaiting its
// charge, for the order's next request or Recovery to finish.
func (s *service) charge(ctx context.Context, p Payment, card CardDetails) (Payment, error) {
	ctx, cancel := s.providerContext(ctx)
	defer cancel()
	chargeID, err := s.provider.Charge(ctx, ProviderCharge{
		IdempotencyKey: chargeKey(p), PaymentID: p.ID, Amount: p.Amount, Currency: p.Currency, Card: card,
	})
	if err != nil {
		return Payment{}, fmt.Errorf("%w: charge: %w", ErrProviderFailed, err)
	}
	return s.repo.RecordCharge(ctx, p.ID, chargeID)
}

func (s *service) GetPayment(ctx context.Context, userID, id string) (Payment, error) {
	return s.visiblePayment(ctx, userID, id, s.repo.Payment)
}

func (s *service) PaymentByOrder(ctx context.Context, userID, orderID string) (Payment, error) {
	return s.visiblePayment(ctx, userID, orderID, s.repo.PaymentByOrder)
}

// visiblePayment loads the payment with id by load, if userID may see it.
func (s *service) visiblePayment(ctx context.Context, userID, id string, load func(context.Context, string) (Payment, error)) (Payment, error) {
	id, ok := parseID(id)
	if !ok {
		return Payment{}, ErrNotFound
	}
	p, err := load(ctx, id)
	if err != nil {
		return Payment{}, err
	}
	return visible(p, userID)
}

// visible hides another user's payment as if it did not exist, so ids
// cannot be probed.
func visible(p Payment, userID string) (Payment, error) {
	if userID != "" && p.UserID != userID {
		return Payment{}, ErrNotFound
	}
	return p, nil
}

func (s *service) ListPayments(ctx context.Context, q PaymentQuery) (PaymentPage, error) {
	if q.Page < 1 || q.PageSize < 1 {
		return PaymentPage{}, fmt.Errorf("payment: page %d, size %d: both must be positive", q.Page, q.PageSize)
	}
	empty := PaymentPage{Items: []Payment{}, Page: q.Page, PageSize: q.PageSize}
	for _, id := range []*string{&q.UserID, &q.OrderID} {
		if *id == "" {
			continue
		}
		var ok bool
		if *id, ok = parseID(*id); !ok {
			return empty, nil // no payment has such an id
		}
	}
	items, total, err := s.repo.ListPayments(ctx, q)
	if err != nil {
		return PaymentPage{}, err
	}
	return PaymentPage{Items: items, Page: q.Page, PageSize: q.PageSize, Total: total}, nil
}

// parseID returns id in canonical form, or false when it is no UUID: such an
// id names no row, and passing it on would only make PostgreSQL reject the
// query with an error that is not "not found".
func parseID(id string) (string, bool) {
	u, err := uuid.Parse(id)
	if err != nil {
		return "", false
	}
	return u.String(), true
}
