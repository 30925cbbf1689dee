package order

// Idempotency-Keys of POST /orders: claiming a key and replaying the
// outcome of a finished one. Old keys are deleted by the repository's
// janitor (postgres.Repository.KeyJanitor).

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

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
// Of errors joined, the refusal is the one that refuses: the others failed
// beside it (giving the stock back, say) and are for the log, as the
// transport shows the first answer (httpkit.ToError).
func refusalOf(err error) (*Refusal, bool) {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			if r, ok := refusalOf(e); ok {
				return r, true
			}
		}
		return nil, false
	}
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

// placeOnce places the checkout under the user's Idempotency-Key: the first
// request with the key places the order, and every repeat is answered with
// the stored outcome of the first (or waits for it to be there).
func (s *service) placeOnce(ctx context.Context, userID, key string, c Checkout) (Order, error) {
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

// MinIdempotencyRetention is the shortest time an Idempotency-Key is kept:
// a client may retry a checkout for a day and still get its first answer.
const MinIdempotencyRetention = 24 * time.Hour
