// Package postgres is the PostgreSQL repository of the payment service, with
// the schema migrations it owns embedded.
package postgres

import (
	"context"
	"time"

	"github.com/go-kit/log"
	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/payment"
	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
)

// Repository implements payment.Repository on PostgreSQL.
type Repository struct {
	db *sqlx.DB
}

var _ payment.Repository = (*Repository)(nil)

// New returns a repository on db, whose schema Schema.Migrate has brought up
// to date.
func New(db *sqlx.DB) *Repository { return &Repository{db: db} }

// notFound maps "no such row" to the payment service's ErrNotFound.
func notFound(err error) error { return sharedpg.NotFound(err, payment.ErrNotFound) }

// WebhookRetention is how long a processed webhook's event id is kept, so
// that a redelivery of it is not applied twice (ErrWebhookReplayed). A
// provider redelivers for days at the most (and each delivery must be signed
// within WebhookTolerance of its sending); one that came later still would
// find its payment no longer awaiting that outcome.
const WebhookRetention = 30 * 24 * time.Hour

// WebhookJanitor deletes the event ids of webhooks received more than
// WebhookRetention ago, every hour.
func (r *Repository) WebhookJanitor(logger log.Logger) *sharedpg.Janitor {
	return &sharedpg.Janitor{DB: r.db, Table: "webhook_events", Key: "provider, event_id", Column: "received_at",
		Retention: WebhookRetention, Interval: time.Hour, Logger: logger}
}

// claimAbandoned sets attemptedAt to now on up to limit rows of table that
// match awaited and were attempted more than age ago, skipping rows another
// transaction holds, and returns them (columns). It is one short statement,
// like the sandbox dispatcher's: the new attempt time, not a held lock,
// keeps other instances off the rows while their provider calls run. The
// table and column names are this package's constants, never input.
//
// A row without an attempt time was recorded before migration 00002 added
// the column, when the provider was called inside the row's transaction:
// its attempt is as old as the row (created_at), not never made, or
// Recovery would never finish it.
func claimAbandoned[Row any](ctx context.Context, db *sqlx.DB, table, attemptedAt, awaited, columns string, age time.Duration, limit int) ([]Row, error) {
	var rows []Row
	err := db.SelectContext(ctx, &rows, `
		UPDATE `+table+` SET `+attemptedAt+` = now()
		WHERE id IN (
			SELECT id FROM `+table+`
			WHERE `+awaited+` AND coalesce(`+attemptedAt+`, created_at) < now() - make_interval(secs => $1)
			ORDER BY coalesce(`+attemptedAt+`, created_at)
			LIMIT $2
			FOR UPDATE SKIP LOCKED)
		RETURNING `+columns, age.Seconds(), limit)
	return rows, err
}
