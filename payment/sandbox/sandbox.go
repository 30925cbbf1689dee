// Package sandbox is a card processor that runs inside the payment service
// but behaves like an external one: a charge is answered at once with a
// charge id and its outcome arrives later, in an HMAC-signed webhook that a
// Dispatcher posts to the payment service's webhook route (through the
// gateway) until it is acknowledged; refunds are synchronous. Both calls are
// idempotent by key. The outcome of a charge is decided by the test cards of
// API.md; the card itself is never stored or logged.
package sandbox

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/payment"
	"github.com/mercato-dev/mercato/shared/money"
	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
	"github.com/mercato-dev/mercato/shared/tracing"
	"github.com/mercato-dev/mercato/shared/validate"
	"github.com/mercato-dev/mercato/shared/wait"
)

// Name is the provider's name in payments and in its webhook route.
const Name = "sandbox"

// Test cards (API.md). Any other valid card succeeds.
const (
	CardSucceeds          = "4242424242424242"
	CardDeclined          = "4000000000000002"
	CardInsufficientFunds = "4000000000009995"
)

// Failure codes of the test cards.
const (
	FailureCardDeclined      = "card_declined"
	FailureInsufficientFunds = "insufficient_funds"
)

// FailureCodes are every failure code the sandbox answers with, for the
// series payment.NewMetrics starts at 0.
func FailureCodes() []string { return []string{FailureCardDeclined, FailureInsufficientFunds} }

// Charge outcomes, as stored.
const (
	outcomeSucceeded = "succeeded"
	outcomeFailed    = "failed"
)

// Errors of the processor, as a real one would answer them.
var (
	ErrInvalidCard          = errors.New("sandbox: invalid card number")
	ErrIdempotencyMismatch  = errors.New("sandbox: idempotency key reused with different parameters")
	ErrUnknownCharge        = errors.New("sandbox: no such charge")
	ErrChargeNotSucceeded   = errors.New("sandbox: only a succeeded charge can be refunded")
	ErrRefundExceedsCharged = errors.New("sandbox: refund exceeds what is left of the charge")
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrate creates the sandbox's tables, recorded in their own goose table.
func Migrate(ctx context.Context, db *sqlx.DB) error {
	return sharedpg.MigrateDir(ctx, db, migrationFiles, "migrations", "sandbox_schema_version")
}

// Sandbox is the processor. Give it a connection pool of its own: an
// external processor never shares its caller's connections, so a busy
// payment service cannot starve it.
type Sandbox struct {
	db    *sqlx.DB
	delay time.Duration // before a charge's webhook is first sent
	due   wait.Signal   // a charge's webhook came due (Due)
}

var (
	_ payment.Provider     = (*Sandbox)(nil)
	_ payment.ChargeFinder = (*Sandbox)(nil)
)

// New returns the sandbox keeping its books in db (migrated by Migrate).
// webhookDelay is how long after a charge its webhook is first sent, like
// a real processor's processing time.
func New(db *sqlx.DB, webhookDelay time.Duration) *Sandbox {
	return &Sandbox{db: db, delay: webhookDelay, due: wait.NewSignal()}
}

// Due receives a value when a charge this sandbox recorded has its webhook
// due: the dispatcher of the same process (Dispatcher.Wake) sends it then
// rather than at its next poll. Charges of other instances, and retries,
// wait for the poll.
func (s *Sandbox) Due() <-chan struct{} { return s.due }

// scheduled signals Due once a new charge's webhook is due, after the
// webhook delay (at once without one).
func (s *Sandbox) scheduled() {
	if s.delay <= 0 {
		s.due.Notify()
		return
	}
	time.AfterFunc(s.delay, s.due.Notify)
}

// Name is "sandbox".
func (s *Sandbox) Name() string { return Name }

// Outcome is what the sandbox does with a card: succeed, or fail with a
// failure code.
func Outcome(number string) (succeeded bool, failureCode string) {
	switch number {
	case CardDeclined:
		return false, FailureCardDeclined
	case CardInsufficientFunds:
		return false, FailureInsufficientFunds
	default:
		return true, ""
	}
}

// Charge records the charge and its outcome, and schedules the webhook,
// which carries the trace context of ctx.
func (s *Sandbox) Charge(ctx context.Context, c payment.ProviderCharge) (string, error) {
	if !validate.Luhn(c.Card.Number) {
		return "", ErrInvalidCard
	}
	ok, failure := Outcome(c.Card.Number)
	outcome := outcomeSucceeded
	if !ok {
		outcome = outcomeFailed
	}
	var id string
	var traceContext sql.NullString
	traceContext.String, traceContext.Valid = tracing.ToJSON(ctx)
	err := s.db.GetContext(ctx, &id, `
		INSERT INTO sandbox_charges (id, idempotency_key, payment_id, amount, currency, outcome,
		                             failure_code, webhook_event_id, next_delivery_at, trace_context)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(secs => $9), $10)
		ON CONFLICT (idempotency_key) DO NOTHING
		RETURNING id`,
		newID("ch_"), c.IdempotencyKey, c.PaymentID, c.Amount, c.Currency, outcome,
		sql.NullString{String: failure, Valid: failure != ""}, newID("evt_"), s.delay.Seconds(), traceContext)
	if err == nil {
		s.scheduled()
		return id, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("sandbox: record charge: %w", err)
	}
	// A repeated key: the first charge, if the request is the same.
	var prior struct {
		ID       string       `db:"id"`
		Amount   money.Amount `db:"amount"`
		Currency string       `db:"currency"`
	}
	if err := s.db.GetContext(ctx, &prior, `
		SELECT id, amount, currency FROM sandbox_charges WHERE idempotency_key = $1`, c.IdempotencyKey); err != nil {
		return "", fmt.Errorf("sandbox: find charge by key: %w", err)
	}
	if prior.Amount != c.Amount || prior.Currency != c.Currency {
		return "", ErrIdempotencyMismatch
	}
	return prior.ID, nil
}

// FindCharge returns the id of the charge taken under key, or
// payment.ErrNoSuchCharge, as processors answer a lookup by idempotency key.
func (s *Sandbox) FindCharge(ctx context.Context, key string) (string, error) {
	var id string
	err := s.db.GetContext(ctx, &id, `SELECT id FROM sandbox_charges WHERE idempotency_key = $1`, key)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", payment.ErrNoSuchCharge
	case err != nil:
		return "", fmt.Errorf("sandbox: find charge: %w", err)
	}
	return id, nil
}

// Refund gives back part of a succeeded charge, never more than is left.
func (s *Sandbox) Refund(ctx context.Context, r payment.ProviderRefund) (string, error) {
	var id string
	err := sharedpg.InTx(ctx, s.db, func(tx *sqlx.Tx) error {
		var charge struct {
			Amount   money.Amount `db:"amount"`
			Refunded money.Amount `db:"refunded_amount"`
			Outcome  string       `db:"outcome"`
		}
		err := tx.GetContext(ctx, &charge, `
			SELECT amount, refunded_amount, outcome FROM sandbox_charges WHERE id = $1 FOR UPDATE`, r.ChargeID)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrUnknownCharge
		}
		if err != nil {
			return fmt.Errorf("sandbox: lock charge: %w", err)
		}
		// Under the charge's lock, so two calls with one key cannot both
		// miss each other.
		var prior struct {
			ID       string       `db:"id"`
			ChargeID string       `db:"charge_id"`
			Amount   money.Amount `db:"amount"`
		}
		err = tx.GetContext(ctx, &prior, `
			SELECT id, charge_id, amount FROM sandbox_refunds WHERE idempotency_key = $1`, r.IdempotencyKey)
		switch {
		case err == nil:
			if prior.ChargeID != r.ChargeID || prior.Amount != r.Amount {
				return ErrIdempotencyMismatch
			}
			id = prior.ID
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("sandbox: find refund by key: %w", err)
		}
		switch {
		case charge.Outcome != outcomeSucceeded:
			return ErrChargeNotSucceeded
		case r.Amount <= 0 || charge.Refunded+r.Amount > charge.Amount:
			return ErrRefundExceedsCharged
		}
		id = newID("re_")
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO sandbox_refunds (id, idempotency_key, charge_id, amount) VALUES ($1, $2, $3, $4)`,
			id, r.IdempotencyKey, r.ChargeID, r.Amount); err != nil {
			return fmt.Errorf("sandbox: record refund: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `
			UPDATE sandbox_charges SET refunded_amount = refunded_amount + $2 WHERE id = $1`,
			r.ChargeID, r.Amount); err != nil {
			return fmt.Errorf("sandbox: update charge: %w", err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return id, nil
}

// newID returns prefix and 24 random hex digits, like processors' ids.
func newID(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return prefix + hex.EncodeToString(b)
}
