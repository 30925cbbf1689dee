// Package order is the order service of Mercato and the orchestrator of the
// checkout saga: it takes orders with prices from the product service,
// reserves their stock there, asks the payment service to charge the card,
// and moves each order through its states as the payment and inventory
// events come back. The go-kit layers sit in their own files: service.go
// (this file: interface, domain types and errors, the implementation),
// endpoints.go, transport_http.go and middleware.go; checkout.go holds the
// steps of placing an order, idempotency.go its Idempotency-Keys, events.go
// the events it publishes, saga.go the event handlers, upstream.go the
// adapters to the product and payment clients, and package order/postgres
// the repository.
package order

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/defaults"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/money"
	"github.com/mercato-dev/mercato/shared/paging"
	"github.com/mercato-dev/mercato/shared/validate"
)

// ServiceName is the name the service registers in Consul under, puts in
// the source of its events and uses as its consumer group.
const ServiceName = "order"

// Service is what the order service does. The caller's identity comes from
// the verified token, never from the request body.
type Service interface {
	// PlaceOrder reserves the items, stores the order as pending and asks
	// the payment service to charge the card; the outcome arrives later as
	// events. A non-empty idempotencyKey makes a repeat of the same request
	// by the same user answer like the first.
	PlaceOrder(ctx context.Context, userID, idempotencyKey string, c Checkout) (Order, error)
	// ListOrders pages through the caller's orders (every order for an
	// admin), newest first.
	ListOrders(ctx context.Context, caller Caller, f ListFilter) (OrderPage, error)
	// GetOrder returns an order with its items and status history. Another
	// user's order is ErrNotFound.
	GetOrder(ctx context.Context, caller Caller, id string) (Order, error)
	// CancelOrder cancels a pending or confirmed order of the caller (any
	// order for an admin); the saga releases its stock and refunds it.
	CancelOrder(ctx context.Context, caller Caller, id, reason string) (Order, error)
	// SetStatus moves an order along fulfilment (shipped, delivered). Admins only.
	SetStatus(ctx context.Context, id string, status Status) (Order, error)
}

// Caller is who is asking.
type Caller struct {
	UserID string
	Admin  bool
}

// Status is where an order is in its life.
type Status string

// Order statuses (API.md).
const (
	StatusPending   Status = "pending"
	StatusConfirmed Status = "confirmed"
	StatusShipped   Status = "shipped"
	StatusDelivered Status = "delivered"
	StatusCancelled Status = "cancelled"
	StatusRefunded  Status = "refunded"
)

// transitions is the state machine: from → the statuses it may become.
var transitions = map[Status][]Status{
	StatusPending:   {StatusConfirmed, StatusCancelled},
	StatusConfirmed: {StatusShipped, StatusCancelled, StatusRefunded},
	StatusShipped:   {StatusDelivered, StatusRefunded},
	StatusDelivered: {StatusRefunded},
}

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	switch s {
	case StatusPending, StatusConfirmed, StatusShipped, StatusDelivered, StatusCancelled, StatusRefunded:
		return true
	}
	return false
}

// CanBecome reports whether the state machine allows s → next.
func (s Status) CanBecome(next Status) bool {
	for _, to := range transitions[s] {
		if to == next {
			return true
		}
	}
	return false
}

// Order is an order with its lines, totals and, on detail reads, its history.
type Order struct {
	ID              string         `json:"id"`
	OrderNumber     string         `json:"order_number"`
	UserID          string         `json:"user_id"`
	Status          Status         `json:"status"`
	Items           []Item         `json:"items"`
	Subtotal        money.Amount   `json:"subtotal"`
	TaxAmount       money.Amount   `json:"tax_amount"`
	ShippingAmount  money.Amount   `json:"shipping_amount"`
	DiscountAmount  money.Amount   `json:"discount_amount"`
	TotalAmount     money.Amount   `json:"total_amount"`
	Currency        string         `json:"currency"`
	ShippingAddress Address        `json:"shipping_address"`
	BillingAddress  Address        `json:"billing_address"`
	Payment         *Payment       `json:"payment,omitempty"`
	StatusHistory   []StatusChange `json:"status_history,omitempty"`
	CreatedAt       time.Time      `json:"created_at"`
	UpdatedAt       time.Time      `json:"updated_at"`
}

// Item is one line of an order, priced from the catalogue at order time.
type Item struct {
	ID         string       `json:"id"`
	ProductID  string       `json:"product_id"`
	VariantID  *string      `json:"variant_id"`
	SKU        string       `json:"sku"`
	Name       string       `json:"name"`
	Quantity   int          `json:"quantity"`
	UnitPrice  money.Amount `json:"unit_price"`
	TotalPrice money.Amount `json:"total_price"`
}

// Address is a shipping or billing address, shaped like the user service's.
type Address struct {
	Street  string `json:"street"`
	City    string `json:"city"`
	State   string `json:"state"`
	ZipCode string `json:"zip_code"`
	Country string `json:"country"`
}

// Payment statuses as the order service records them from the payment
// service's answers and events.
const (
	PaymentPending           = "pending"
	PaymentCaptured          = "captured"
	PaymentFailed            = "failed"
	PaymentPartiallyRefunded = "partially_refunded"
	PaymentRefunded          = "refunded"
)

// Payment is what the order knows of its payment: never the card itself,
// only what the payment service reports (brand and last four digits).
type Payment struct {
	ID             string       `json:"id,omitempty"`
	Status         string       `json:"status"`
	Card           *CardSummary `json:"card,omitempty"`
	FailureCode    string       `json:"failure_code,omitempty"`
	RefundedAmount money.Amount `json:"refunded_amount"`
}

// CardSummary is the displayable part of a card.
type CardSummary struct {
	Brand string `json:"brand"`
	Last4 string `json:"last4"`
}

// StatusChange is one entry of an order's status history.
type StatusChange struct {
	Status Status    `json:"status"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// Checkout is what a customer submits to place an order.
type Checkout struct {
	Items           []LineRequest
	ShippingAddress Address
	BillingAddress  *Address // nil: the shipping address
	Card            Card
}

// LineRequest asks for quantity units of a product (or one of its variants).
type LineRequest struct {
	ProductID string  `json:"product_id"`
	VariantID *string `json:"variant_id"`
	Quantity  int     `json:"quantity"`
}

// Card is a payment card as the customer typed it. It is passed straight to
// the payment service and never stored or logged here; String hides it from
// any log line that formats a value holding it.
type Card struct {
	Number   string `json:"number"`
	ExpMonth int    `json:"exp_month"`
	ExpYear  int    `json:"exp_year"`
	CVC      string `json:"cvc"`
}

func (c Card) String() string   { return "card(redacted)" }
func (c Card) GoString() string { return c.String() }

// ListFilter selects a page of orders.
type ListFilter struct {
	Status   Status // "" for every status
	Page     int
	PageSize int
}

// OrderPage is one page of orders, newest first.
type OrderPage = paging.Page[Order]

// Domain errors. The transport maps them to status codes with errors.Is.
var (
	ErrNotFound              = errors.New("order not found")
	ErrInvalidTransition     = errors.New("the order cannot make this status change")
	ErrIdempotencyMismatch   = errors.New("this Idempotency-Key was used with a different request")
	ErrIdempotencyInProgress = errors.New("a request with this Idempotency-Key is still being processed; retry shortly")
	ErrOutOfStock            = errors.New("not enough stock for an item")
	ErrUnknownProduct        = errors.New("a product is unknown or not for sale")
	ErrReservationMismatch   = errors.New("a reservation for this order exists with other items")
	ErrReservationReleased   = errors.New("the stock reservation of this order was released or expired")
	ErrPaymentRejected       = errors.New("the payment was rejected")
	ErrMixedCurrencies       = errors.New("the items are priced in different currencies")
	ErrTotalTooLarge         = errors.New("the order total exceeds what can be charged at once")
	ErrUpstreamUnavailable   = errors.New("a service the order depends on is unavailable; retry later")
	ErrOrderNumberTaken      = errors.New("order number already taken")
	ErrOrderExists           = errors.New("an order with this id already exists")
	errUnexpectedReservation = errors.New("the reservation does not match the requested items")
)

// ItemError is a business error about one line of a checkout (not enough
// stock, unknown product), carrying what the client needs to fix it.
type ItemError struct {
	Err       error // ErrOutOfStock or ErrUnknownProduct
	ProductID string
	VariantID string
	Requested int
	Available int
}

func (e *ItemError) Error() string { return fmt.Sprintf("%v: product %s", e.Err, e.ProductID) }
func (e *ItemError) Unwrap() error { return e.Err }

// ErrorDetails is what the error body shows of e: the line, and when out of
// stock how much there is.
func (e *ItemError) ErrorDetails() map[string]any {
	d := map[string]any{"product_id": e.ProductID}
	if e.VariantID != "" {
		d["variant_id"] = e.VariantID
	}
	if errors.Is(e.Err, ErrOutOfStock) {
		d["requested"], d["available"] = e.Requested, e.Available
	}
	return d
}

// RejectedError is the payment service refusing a charge (a card it will
// not take), with its own code and reason.
type RejectedError struct {
	Code    string
	Message string
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("payment rejected: %s: %s", e.Code, e.Message)
}
func (e *RejectedError) Unwrap() error { return ErrPaymentRejected }

// ErrorDetails is what the error body shows of e: the payment service's
// code and reason.
func (e *RejectedError) ErrorDetails() map[string]any {
	return map[string]any{"reason": e.Code, "message": e.Message}
}

// Change is what a status transition or payment update writes: the new
// status ("" keeps it) with the reason recorded in the history, the payment
// fields (nil keeps them) and the events that report it.
type Change struct {
	Status  Status
	Reason  string
	Payment *Payment
	Events  []events.Envelope
}

// Repository stores orders. Methods that take events write them to the
// outbox in the same transaction as the change. Lookups of missing rows
// return ErrNotFound.
type Repository interface {
	// CreateOrder stores a new order with its items and first history entry.
	// It fails with ErrOrderNumberTaken when the number is in use and with
	// ErrOrderExists when the id is.
	CreateOrder(ctx context.Context, o Order, created events.Envelope) (Order, error)
	// OrderByID returns an order with its items and status history.
	OrderByID(ctx context.Context, id string) (Order, error)
	// ListOrders returns a page of orders (with items, without history) of
	// userID ("" for everyone's), newest first, and how many match.
	ListOrders(ctx context.Context, userID string, status Status, offset, limit int) ([]Order, int, error)
	// Transition locks order id, asks decide what to change and stores the
	// change with a history row and its events. decide may return nil for
	// "nothing to do". With a non-nil tx everything happens in it (an event
	// handler's transaction, committed with its inbox row); otherwise in a
	// transaction of its own. It returns the order as it is afterwards.
	Transition(ctx context.Context, tx events.Tx, id string, decide func(Order) (*Change, error)) (Order, error)

	// ClaimIdempotencyKey records the key for the user with the request's
	// hash and a fresh order id, leased to the caller for lease; or, when the
	// key exists, takes it over if it is unfinished and its lease ran out. It
	// returns the record and whether the caller now holds it.
	ClaimIdempotencyKey(ctx context.Context, userID, key string, hash []byte, orderID string, lease time.Duration) (IdempotencyRecord, bool, error)
	// FinishIdempotencyKey stores the request's outcome and marks the key done.
	FinishIdempotencyKey(ctx context.Context, userID, key string, outcome Outcome) error
	// ReleaseIdempotencyKey ends the caller's lease early, so a retry of a
	// request that failed half-way can take over at once.
	ReleaseIdempotencyKey(ctx context.Context, userID, key string) error
}

// Options tune the service. Zero values take the defaults.
type Options struct {
	// RequestHashKey keys the HMAC of a request's body stored beside its
	// Idempotency-Key: the body holds a card number, so its plain hash
	// would be a guessable copy of it. A key of its own, used for nothing
	// else. Required, at least MinRequestHashKeyBytes.
	RequestHashKey []byte
	// PreviousRequestHashKey, when set, is the key request hashes were made
	// with before RequestHashKey (a rotation). Keys stored under it still
	// answer repeats of their request, and an unfinished one still resumes;
	// nothing new is hashed with it. Drop it once such keys are past their
	// retention.
	PreviousRequestHashKey []byte
	// TaxRateBasisPoints is the tax on the subtotal in 1/100 of a percent
	// (825 = 8.25%); default 0.
	TaxRateBasisPoints int
	// ShippingFee is a flat fee per order; default 0.
	ShippingFee money.Amount
	// ReservationTTL is how long stock is held for a payment; default 15m.
	ReservationTTL time.Duration
	// IdempotencyLease is how long a request holds its key before another
	// may take over (the holder crashed); default 30s, longer than any
	// request may run.
	IdempotencyLease time.Duration
	// IdempotencyWait is how long a concurrent duplicate waits for the first
	// request to finish before answering 409; default 5s.
	IdempotencyWait time.Duration
	// PlaceTimeout bounds placing one order; default 20s. Placing runs to
	// the end even when the client goes away, so it never stops half-way by
	// choice.
	PlaceTimeout time.Duration
}

// MinRequestHashKeyBytes is the shortest Options.RequestHashKey accepted
// (HMAC-SHA256 wants 256 bits).
const MinRequestHashKeyBytes = 32

type service struct {
	repo      Repository
	inventory Inventory
	payments  Payments
	tokens    *auth.Tokens
	opts      Options
}

// NewService returns the service backed by repo, calling inventory and
// payments with service tokens issued by tokens.
func NewService(repo Repository, inventory Inventory, payments Payments, tokens *auth.Tokens, opts Options) (Service, error) {
	if len(opts.RequestHashKey) < MinRequestHashKeyBytes {
		return nil, errors.New("order: the request hash key must be at least 32 bytes")
	}
	if opts.TaxRateBasisPoints < 0 || opts.TaxRateBasisPoints > 10_000 {
		return nil, fmt.Errorf("order: tax rate %d basis points outside 0..10000", opts.TaxRateBasisPoints)
	}
	if opts.ShippingFee < 0 {
		return nil, errors.New("order: the shipping fee must not be negative")
	}
	opts.ReservationTTL = defaults.Positive(opts.ReservationTTL, 15*time.Minute)
	opts.IdempotencyLease = defaults.Positive(opts.IdempotencyLease, 30*time.Second)
	opts.IdempotencyWait = defaults.Positive(opts.IdempotencyWait, 5*time.Second)
	opts.PlaceTimeout = defaults.Positive(opts.PlaceTimeout, 20*time.Second)
	return &service{repo: repo, inventory: inventory, payments: payments, tokens: tokens, opts: opts}, nil
}

// asService returns ctx carrying the order service's own token: the
// product and payment services' internal routes take service tokens.
func asService(ctx context.Context, tokens *auth.Tokens) (context.Context, error) {
	tok, err := tokens.ServiceToken(ServiceName)
	if err != nil {
		return nil, fmt.Errorf("service token: %w", err)
	}
	return auth.NewTokenContext(ctx, tok), nil
}

func (s *service) ListOrders(ctx context.Context, caller Caller, f ListFilter) (OrderPage, error) {
	if f.Page < 1 || f.PageSize < 1 {
		return OrderPage{}, fmt.Errorf("order: page %d, size %d: both must be positive", f.Page, f.PageSize)
	}
	owner := ""
	if !caller.Admin {
		var ok bool
		if owner, ok = validate.ParseUUID(caller.UserID); !ok {
			return OrderPage{Items: []Order{}, Page: f.Page, PageSize: f.PageSize}, nil
		}
	}
	orders, total, err := s.repo.ListOrders(ctx, owner, f.Status, (f.Page-1)*f.PageSize, f.PageSize)
	if err != nil {
		return OrderPage{}, err
	}
	return OrderPage{Items: orders, Page: f.Page, PageSize: f.PageSize, Total: total}, nil
}

func (s *service) GetOrder(ctx context.Context, caller Caller, id string) (Order, error) {
	id, ok := validate.ParseUUID(id)
	if !ok {
		return Order{}, ErrNotFound
	}
	o, err := s.repo.OrderByID(ctx, id)
	if err != nil {
		return Order{}, err
	}
	if !caller.Admin && o.UserID != caller.UserID {
		return Order{}, ErrNotFound // not "forbidden": it is none of the caller's business that it exists
	}
	return o, nil
}

func (s *service) CancelOrder(ctx context.Context, caller Caller, id, reason string) (Order, error) {
	id, ok := validate.ParseUUID(id)
	if !ok {
		return Order{}, ErrNotFound
	}
	if reason == "" {
		reason = "cancelled by the customer"
		if caller.Admin {
			reason = "cancelled by an admin"
		}
	}
	return s.repo.Transition(ctx, nil, id, func(o Order) (*Change, error) {
		if !caller.Admin && o.UserID != caller.UserID {
			return nil, ErrNotFound
		}
		return statusChange(ctx, o, StatusCancelled, reason)
	})
}

func (s *service) SetStatus(ctx context.Context, id string, status Status) (Order, error) {
	id, ok := validate.ParseUUID(id)
	if !ok {
		return Order{}, ErrNotFound
	}
	if status != StatusShipped && status != StatusDelivered {
		return Order{}, ErrInvalidTransition // the saga alone confirms, cancels (via cancel) and refunds
	}
	return s.repo.Transition(ctx, nil, id, func(o Order) (*Change, error) {
		return statusChange(ctx, o, status, "set by an admin")
	})
}

// lineKey identifies a line by product and variant.
func lineKey(productID string, variantID *string) string {
	return productID + "/" + defaults.Deref(variantID)
}

// normalizeAddress trims every field, as the service stores them.
func normalizeAddress(a Address) Address {
	for _, f := range []*string{&a.Street, &a.City, &a.State, &a.ZipCode, &a.Country} {
		*f = strings.TrimSpace(*f)
	}
	return a
}
