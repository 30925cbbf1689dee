// Package postgres is the PostgreSQL repository of the user service, with the
// schema migrations it owns embedded: postgres.go (this file: Migrate, the
// Repository and helpers), users.go, refresh_tokens.go and addresses.go.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"

	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/shared/events"
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

// nullable stores "" as NULL, the seed's "no phone".
func nullable(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// notFound maps the one error that means "no such row"; every other error is
// a failure and stays one.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return user.ErrNotFound
	}
	return err
}

// oneRow turns an UPDATE or DELETE that matched no row into none.
func oneRow(res sql.Result, none error) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return none
	}
	return nil
}
