// The refunds table: a refund's row and its reads; refunds are written with
// their payment's change (store, in payments.go).

package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/payment"
	"github.com/mercato-dev/mercato/shared/money"
	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
)

type refundRow struct {
	ID               string         `db:"id"`
	PaymentID        string         `db:"payment_id"`
	Amount           money.Amount   `db:"amount"`
	Reason           sql.NullString `db:"reason"`
	Status           string         `db:"status"`
	ProviderRefundID sql.NullString `db:"provider_refund_id"`
	IdempotencyKey   sql.NullString `db:"idempotency_key"`
	RequestHash      []byte         `db:"request_hash"`
	ProcessedAt      sql.NullTime   `db:"processed_at"`
	AttemptedAt      sql.NullTime   `db:"attempted_at"`
	CreatedAt        time.Time      `db:"created_at"`
	UpdatedAt        time.Time      `db:"updated_at"`
}

const refundColumns = `id, payment_id, amount, reason, status, provider_refund_id, idempotency_key,
	request_hash, processed_at, attempted_at, created_at, updated_at`

func (r refundRow) refund() payment.Refund {
	return payment.Refund{
		ID: r.ID, PaymentID: r.PaymentID, Amount: r.Amount, Reason: r.Reason.String, Status: r.Status,
		ProviderRefundID: r.ProviderRefundID.String, ProcessedAt: sharedpg.TimePtr(r.ProcessedAt),
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
		IdempotencyKey: r.IdempotencyKey.String, RequestHash: r.RequestHash, AttemptedAt: sharedpg.TimePtr(r.AttemptedAt),
	}
}

func (r *Repository) ClaimAbandonedRefunds(ctx context.Context, age time.Duration, limit int) ([]payment.Refund, error) {
	rows, err := claimAbandoned[refundRow](ctx, r.db, "refunds", "attempted_at", `status = 'pending'`, refundColumns, age, limit)
	if err != nil {
		return nil, fmt.Errorf("claim abandoned refunds: %w", err)
	}
	return sharedpg.Convert(rows, refundRow.refund), nil
}

func refundsOf(ctx context.Context, q sqlx.QueryerContext, paymentID string) ([]payment.Refund, error) {
	var rows []refundRow
	if err := sqlx.SelectContext(ctx, q, &rows, `
		SELECT `+refundColumns+` FROM refunds WHERE payment_id = $1 ORDER BY created_at, id`, paymentID); err != nil {
		return nil, fmt.Errorf("list refunds: %w", err)
	}
	return sharedpg.Convert(rows, refundRow.refund), nil
}
