package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-kit/log"

	"github.com/mercato-dev/mercato/order"
	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
)

// Idempotency-Keys of POST /orders, leased to the request that holds one.

type idempotencyRow struct {
	UserID      string `db:"user_id"`
	Key         string `db:"key"`
	RequestHash []byte `db:"request_hash"`
	OrderID     string `db:"order_id"`
	State       string `db:"state"`
	Outcome     []byte `db:"outcome"` // order.Outcome as JSON, once done
}

const idempotencyColumns = `user_id, key, request_hash, order_id, state, outcome`

func (r idempotencyRow) record() (order.IdempotencyRecord, error) {
	rec := order.IdempotencyRecord{UserID: r.UserID, Key: r.Key, RequestHash: r.RequestHash, OrderID: r.OrderID, Done: r.State == "done"}
	if rec.Done {
		if err := json.Unmarshal(r.Outcome, &rec.Outcome); err != nil {
			return order.IdempotencyRecord{}, fmt.Errorf("outcome of idempotency key %q: %w", r.Key, err)
		}
	}
	return rec, nil
}

func (r *Repository) ClaimIdempotencyKey(ctx context.Context, userID, key string, hash []byte, orderID string, lease time.Duration) (order.IdempotencyRecord, bool, error) {
	leaseSecs := lease.Seconds()
	var row idempotencyRow
	// First sight of the key: the caller holds it.
	err := r.db.GetContext(ctx, &row, `
		INSERT INTO idempotency_keys (user_id, key, request_hash, order_id, locked_until)
		VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
		ON CONFLICT (user_id, key) DO NOTHING
		RETURNING `+idempotencyColumns, userID, key, hash, orderID, leaseSecs)
	if err == nil {
		rec, err := row.record()
		return rec, err == nil, err
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return order.IdempotencyRecord{}, false, fmt.Errorf("claim idempotency key: %w", err)
	}
	// Known: take it over when its holder gave up or died (the lease ran
	// out) and it is the same request. The condition is the arbiter between
	// concurrent takers: one of them finds the lease expired.
	err = r.db.GetContext(ctx, &row, `
		UPDATE idempotency_keys SET locked_until = now() + make_interval(secs => $4), updated_at = now()
		WHERE user_id = $1 AND key = $2 AND request_hash = $3 AND state = 'in_progress' AND locked_until <= now()
		RETURNING `+idempotencyColumns, userID, key, hash, leaseSecs)
	if err == nil {
		rec, err := row.record()
		rec.Attempted = true
		return rec, err == nil, err
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return order.IdempotencyRecord{}, false, fmt.Errorf("take over idempotency key: %w", err)
	}
	err = r.db.GetContext(ctx, &row, `SELECT `+idempotencyColumns+` FROM idempotency_keys WHERE user_id = $1 AND key = $2`, userID, key)
	if errors.Is(err, sql.ErrNoRows) {
		// Deleted between the statements (older than the retention): the
		// caller's next attempt inserts it afresh.
		return order.IdempotencyRecord{UserID: userID, Key: key, RequestHash: hash}, false, nil
	}
	if err != nil {
		return order.IdempotencyRecord{}, false, fmt.Errorf("read idempotency key: %w", err)
	}
	rec, err := row.record()
	return rec, false, err
}

func (r *Repository) FinishIdempotencyKey(ctx context.Context, userID, key string, outcome order.Outcome) error {
	b, err := json.Marshal(outcome)
	if err != nil {
		return fmt.Errorf("finish idempotency key: %w", err)
	}
	res, err := r.db.ExecContext(ctx, `
		UPDATE idempotency_keys SET state = 'done', outcome = $3, updated_at = now()
		WHERE user_id = $1 AND key = $2`, userID, key, string(b))
	if err != nil {
		return fmt.Errorf("finish idempotency key: %w", err)
	}
	return sharedpg.Affected(res, order.ErrNotFound)
}

func (r *Repository) ReleaseIdempotencyKey(ctx context.Context, userID, key string) error {
	if _, err := r.db.ExecContext(ctx, `
		UPDATE idempotency_keys SET locked_until = now(), updated_at = now()
		WHERE user_id = $1 AND key = $2 AND state = 'in_progress'`, userID, key); err != nil {
		return fmt.Errorf("release idempotency key: %w", err)
	}
	return nil
}

// KeyJanitor deletes the Idempotency-Keys created more than retention ago,
// every hour.
func (r *Repository) KeyJanitor(retention time.Duration, logger log.Logger) *sharedpg.Janitor {
	return &sharedpg.Janitor{DB: r.db, Table: "idempotency_keys", Key: "user_id, key", Column: "created_at",
		Retention: retention, Interval: time.Hour, Logger: logger}
}
