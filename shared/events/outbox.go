package events

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"

	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/shared/postgres"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// schemaTable records the events migrations apart from the service's own, so
// both sets can live in one database and evolve independently.
const schemaTable = "events_schema_version"

// Migrate creates the outbox and inbox tables. Services call it at start-up
// beside their own migrations.
func Migrate(ctx context.Context, db *sqlx.DB) error {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return fmt.Errorf("events: migrations: %w", err)
	}
	return postgres.Migrate(ctx, db, sub, schemaTable)
}

// Enqueue stores e in the outbox through tx (a *sqlx.Tx, or the Tx an event
// handler was given). Pass the transaction that makes the state change the
// event reports: the event then exists if and only if the change commits,
// and the Relay publishes it afterwards.
func Enqueue(ctx context.Context, tx Tx, e Envelope) error {
	if err := e.validate(); err != nil {
		return err
	}
	payload, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("events: marshal envelope %s: %w", e.ID, err)
	}
	_, err = tx.ExecContext(ctx,
		`INSERT INTO outbox (id, type, payload) VALUES ($1, $2, $3)`,
		e.ID, e.Type, string(payload)) // string: lib/pq would send []byte as bytea
	if err != nil {
		return fmt.Errorf("events: enqueue %s %s: %w", e.Type, e.ID, err)
	}
	return nil
}
