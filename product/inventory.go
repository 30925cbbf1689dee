package product

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mercato-dev/mercato/shared/defaults"
	"github.com/mercato-dev/mercato/shared/validate"
	"github.com/mercato-dev/mercato/shared/wait"
)

func (s *service) Reserve(ctx context.Context, r ReservationRequest) (Reservation, bool, error) {
	orderID, ok := validate.ParseUUID(r.OrderID)
	if !ok {
		return Reservation{}, false, fmt.Errorf("product: order id %q is not a UUID", r.OrderID)
	}
	lines, err := MergeLines(r.Items)
	if err != nil {
		return Reservation{}, false, err
	}
	ttl := r.TTL
	if ttl == 0 {
		ttl = DefaultReservationTTL
	}
	if ttl < MinReservationTTL || ttl > MaxReservationTTL {
		return Reservation{}, false, fmt.Errorf("product: reservation ttl %s outside %s..%s", ttl, MinReservationTTL, MaxReservationTTL)
	}
	res, created, err := s.repo.Reserve(ctx, orderID, lines, ttl)
	if err != nil {
		return Reservation{}, false, err
	}
	if !created && !sameLines(res.Items, lines) {
		return Reservation{}, false, ErrReservationMismatch
	}
	return res, created, nil
}

// MergeLines returns lines with the ids in canonical form, lines of the same
// product and variant merged into one, sorted by product then variant (no
// variant first): the order stock is locked in, and the order reservation
// items are compared and shown in. An id that is no UUID names no product:
// ErrUnknownProduct.
func MergeLines(lines []ReservationLine) ([]ReservationLine, error) {
	type key struct{ product, variant string }
	merged := map[key]int{}
	for _, l := range lines {
		if l.Quantity <= 0 {
			return nil, fmt.Errorf("product: quantity %d of product %s must be positive", l.Quantity, l.ProductID)
		}
		p, ok := validate.ParseUUID(l.ProductID)
		if !ok {
			return nil, &LineError{Err: ErrUnknownProduct, ProductID: l.ProductID, VariantID: l.VariantID, Requested: l.Quantity}
		}
		k := key{product: p}
		if l.VariantID != nil {
			v, ok := validate.ParseUUID(*l.VariantID)
			if !ok {
				return nil, &LineError{Err: ErrUnknownProduct, ProductID: p, VariantID: l.VariantID, Requested: l.Quantity}
			}
			k.variant = v
		}
		merged[k] += l.Quantity
	}
	out := make([]ReservationLine, 0, len(merged))
	for k, q := range merged {
		l := ReservationLine{ProductID: k.product, Quantity: q}
		if k.variant != "" {
			v := k.variant
			l.VariantID = &v
		}
		out = append(out, l)
	}
	slices.SortFunc(out, compareLines)
	return out, nil
}

func compareLines(a, b ReservationLine) int {
	if c := strings.Compare(a.ProductID, b.ProductID); c != 0 {
		return c
	}
	return strings.Compare(defaults.Deref(a.VariantID), defaults.Deref(b.VariantID))
}

// sameLines reports whether a reservation's items are exactly lines (both
// merged and sorted).
func sameLines(items []ReservedItem, lines []ReservationLine) bool {
	if len(items) != len(lines) {
		return false
	}
	for i, it := range items {
		l := lines[i]
		if it.ProductID != l.ProductID || defaults.Deref(it.VariantID) != defaults.Deref(l.VariantID) || it.Quantity != l.Quantity {
			return false
		}
	}
	return true
}

func (s *service) CommitReservation(ctx context.Context, orderID string) (Reservation, error) {
	orderID, ok := validate.ParseUUID(orderID)
	if !ok {
		return Reservation{}, ErrNotFound
	}
	return s.repo.CommitReservation(ctx, orderID)
}

func (s *service) ReleaseReservation(ctx context.Context, orderID string) (Reservation, error) {
	orderID, ok := validate.ParseUUID(orderID)
	if !ok {
		return Reservation{}, ErrNotFound
	}
	return s.repo.ReleaseReservation(ctx, orderID)
}

func (s *service) GetReservation(ctx context.Context, orderID string) (Reservation, error) {
	orderID, ok := validate.ParseUUID(orderID)
	if !ok {
		return Reservation{}, ErrNotFound
	}
	return s.repo.Reservation(ctx, orderID)
}

// ReleaseExpired releases what has expired, up to sweepBatch. A reservation
// whose release fails (its units no longer fit under the stock limit) is
// skipped for the rest of the sweep, so it cannot hold up the ones behind
// it; the first such failure is returned, to be logged.
func (s *service) ReleaseExpired(ctx context.Context) (int, error) {
	var (
		n      int
		failed []string
		first  error
	)
	for n+len(failed) < s.sweepBatch {
		orderID, err := s.repo.ReleaseNextExpired(ctx, failed)
		switch {
		case err != nil && orderID != "":
			failed = append(failed, orderID)
			if first == nil {
				first = fmt.Errorf("release expired reservation %s: %w", orderID, err)
			}
		case err != nil:
			return n, err
		case orderID == "":
			return n, first
		default:
			n++
		}
	}
	return n, first
}

func (s *service) CountLowStock(ctx context.Context) (int, error) {
	return s.repo.CountLowStock(ctx)
}

// Sweeper releases expired reservations every Interval. Every instance runs
// one: ReleaseExpired is safe with several at once, and the work goes on
// when an instance dies. Failures are logged by the logging middleware and
// retried at the next tick.
type Sweeper struct {
	Housekeeping Housekeeping  // required: with its middlewares, so sweeps are logged
	Interval     time.Duration // required: the time between sweeps
}

// Run sweeps until ctx is done, then returns nil. It returns an error only
// when Housekeeping or a positive Interval is missing.
func (s *Sweeper) Run(ctx context.Context) error {
	if s.Housekeeping == nil || s.Interval <= 0 {
		return errors.New("product: sweeper needs Housekeeping and a positive Interval")
	}
	wait.Every(ctx, s.Interval, func() { _, _ = s.Housekeeping.ReleaseExpired(ctx) })
	return nil
}

// LowStockCounter refreshes the product_low_stock_products gauge at once and
// then every Interval, through Housekeeping's CountLowStock (decorated by
// InstrumentingMiddleware, which sets the gauge): a count now and then,
// never one per scrape. Every instance runs one; they agree, as they count
// the same rows. A failed count leaves the gauge as it was; the logging
// middleware logs it.
type LowStockCounter struct {
	Housekeeping Housekeeping  // required: with its middlewares
	Interval     time.Duration // required: the time between counts
}

// Run counts until ctx is done, then returns nil. It returns an error only
// when Housekeeping or a positive Interval is missing.
func (c *LowStockCounter) Run(ctx context.Context) error {
	if c.Housekeeping == nil || c.Interval <= 0 {
		return errors.New("product: low-stock counter needs Housekeeping and a positive Interval")
	}
	for {
		_, _ = c.Housekeeping.CountLowStock(ctx)
		if !wait.For(ctx, c.Interval) {
			return nil
		}
	}
}
