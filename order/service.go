// Package order is the order service of Mercato and the orchestrator of the
// checkout saga: it takes orders with prices from the product service,
// reserves their stock there, asks the payment service to charge the card,
// and moves each order through its states as the payment and inventory
// events come back. The go-kit layers sit in their own files: service.go
// (this file: interface, domain types and errors, the implementation),
// endpoints.go, transport_http.go, client.go and middleware.go; saga.go holds
// the event handlers, upstream.go the adapters to the product and payment
// clients, and package order/postgres the repository.
package order

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/money"
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
type OrderPage struct {
	Items    []Order
	Page     int
	PageSize int
	Total    int
}

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

// Inventory is the product service's stock reservations as the order
// service uses them. Business answers are the domain errors above
// (*ItemError, ErrReservationMismatch, ErrReservationReleased); anything
// else is a failure the caller may retry.
type Inventory interface {
	// Reserve holds the items for orderID until ttl passes, all or nothing,
	// and returns them priced. It is idempotent per order id.
	Reserve(ctx context.Context, orderID string, items []LineRequest, ttl time.Duration) (Reservation, error)
	// Commit turns the reservation into a sale. Idempotent.
	Commit(ctx context.Context, orderID string) error
	// Release gives the stock back, committed or not. Idempotent; an unknown
	// reservation is already released.
	Release(ctx context.Context, orderID string) error
}

// Reservation is stock held for an order, priced by the catalogue.
type Reservation struct {
	OrderID   string
	Live      bool // still reserved: not committed, released or expired
	ExpiresAt time.Time
	Items     []ReservedItem
}

// ReservedItem is one reserved line with the catalogue's data.
type ReservedItem struct {
	ProductID string
	VariantID *string
	SKU       string
	Name      string
	Quantity  int
	UnitPrice money.Amount
	Currency  string
}

// Payments is the payment service's charge call.
type Payments interface {
	// Charge asks for c.Amount to be charged to c.Card; the result comes
	// later as payment.processed or payment.failed. Idempotent per order id.
	// A card the payment service refuses is a *RejectedError.
	Charge(ctx context.Context, c Charge) (ChargeResult, error)
}

// Charge is one payment request.
type Charge struct {
	OrderID  string
	UserID   string
	Amount   money.Amount
	Currency string
	Card     Card
}

// ChargeResult is the payment service's acceptance of a charge.
type ChargeResult struct {
	PaymentID string
	Status    string
	Card      CardSummary
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

// IdempotencyRecord is the stored state of one Idempotency-Key of one user.
type IdempotencyRecord struct {
	UserID      string
	Key         string
	RequestHash []byte
	OrderID     string // the id the request's order gets, fixed when the key is first seen
	// Attempted is true when an earlier request already worked under the
	// key (it was taken over), so there may be an order to resume.
	Attempted bool
	Done      bool
	Outcome   Outcome // how the request ended, once Done
}

// Outcome is how a keyed checkout ended, kept with its Idempotency-Key to
// answer every repeat of the request: the order placed, or the business
// error that refused it. It is domain data only; the transport shows a
// repeat exactly as it showed the first answer.
type Outcome struct {
	Order   *Order   `json:"order,omitempty"`
	Refusal *Refusal `json:"refusal,omitempty"`
}

// replay answers a repeat of the request of key with o.
func (o Outcome) replay(key string) (Order, error) {
	switch {
	case o.Refusal != nil && o.Refusal.Unwrap() != nil:
		return Order{}, o.Refusal
	case o.Refusal == nil && o.Order != nil:
		return *o.Order, nil
	}
	return Order{}, fmt.Errorf("the stored outcome of key %q is neither an order nor a known refusal", key)
}

// Refusal is a business error that refused a checkout, as a finished
// Idempotency-Key keeps it: the domain error by its stable code (the API's
// error code), with the message and details (the line, the payment
// service's reason) it was first answered with. A repeat of the request
// returns the Refusal itself: errors.Is finds the domain error in it, so it
// is shown as the original was.
type Refusal struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details,omitempty"`
}

func (r *Refusal) Error() string { return r.Message }

// ErrorDetails is what the first answer showed beyond code and message.
func (r *Refusal) ErrorDetails() map[string]any { return r.Details }

// Unwrap returns the domain error r.Code names; nil for a code it does not know.
func (r *Refusal) Unwrap() error {
	for _, c := range refusalCodes {
		if c.code == r.Code {
			return c.err
		}
	}
	return nil
}

// refusalCodes are the business errors that refuse a checkout for good, by
// their stable codes. The first that an error matches names it, the order
// of precedence of the transport's error table.
var refusalCodes = []struct {
	err  error
	code string
}{
	{ErrNotFound, "not_found"},
	{ErrInvalidTransition, "invalid_transition"},
	{ErrOutOfStock, "out_of_stock"},
	{ErrUnknownProduct, "unknown_product"},
	{ErrReservationMismatch, "reservation_mismatch"},
	{ErrReservationReleased, "reservation_released"},
	{ErrPaymentRejected, "payment_rejected"},
	{ErrMixedCurrencies, "mixed_currencies"},
	{ErrTotalTooLarge, "order_total_too_large"},
}

// refusalOf returns err as a Refusal when it is a business error that
// refuses the checkout for good. Anything else (nil included) is not: a
// failure, such as an upstream that is down, that a retry may get past.
func refusalOf(err error) (*Refusal, bool) {
	for _, c := range refusalCodes {
		if errors.Is(err, c.err) {
			return &Refusal{Code: c.code, Message: err.Error(), Details: errorDetails(err)}, true
		}
	}
	return nil, false
}

// errorDetails is what a business error shows beyond its code and message:
// the ErrorDetails of the first error in its chain that has them (the line
// of an *ItemError, the payment service's reason for a *RejectedError, what
// a *Refusal kept of either); nil for none.
func errorDetails(err error) map[string]any {
	var d interface{ ErrorDetails() map[string]any }
	if errors.As(err, &d) {
		return d.ErrorDetails()
	}
	return nil
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
	// DeleteIdempotencyKeys removes keys created before before, reporting how many.
	DeleteIdempotencyKeys(ctx context.Context, before time.Time) (int, error)
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

// MaxOrderTotal is the largest total one charge may carry: the payment
// service stores amounts as DECIMAL(10,2).
const MaxOrderTotal = money.Amount(99_999_999_99)

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
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&opts.ReservationTTL, 15*time.Minute)
	def(&opts.IdempotencyLease, 30*time.Second)
	def(&opts.IdempotencyWait, 5*time.Second)
	def(&opts.PlaceTimeout, 20*time.Second)
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

func (s *service) PlaceOrder(ctx context.Context, userID, key string, c Checkout) (Order, error) {
	userID, ok := parseID(userID)
	if !ok {
		return Order{}, auth.ErrForbidden // a service token, not a customer
	}
	// Placing an order talks to two services and writes twice; stopping
	// because the client hung up would only leave more to clean up.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.PlaceTimeout)
	defer cancel()
	if key == "" {
		return s.place(ctx, userID, uuid.NewString(), c, false)
	}

	rec, owned, err := s.claim(ctx, userID, key, c)
	if err != nil {
		return Order{}, err
	}
	if !owned {
		return rec.Outcome.replay(key)
	}
	// A key seen for the first time has nothing to resume; one taken over
	// from an attempt that stopped half-way may have.
	o, err := s.place(ctx, userID, rec.OrderID, c, rec.Attempted)
	refusal, final := refusalOf(err)
	if err != nil && !final {
		// A failure half-way (a service down): nothing is answered for the
		// key, so a retry resumes where this attempt stopped, with the same
		// order id, instead of waiting for the lease to run out.
		if rerr := s.repo.ReleaseIdempotencyKey(ctx, userID, key); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return o, err
	}
	outcome := Outcome{Refusal: refusal}
	if err == nil {
		outcome.Order = &o
	}
	if ferr := s.repo.FinishIdempotencyKey(ctx, userID, key, outcome); ferr != nil {
		return Order{}, errors.Join(err, fmt.Errorf("store idempotent response: %w", ferr))
	}
	return o, err
}

// claim takes the key for checkout c, or waits for the request holding it
// to finish.
func (s *service) claim(ctx context.Context, userID, key string, c Checkout) (IdempotencyRecord, bool, error) {
	hash := requestHash(s.opts.RequestHashKey, c)
	deadline := time.Now().Add(s.opts.IdempotencyWait)
	poll := 10 * time.Millisecond
	for {
		rec, owned, err := s.repo.ClaimIdempotencyKey(ctx, userID, key, hash, uuid.NewString(), s.opts.IdempotencyLease)
		switch {
		case err != nil:
			return IdempotencyRecord{}, false, err
		case !hmac.Equal(rec.RequestHash, hash):
			if prev := s.opts.PreviousRequestHashKey; prev != nil && hmac.Equal(rec.RequestHash, requestHash(prev, c)) {
				// The same request, stored before the key was rotated: claim
				// it by its stored hash, so an unfinished one can be taken over.
				hash = rec.RequestHash
				continue
			}
			return IdempotencyRecord{}, false, ErrIdempotencyMismatch
		case owned || rec.Done:
			return rec, owned, nil
		case time.Now().After(deadline):
			return IdempotencyRecord{}, false, ErrIdempotencyInProgress
		}
		select {
		case <-ctx.Done():
			return IdempotencyRecord{}, false, ctx.Err()
		case <-time.After(poll):
		}
		poll = min(2*poll, 200*time.Millisecond)
	}
}

// requestHash identifies a checkout's content for its Idempotency-Key.
// Keyed (HMAC with key), because the content includes the card number.
func requestHash(key []byte, c Checkout) []byte {
	if c.BillingAddress == nil {
		c.BillingAddress = &c.ShippingAddress // the same order either way
	}
	b, _ := json.Marshal(c) // plain data: cannot fail
	m := hmac.New(sha256.New, key)
	m.Write([]byte("mercato order request v1\x00")) // apart from any other use of the key
	m.Write(b)
	return m.Sum(nil)
}

// place runs the checkout for orderID, resuming where an earlier attempt
// with the same Idempotency-Key stopped: reserving and charging are
// idempotent per order id upstream, and an order already stored is not
// stored again.
func (s *service) place(ctx context.Context, userID, orderID string, c Checkout, resume bool) (Order, error) {
	svcCtx, err := asService(ctx, s.tokens)
	if err != nil {
		return Order{}, err
	}
	o, err := Order{}, ErrNotFound
	if resume {
		o, err = s.repo.OrderByID(ctx, orderID)
	}
	switch {
	case errors.Is(err, ErrNotFound):
		if o, err = s.create(ctx, svcCtx, userID, orderID, c); err != nil {
			return Order{}, err
		}
	case err != nil:
		return Order{}, err
	}
	if o.Status != StatusPending || o.Payment != nil {
		return o, nil // charged already, or over (the reservation expired meanwhile)
	}
	return s.charge(ctx, svcCtx, o, c.Card)
}

// create reserves the stock and stores the order priced by the reservation.
// Until the order is stored, a failure leaves at most a reservation that
// expires on its own.
func (s *service) create(ctx, svcCtx context.Context, userID, orderID string, c Checkout) (Order, error) {
	res, err := s.inventory.Reserve(svcCtx, orderID, c.Items, s.opts.ReservationTTL)
	if err != nil {
		return Order{}, err
	}
	if !res.Live {
		// Made by an earlier attempt with this key that stopped before
		// storing the order, and released or expired since: the key's order
		// can no longer be placed; a new key places a new one.
		return Order{}, ErrReservationReleased
	}
	o, err := s.price(userID, orderID, c, res)
	if err != nil {
		// Give the stock back now rather than at expiry; should this fail,
		// expiry still does it.
		if rerr := s.inventory.Release(svcCtx, orderID); rerr != nil {
			err = errors.Join(err, fmt.Errorf("release reservation: %w", rerr))
		}
		return Order{}, err
	}
	// The order number is random; a collision, however rare, only means
	// drawing another.
	for attempt := 0; ; attempt++ {
		o.OrderNumber = newOrderNumber(time.Now())
		created, err := events.New(ctx, ServiceName, events.OrderCreated, newOrderCreated(o))
		if err != nil {
			return Order{}, err
		}
		stored, err := s.repo.CreateOrder(ctx, o, created)
		switch {
		case errors.Is(err, ErrOrderNumberTaken) && attempt < 5:
			continue
		case errors.Is(err, ErrOrderExists):
			// A concurrent attempt with the same key stored it first.
			return s.repo.OrderByID(ctx, orderID)
		}
		return stored, err
	}
}

// price builds the order from the checkout and the catalogue's prices in
// the reservation, and computes its totals.
func (s *service) price(userID, orderID string, c Checkout, res Reservation) (Order, error) {
	// The product service answers with its own line order; the order keeps
	// the customer's. Lines are unique per product and variant (the
	// endpoint refuses repeats), so each request line has one match.
	if len(res.Items) != len(c.Items) {
		return Order{}, errUnexpectedReservation
	}
	reserved := make(map[string]ReservedItem, len(res.Items))
	for _, r := range res.Items {
		reserved[lineKey(r.ProductID, r.VariantID)] = r
	}
	billing := c.ShippingAddress
	if c.BillingAddress != nil {
		billing = *c.BillingAddress
	}
	o := Order{
		ID: orderID, UserID: userID, Status: StatusPending,
		ShippingAddress: c.ShippingAddress, BillingAddress: billing,
	}
	for _, line := range c.Items {
		r, ok := reserved[lineKey(line.ProductID, line.VariantID)]
		if !ok || r.Quantity != line.Quantity {
			return Order{}, errUnexpectedReservation
		}
		if o.Currency == "" {
			o.Currency = r.Currency
		} else if r.Currency != o.Currency {
			return Order{}, ErrMixedCurrencies
		}
		if r.UnitPrice < 0 || r.UnitPrice > MaxOrderTotal {
			return Order{}, errUnexpectedReservation
		}
		total := r.UnitPrice * money.Amount(r.Quantity)
		o.Items = append(o.Items, Item{
			ID: uuid.NewString(), ProductID: r.ProductID, VariantID: r.VariantID, SKU: r.SKU, Name: r.Name,
			Quantity: r.Quantity, UnitPrice: r.UnitPrice, TotalPrice: total,
		})
		o.Subtotal += total
		if o.Subtotal > MaxOrderTotal {
			return Order{}, ErrTotalTooLarge
		}
	}
	o.TaxAmount = percentOf(o.Subtotal, s.opts.TaxRateBasisPoints)
	o.ShippingAmount = s.opts.ShippingFee
	o.DiscountAmount = 0
	o.TotalAmount = o.Subtotal + o.TaxAmount + o.ShippingAmount - o.DiscountAmount
	if o.TotalAmount > MaxOrderTotal {
		return Order{}, ErrTotalTooLarge
	}
	return o, nil
}

// percentOf returns bps/10000 of a, rounded half up to the cent.
func percentOf(a money.Amount, bps int) money.Amount {
	return (a*money.Amount(bps) + 5_000) / 10_000
}

// charge asks the payment service for the order's total and records its
// answer. A card it refuses cancels the order at once (the saga releases
// the stock); a failure leaves the order pending for a retry with the same
// key, or for the reservation to expire.
func (s *service) charge(ctx, svcCtx context.Context, o Order, card Card) (Order, error) {
	res, err := s.payments.Charge(svcCtx, Charge{
		OrderID: o.ID, UserID: o.UserID, Amount: o.TotalAmount, Currency: o.Currency, Card: card,
	})
	var rejected *RejectedError
	switch {
	case errors.As(err, &rejected):
		if _, cerr := s.repo.Transition(ctx, nil, o.ID, func(cur Order) (*Change, error) {
			if cur.Status != StatusPending {
				return nil, nil
			}
			return statusChange(ctx, cur, StatusCancelled, "payment_rejected: "+rejected.Code)
		}); cerr != nil {
			return Order{}, errors.Join(err, cerr)
		}
		return Order{}, err
	case err != nil:
		return o, err
	}
	return s.repo.Transition(ctx, nil, o.ID, func(cur Order) (*Change, error) {
		p := mergePayment(cur.Payment, Payment{ID: res.PaymentID, Status: PaymentPending, Card: &res.Card})
		return &Change{Payment: &p}, nil
	})
}

// mergePayment fills what cur lacks from next and keeps what it has: the
// payment's events may arrive before the charge call's answer is recorded,
// and a later, lesser status must not overwrite them.
func mergePayment(cur *Payment, next Payment) Payment {
	if cur == nil {
		return next
	}
	p := *cur
	if p.ID == "" {
		p.ID = next.ID
	}
	if p.Card == nil {
		p.Card = next.Card
	}
	if paymentRank[next.Status] > paymentRank[p.Status] {
		p.Status = next.Status
	}
	if next.FailureCode != "" {
		p.FailureCode = next.FailureCode
	}
	if next.RefundedAmount > p.RefundedAmount {
		p.RefundedAmount = next.RefundedAmount
	}
	return p
}

// paymentRank orders payment statuses by how far along they are.
var paymentRank = map[string]int{
	"": 0, PaymentPending: 1, PaymentFailed: 2, PaymentCaptured: 2, PaymentPartiallyRefunded: 3, PaymentRefunded: 4,
}

func (s *service) ListOrders(ctx context.Context, caller Caller, f ListFilter) (OrderPage, error) {
	if f.Page < 1 || f.PageSize < 1 {
		return OrderPage{}, fmt.Errorf("order: page %d, size %d: both must be positive", f.Page, f.PageSize)
	}
	owner := ""
	if !caller.Admin {
		var ok bool
		if owner, ok = parseID(caller.UserID); !ok {
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
	id, ok := parseID(id)
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
	id, ok := parseID(id)
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
	id, ok := parseID(id)
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

// Order numbers: "MER-20261129-7K3F9Q". The alphabet leaves out 0/O and
// 1/I/L, which people misread when they type a number from an email.
const orderNumberAlphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"

// newOrderNumber returns a human-friendly number for an order placed at t:
// the day, then 6 random characters (31^6, about 900 million a day).
func newOrderNumber(t time.Time) string {
	var b bytes.Buffer
	b.WriteString("MER-")
	b.WriteString(t.UTC().Format("20060102"))
	b.WriteByte('-')
	raw := make([]byte, 6)
	_, _ = rand.Read(raw) // crypto/rand.Read never fails on Linux
	for _, r := range raw {
		// 256 % 31 = 8: the first 8 characters are very slightly more
		// likely, which does not matter for a number that is not a secret.
		b.WriteByte(orderNumberAlphabet[int(r)%len(orderNumberAlphabet)])
	}
	return b.String()
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

// lineKey identifies a line by product and variant.
func lineKey(productID string, variantID *string) string {
	return productID + "/" + deref(variantID)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// normalizeAddress trims every field, as the service stores them.
func normalizeAddress(a Address) Address {
	for _, f := range []*string{&a.Street, &a.City, &a.State, &a.ZipCode, &a.Country} {
		*f = strings.TrimSpace(*f)
	}
	return a
}
