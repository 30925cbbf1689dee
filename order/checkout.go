package order

// Checkout: what placing an order asks of the product and payment services
// (Inventory, Payments), and the steps of placing one: reserve, price,
// store, charge.

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/money"
	"github.com/mercato-dev/mercato/shared/validate"
)

// Inventory is the product service's stock reservations as the order
// service uses them. Business answers are the domain errors of service.go
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

// Payments is the payment service: its charge call, and its account of a
// payment, which the saga checks the payment events against.
type Payments interface {
	// Charge asks for c.Amount to be charged to c.Card; the result comes
	// later as payment.processed or payment.failed. Idempotent per order id.
	// A card the payment service refuses is a *RejectedError.
	Charge(ctx context.Context, c Charge) (ChargeResult, error)
	// Payment reads payment id as the payment service has it (ctx carries a
	// service token); ErrUnknownPayment when it has none.
	Payment(ctx context.Context, id string) (PaymentRecord, error)
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

// MaxOrderTotal is the largest total one charge may carry: the payment
// service stores amounts as DECIMAL(10,2).
const MaxOrderTotal = money.Amount(99_999_999_99)

func (s *service) PlaceOrder(ctx context.Context, userID, key string, c Checkout) (Order, error) {
	userID, ok := validate.ParseUUID(userID)
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
	return s.placeOnce(ctx, userID, key, c)
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
