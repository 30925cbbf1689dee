// The payments table: a payment's row, its reads, and the changes of its
// charge and of its state, each with its events in the same transaction.

package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/payment"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/money"
	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
)

type paymentRow struct {
	ID                string         `db:"id"`
	OrderID           string         `db:"order_id"`
	UserID            string         `db:"user_id"`
	Amount            money.Amount   `db:"amount"`
	Currency          string         `db:"currency"`
	Status            string         `db:"status"`
	PaymentMethod     string         `db:"payment_method"`
	PaymentProvider   string         `db:"payment_provider"`
	ChargeID          sql.NullString `db:"provider_transaction_id"`
	ProviderResponse  sql.NullString `db:"provider_response"`
	CardBrand         string         `db:"card_brand"`
	CardLast4         string         `db:"card_last4"`
	FailureCode       sql.NullString `db:"failure_code"`
	CapturedAmount    money.Amount   `db:"captured_amount"`
	RefundedAmount    money.Amount   `db:"refunded_amount"`
	CancelRequestedAt sql.NullTime   `db:"cancel_requested_at"`
	ChargeAttemptedAt sql.NullTime   `db:"charge_attempted_at"`
	ProcessedAt       sql.NullTime   `db:"processed_at"`
	CreatedAt         time.Time      `db:"created_at"`
	UpdatedAt         time.Time      `db:"updated_at"`
}

const paymentColumns = `id, order_id, user_id, amount, currency, status, payment_method, payment_provider,
	provider_transaction_id, provider_response, card_brand, card_last4, failure_code, captured_amount,
	refunded_amount, cancel_requested_at, charge_attempted_at, processed_at, created_at, updated_at`

// chargeAwaited is the condition of payment.Payment's chargeAwaited: the
// payment waits for the provider's answer to its charge call.
const chargeAwaited = `status = 'pending' AND provider_transaction_id IS NULL`

func (r paymentRow) payment() payment.Payment {
	p := payment.Payment{
		ID: r.ID, OrderID: r.OrderID, UserID: r.UserID, Amount: r.Amount, Currency: r.Currency,
		Status: r.Status, PaymentMethod: r.PaymentMethod, PaymentProvider: r.PaymentProvider,
		Card:        payment.Card{Brand: r.CardBrand, Last4: r.CardLast4},
		FailureCode: r.FailureCode.String, CapturedAmount: r.CapturedAmount, RefundedAmount: r.RefundedAmount,
		ProcessedAt: sharedpg.TimePtr(r.ProcessedAt), CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
		ChargeID: r.ChargeID.String, CancelRequestedAt: sharedpg.TimePtr(r.CancelRequestedAt),
		ChargeAttemptedAt: sharedpg.TimePtr(r.ChargeAttemptedAt),
	}
	if r.ProviderResponse.Valid {
		p.ProviderResponse = []byte(r.ProviderResponse.String)
	}
	return p
}

func (r *Repository) CreatePayment(ctx context.Context, p payment.Payment) (payment.Payment, bool, error) {
	var row paymentRow
	// One statement, committed before the provider is called. A concurrent
	// insert of the same order waits here until the other statement
	// commits, then does nothing.
	err := r.db.GetContext(ctx, &row, `
		INSERT INTO payments (id, order_id, user_id, amount, currency, status, payment_method,
		                      payment_provider, card_brand, card_last4, charge_attempted_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now())
		ON CONFLICT (order_id) DO NOTHING
		RETURNING `+paymentColumns,
		p.ID, p.OrderID, p.UserID, p.Amount, p.Currency, p.Status, p.PaymentMethod,
		p.PaymentProvider, p.Card.Brand, p.Card.Last4)
	if errors.Is(err, sql.ErrNoRows) {
		existing, err := r.PaymentByOrder(ctx, p.OrderID)
		return existing, false, err
	}
	if err != nil {
		return payment.Payment{}, false, fmt.Errorf("insert payment: %w", err)
	}
	out := row.payment()
	out.Refunds = []payment.Refund{}
	return out, true, nil
}

func (r *Repository) ClaimCharge(ctx context.Context, id string) (payment.Payment, bool, error) {
	var row paymentRow
	err := r.db.GetContext(ctx, &row, `
		UPDATE payments SET charge_attempted_at = now()
		WHERE id = $1 AND `+chargeAwaited+`
		RETURNING `+paymentColumns, id)
	if errors.Is(err, sql.ErrNoRows) {
		p, err := r.Payment(ctx, id) // answered, failed, or gone
		return p, false, err
	}
	if err != nil {
		return payment.Payment{}, false, fmt.Errorf("claim charge: %w", err)
	}
	p, err := withRefunds(ctx, r.db, row)
	return p, err == nil, err
}

func (r *Repository) RecordCharge(ctx context.Context, id, chargeID string) (payment.Payment, error) {
	var row paymentRow
	// updated_at stays: recording the charge id completes the payment's
	// creation, it changes nothing a client sees.
	err := r.db.GetContext(ctx, &row, `
		UPDATE payments SET provider_transaction_id = $2
		WHERE id = $1 AND (provider_transaction_id IS NULL OR provider_transaction_id = $2)
		RETURNING `+paymentColumns, id, chargeID)
	if errors.Is(err, sql.ErrNoRows) {
		p, err := r.Payment(ctx, id)
		if err != nil {
			return payment.Payment{}, err
		}
		return payment.Payment{}, fmt.Errorf("payment %s: the provider answered charge %s, but %s is recorded", id, chargeID, p.ChargeID)
	}
	if err != nil {
		return payment.Payment{}, fmt.Errorf("record charge: %w", err)
	}
	return withRefunds(ctx, r.db, row)
}

func (r *Repository) ClaimAbandonedCharges(ctx context.Context, age time.Duration, limit int) ([]payment.Payment, error) {
	rows, err := claimAbandoned[paymentRow](ctx, r.db, "payments", "charge_attempted_at", chargeAwaited, paymentColumns, age, limit)
	if err != nil {
		return nil, fmt.Errorf("claim abandoned charges: %w", err)
	}
	return sharedpg.Convert(rows, paymentRow.payment), nil
}

// withRefunds returns the payment of row with its refunds, read with q.
func withRefunds(ctx context.Context, q sqlx.QueryerContext, row paymentRow) (payment.Payment, error) {
	p := row.payment()
	var err error
	if p.Refunds, err = refundsOf(ctx, q, p.ID); err != nil {
		return payment.Payment{}, err
	}
	return p, nil
}

func (r *Repository) Payment(ctx context.Context, id string) (payment.Payment, error) {
	return r.paymentWhere(ctx, `id = $1`, id)
}

func (r *Repository) PaymentByOrder(ctx context.Context, orderID string) (payment.Payment, error) {
	return r.paymentWhere(ctx, `order_id = $1`, orderID)
}

// paymentWhere loads the payment matching cond (a constant condition on $1)
// with its refunds, in one snapshot: its refunded amount and status are
// those its refunds left, not from before the last refund was recorded.
func (r *Repository) paymentWhere(ctx context.Context, cond string, arg any) (payment.Payment, error) {
	var p payment.Payment
	err := sharedpg.InSnapshot(ctx, r.db, func(tx *sqlx.Tx) error {
		var row paymentRow
		if err := tx.GetContext(ctx, &row, `SELECT `+paymentColumns+` FROM payments WHERE `+cond, arg); err != nil {
			return notFound(err)
		}
		var err error
		p, err = withRefunds(ctx, tx, row)
		return err
	})
	if err != nil {
		return payment.Payment{}, err
	}
	return p, nil
}

func (r *Repository) ListPayments(ctx context.Context, q payment.PaymentQuery) ([]payment.Payment, int, error) {
	// NULL filters match everything; the casts let PostgreSQL type them.
	const where = `WHERE ($1::uuid IS NULL OR user_id = $1::uuid) AND ($2::uuid IS NULL OR order_id = $2::uuid)`
	userID, orderID := sharedpg.NullString(q.UserID), sharedpg.NullString(q.OrderID)
	rows, total, err := sharedpg.Page[paymentRow](ctx, r.db, paymentColumns, `payments `+where, `created_at DESC, id DESC`,
		(q.Page-1)*q.PageSize, q.PageSize, userID, orderID)
	if err != nil {
		return nil, 0, fmt.Errorf("list payments: %w", err)
	}
	return sharedpg.Convert(rows, paymentRow.payment), total, nil
}

func (r *Repository) UpdatePayment(ctx context.Context, lock payment.Lock, change payment.ChangeFunc) (payment.Payment, *payment.Refund, error) {
	var (
		out    payment.Payment
		refund *payment.Refund
	)
	err := sharedpg.InTx(ctx, r.db, func(tx *sqlx.Tx) error {
		if lock.IdempotencyKey != "" {
			// Requests with one key queue up here, whichever payment they
			// name, so the second finds the first's refund.
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`,
				"payment-refund-key:"+lock.IdempotencyKey); err != nil {
				return fmt.Errorf("lock idempotency key: %w", err)
			}
		}
		if w := lock.Webhook; w != nil {
			// First, so that a concurrent delivery of the same event waits
			// here and then finds it recorded.
			res, err := tx.ExecContext(ctx, `
				INSERT INTO webhook_events (provider, event_id, type) VALUES ($1, $2, $3)
				ON CONFLICT DO NOTHING`, w.Provider, w.EventID, w.Type)
			if err != nil {
				return fmt.Errorf("record webhook: %w", err)
			}
			if err := sharedpg.Affected(res, payment.ErrWebhookReplayed); err != nil {
				return err
			}
		}

		cond, args := `id = $1`, []any{lock.PaymentID}
		switch {
		case lock.OrderID != "":
			cond, args = `order_id = $1`, []any{lock.OrderID}
		case lock.ChargeID != "" && lock.PaymentID != "":
			// Without a charge id recorded, only a payment still awaiting its
			// charge takes one: one settled without it (Recovery failed it)
			// is not the charge's.
			cond, args = `id = $1 AND (provider_transaction_id = $2 OR (`+chargeAwaited+`))`, []any{lock.PaymentID, lock.ChargeID}
		case lock.ChargeID != "":
			cond, args = `provider_transaction_id = $1`, []any{lock.ChargeID}
		}
		var row paymentRow
		if err := tx.GetContext(ctx, &row, `SELECT `+paymentColumns+` FROM payments WHERE `+cond+` FOR UPDATE`, args...); err != nil {
			return notFound(err)
		}
		if lock.ChargeID != "" && !row.ChargeID.Valid {
			// The provider's webhook came before its answer to the charge
			// call: the charge id is recorded here, and RecordCharge finds it.
			// A charge id another payment holds is not this payment's charge.
			if _, err := tx.ExecContext(ctx, `UPDATE payments SET provider_transaction_id = $2 WHERE id = $1`, row.ID, lock.ChargeID); err != nil {
				if sharedpg.IsUniqueViolation(err, "payments_provider_transaction_id_key") {
					return payment.ErrNotFound
				}
				return fmt.Errorf("record charge: %w", err)
			}
			row.ChargeID = sql.NullString{String: lock.ChargeID, Valid: true}
		}
		if lock.IdempotencyKey != "" {
			var prior refundRow
			err := tx.GetContext(ctx, &prior, `SELECT `+refundColumns+` FROM refunds WHERE idempotency_key = $1`, lock.IdempotencyKey)
			switch {
			case err == nil:
				rf := prior.refund()
				refund = &rf
			case !errors.Is(err, sql.ErrNoRows):
				return fmt.Errorf("find refund by idempotency key: %w", err)
			}
		}

		locked := row.payment()
		var err error
		if locked.Refunds, err = refundsOf(ctx, tx, row.ID); err != nil {
			return err
		}
		c, err := change(ctx, locked, refund)
		if err != nil {
			return err
		}
		if c != nil {
			if err := store(ctx, tx, &row, c); err != nil {
				return err
			}
			if c.Refund != nil {
				refund = c.Refund
			}
		}
		out = row.payment()
		out.Refunds, err = refundsOf(ctx, tx, out.ID)
		if err != nil {
			return err
		}
		if refund != nil {
			for _, rf := range out.Refunds {
				if rf.ID == refund.ID {
					*refund = rf // as stored: timestamps and all
				}
			}
		}
		return nil
	})
	if err != nil {
		return payment.Payment{}, nil, err
	}
	return out, refund, nil
}

// store writes c through tx and leaves the payment as stored in row.
func store(ctx context.Context, tx *sqlx.Tx, row *paymentRow, c *payment.Change) error {
	p := c.Payment
	if err := tx.GetContext(ctx, row, `
		UPDATE payments
		SET status = $2, failure_code = $3, captured_amount = $4, refunded_amount = $5,
		    processed_at = $6, cancel_requested_at = $7, provider_response = $8, updated_at = now()
		WHERE id = $1
		RETURNING `+paymentColumns,
		row.ID, p.Status, sharedpg.NullString(p.FailureCode), p.CapturedAmount, p.RefundedAmount,
		sharedpg.NullTime(p.ProcessedAt), sharedpg.NullTime(p.CancelRequestedAt), sharedpg.NullString(string(p.ProviderResponse))); err != nil {
		return fmt.Errorf("update payment: %w", err)
	}
	if rf := c.Refund; rf != nil {
		// A new refund, or the outcome of a pending one: a pending refund's
		// provider call is attempted from now.
		res, err := tx.ExecContext(ctx, `
			INSERT INTO refunds (id, payment_id, amount, reason, status, provider_refund_id,
			                     idempotency_key, request_hash, processed_at, attempted_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, CASE WHEN $10 THEN now() END)
			ON CONFLICT (id) DO UPDATE
			SET status = excluded.status, provider_refund_id = excluded.provider_refund_id,
			    processed_at = excluded.processed_at, updated_at = now()
			WHERE refunds.payment_id = excluded.payment_id AND refunds.amount = excluded.amount
			  AND refunds.status = 'pending'`,
			rf.ID, row.ID, rf.Amount, sharedpg.NullString(rf.Reason), rf.Status, sharedpg.NullString(rf.ProviderRefundID),
			sharedpg.NullString(rf.IdempotencyKey), rf.RequestHash, sharedpg.NullTime(rf.ProcessedAt), rf.Status == payment.RefundPending)
		if err != nil {
			return fmt.Errorf("store refund: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return fmt.Errorf("store refund %s: one with its id is stored, and not pending", rf.ID)
		}
	}
	for _, e := range c.Events {
		if err := events.Enqueue(ctx, tx, e); err != nil {
			return err
		}
	}
	return nil
}
