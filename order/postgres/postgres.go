// Package postgres is the PostgreSQL repository of the order service, with
// the schema migrations it owns embedded.
package postgres

import (
	"context"
	"embed"

	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/order"
	"github.com/mercato-dev/mercato/shared/events"
	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
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

// notFound maps "no such row" to the order service's ErrNotFound.
func notFound(err error) error { return sharedpg.NotFound(err, order.ErrNotFound) }

func derefString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
