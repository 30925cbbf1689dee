// Package postgres is the PostgreSQL repository of the user service, with the
// schema migrations it owns embedded: postgres.go (this file: Migrate, the
// Repository and helpers), users.go, refresh_tokens.go and addresses.go.
package postgres

import (
	"context"
	"embed"

	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/shared/events"
	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
	"github.com/mercato-dev/mercato/user"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// schemaTable records the user service's migrations, apart from the events
// package's own table in the same database.
const schemaTable = "user_schema_version"

// Migrate brings the database to the current schema: the user tables and
// the events outbox/inbox.
func Migrate(ctx context.Context, db *sqlx.DB) error {
	return events.MigrateService(ctx, db, migrationFiles, schemaTable)
}

// Repository implements user.Repository on PostgreSQL.
type Repository struct {
	db *sqlx.DB
}

var _ user.Repository = (*Repository)(nil)

// New returns a repository on db, whose schema Migrate has brought up to date.
func New(db *sqlx.DB) *Repository { return &Repository{db: db} }

// notFound maps "no such row" to the user service's ErrNotFound.
func notFound(err error) error { return sharedpg.NotFound(err, user.ErrNotFound) }
