package order

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mercato-dev/mercato/payment"
	"github.com/mercato-dev/mercato/product"
	"github.com/mercato-dev/mercato/shared/defaults"
	"github.com/mercato-dev/mercato/shared/httpkit"
)

// ReservationClient is the part of the product service's client (product.NewClient)
// the order service uses.
type ReservationClient interface {
	Reserve(ctx context.Context, r product.ReservationRequest) (product.Reservation, bool, error)
	CommitReservation(ctx context.Context, orderID string) (product.Reservation, error)
	ReleaseReservation(ctx context.Context, orderID string) (product.Reservation, error)
}

// ChargeClient is the part of the payment service's client (payment.NewClient)
// the order service uses: the charge, and the read that confirms its events.
type ChargeClient interface {
	Charge(ctx context.Context, r payment.ChargeRequest) (payment.Payment, bool, error)
	GetPayment(ctx context.Context, userID, id string) (payment.Payment, error)
}

// NewInventory returns the product service's reservations as Inventory.
func NewInventory(c ReservationClient) Inventory { return inventory{c} }

// NewPayments returns the payment service's charge call and payment read as
// Payments.
func NewPayments(c ChargeClient) Payments { return payments{c} }

type inventory struct{ c ReservationClient }

func (i inventory) Reserve(ctx context.Context, orderID string, items []LineRequest, ttl time.Duration) (Reservation, error) {
	lines := make([]product.ReservationLine, len(items))
	for n, it := range items {
		lines[n] = product.ReservationLine{ProductID: it.ProductID, VariantID: it.VariantID, Quantity: it.Quantity}
	}
	res, _, err := i.c.Reserve(ctx, product.ReservationRequest{OrderID: orderID, Items: lines, TTL: ttl})
	if err != nil {
		var le *product.LineError
		switch {
		case errors.As(err, &le) && (errors.Is(err, product.ErrOutOfStock) || errors.Is(err, product.ErrUnknownProduct)):
			ie := &ItemError{Err: ErrUnknownProduct, ProductID: le.ProductID, VariantID: defaults.Deref(le.VariantID),
				Requested: le.Requested, Available: le.Available}
			if errors.Is(err, product.ErrOutOfStock) {
				ie.Err = ErrOutOfStock
			}
			return Reservation{}, ie
		case errors.Is(err, product.ErrOutOfStock):
			return Reservation{}, ErrOutOfStock
		case errors.Is(err, product.ErrUnknownProduct):
			return Reservation{}, ErrUnknownProduct
		case errors.Is(err, product.ErrReservationMismatch):
			return Reservation{}, ErrReservationMismatch
		}
		return Reservation{}, upstreamFailure("product", "reserve", err)
	}
	out := Reservation{OrderID: res.OrderID, Live: res.Status == product.StatusReserved, ExpiresAt: res.ExpiresAt,
		Items: make([]ReservedItem, len(res.Items))}
	for n, it := range res.Items {
		out.Items[n] = ReservedItem{ProductID: it.ProductID, VariantID: it.VariantID, SKU: it.SKU, Name: it.Name,
			Quantity: it.Quantity, UnitPrice: it.UnitPrice, Currency: it.Currency}
	}
	return out, nil
}

func (i inventory) Commit(ctx context.Context, orderID string) error {
	_, err := i.c.CommitReservation(ctx, orderID)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, product.ErrReservationReleased):
		return ErrReservationReleased
	case errors.Is(err, product.ErrNotFound):
		// The order was stored only after its stock was reserved, so its
		// reservation cannot be missing unless it was deleted: as good as
		// released.
		return ErrReservationReleased
	}
	return upstreamFailure("product", "commit", err)
}

func (i inventory) Release(ctx context.Context, orderID string) error {
	_, err := i.c.ReleaseReservation(ctx, orderID)
	if err == nil || errors.Is(err, product.ErrNotFound) {
		return nil // nothing held: released is what was wanted
	}
	return upstreamFailure("product", "release", err)
}

type payments struct{ c ChargeClient }

func (p payments) Charge(ctx context.Context, c Charge) (ChargeResult, error) {
	pay, _, err := p.c.Charge(ctx, payment.ChargeRequest{
		OrderID: c.OrderID, UserID: c.UserID, Amount: c.Amount, Currency: c.Currency,
		Card: payment.CardDetails{Number: c.Card.Number, ExpMonth: c.Card.ExpMonth, ExpYear: c.Card.ExpYear, CVC: c.Card.CVC},
	})
	var e *httpkit.Error
	switch {
	case err == nil:
		return ChargeResult{PaymentID: pay.ID, Status: pay.Status, Card: CardSummary{Brand: pay.Card.Brand, Last4: pay.Card.Last4}}, nil
	case errors.As(err, &e) && e.Status == http.StatusUnprocessableEntity:
		// The charge as the payment service judges it; ours checks the card
		// first, so this is rare, and each refusal keeps its own code.
		code, msg := rejection(e)
		return ChargeResult{}, &RejectedError{Code: code, Message: msg}
	case errors.Is(err, payment.ErrPaymentMismatch):
		// The order's payment was asked for another amount: the total is
		// stored before the first charge, so this is a bug, not an outage.
		return ChargeResult{}, fmt.Errorf("charge of order %s: %w", c.OrderID, err)
	}
	return ChargeResult{}, upstreamFailure("payment", "charge", err)
}

// rejection is the code and message a refused charge is reported with: the
// payment service's own code, or for its validation_failed the field that
// failed (invalid_card, invalid_amount, invalid_currency; invalid_charge
// for anything else), with the reasons it gave.
func rejection(e *httpkit.Error) (code, message string) {
	if e.Code != "validation_failed" || len(e.Details) == 0 {
		return e.Code, e.Message
	}
	fields := slices.Sorted(maps.Keys(e.Details))
	reasons := make([]string, len(fields))
	for i, f := range fields {
		reasons[i] = fmt.Sprintf("%s %v", f, e.Details[f])
	}
	code = "invalid_charge"
	for _, f := range []struct{ prefix, code string }{
		{"currency", "invalid_currency"}, {"amount", "invalid_amount"}, {"card", "invalid_card"},
	} {
		for _, name := range fields {
			if name == f.prefix || strings.HasPrefix(name, f.prefix+".") {
				code = f.code
			}
		}
	}
	return code, strings.Join(reasons, "; ")
}

// Payment reads the payment through the route customers read theirs by
// (GET /api/v1/payments/{id}): with the service token it sees every payment,
// and it answers what an event must agree with, so no route of its own is
// needed.
func (p payments) Payment(ctx context.Context, id string) (PaymentRecord, error) {
	pay, err := p.c.GetPayment(ctx, "", id)
	switch {
	case errors.Is(err, payment.ErrNotFound):
		return PaymentRecord{}, ErrUnknownPayment
	case err != nil:
		return PaymentRecord{}, upstreamFailure("payment", "get payment", err)
	}
	return PaymentRecord{ID: pay.ID, OrderID: pay.OrderID, UserID: pay.UserID, Status: paymentStatus(pay.Status),
		Captured: pay.CapturedAmount, Refunded: pay.RefundedAmount, Currency: pay.Currency, FailureCode: pay.FailureCode}, nil
}

// paymentStatus names a payment service's status as the order service
// records it; one it does not know is kept as it is, and confirms nothing.
func paymentStatus(s string) string {
	switch s {
	case payment.StatusPending:
		return PaymentPending
	case payment.StatusCompleted:
		return PaymentCaptured
	case payment.StatusFailed:
		return PaymentFailed
	case payment.StatusPartiallyRefunded:
		return PaymentPartiallyRefunded
	case payment.StatusRefunded:
		return PaymentRefunded
	}
	return "payment service status " + s
}

// upstreamFailure classifies an upstream call's error that is not one of the
// business answers above. A 4xx here (a token refused, a request the
// upstream finds invalid) is a bug or a misconfiguration on our side, so it
// becomes a plain error (a logged 500), never the upstream's status passed
// on to our client as if it were theirs. Anything else — no instance, a
// breaker open, a timeout, a 5xx — means the upstream cannot serve now:
// ErrUpstreamUnavailable (503).
func upstreamFailure(service, call string, err error) error {
	var coded httpkit.Coded
	if errors.As(err, &coded) && coded.StatusCode() < 500 {
		return fmt.Errorf("%s service refused %s: %d %s: %s", service, call, coded.StatusCode(), coded.ErrorCode(), coded.Error())
	}
	return fmt.Errorf("%w: %s %s: %w", ErrUpstreamUnavailable, service, call, err)
}
