package events

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"

	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/shared/postgres"
	"github.com/mercato-dev/mercato/shared/tracing"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// schemaTable records the events migrations apart from the service's own, so
// both sets can live in one database and evolve independently.
const schemaTable = "events_schema_version"

// Migrate creates the outbox and inbox tables.
func Migrate(ctx context.Context, db *sqlx.DB) error {
	return postgres.MigrateDir(ctx, db, migrationFiles, "migrations", schemaTable)
}

// Schema is a service's own database schema: the goose migrations in the
// migrations folder of Files, recorded in Table apart from the events
// package's own table, so that both sets live in one database and evolve
// independently.
type Schema struct {
	Files fs.FS
	Table string
}

// Migrate brings a service's database to the current schema at start-up:
// the service's own migrations, then the outbox and inbox tables every
// service has.
func (s Schema) Migrate(ctx context.Context, db *sqlx.DB) error {
	if err := postgres.MigrateDir(ctx, db, s.Files, "migrations", s.Table); err != nil {
		return err
	}
	return Migrate(ctx, db)
}

// Enqueue stores e in the outbox through tx (a *sqlx.Tx, or the Tx an event
// handler was given), with the trace context of ctx. Pass the transaction
// that makes the state change the event reports: the event then exists if
// and only if the change commits, and the Relay publishes it afterwards.
func Enqueue(ctx context.Context, tx Tx, e Envelope) error {
	if err := e.validate(); err != nil {
		return err
	}
	payload, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("events: marshal envelope %s: %w", e.ID, err)
	}
	var traceContext sql.NullString
	traceContext.String, traceContext.Valid = tracing.ToJSON(ctx)
	_, err = tx.ExecContext(ctx,
		`INSERT INTO outbox (id, type, payload, trace_context) VALUES ($1, $2, $3, $4)`,
		e.ID, e.Type, string(payload), traceContext) // string: lib/pq would send []byte as bytea
	if err != nil {
		return fmt.Errorf("events: enqueue %s %s: %w", e.Type, e.ID, err)
	}
	return nil
}
