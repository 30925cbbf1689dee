// Package postgres is the PostgreSQL repository of the order service, with
// the schema migrations it owns embedded.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"

	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/order"
	"github.com/mercato-dev/mercato/shared/events"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// schemaTable records the order service's migrations, apart from the events
// package's own table in the same database.
const schemaTable = "order_schema_version"

// Migrate brings the database to the current schema: the order tables and
// the events outbox/inbox.
func Migrate(ctx context.Context, db *sqlx.DB) error {
	return events.MigrateService(ctx, db, migrationFiles, schemaTable)
}

// Repository implements order.Repository on PostgreSQL.
type Repository struct {
	db *sqlx.DB
}

var _ order.Repository = (*Repository)(nil)

// New returns a repository on db, whose schema Migrate has brought up to date.
func New(db *sqlx.DB) *Repository { return &Repository{db: db} }

// notFound maps the one error that means "no such row"; every other error is
// a failure and stays one.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return order.ErrNotFound
	}
	return err
}

func nullable(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

func derefString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
