// Package postgres is the PostgreSQL repository of the user service, with the
// schema migrations it owns embedded: schema.go (Schema), postgres.go (this
// file: the Repository and helpers), users.go, refresh_tokens.go and
// addresses.go.
package postgres

import (
	"github.com/jmoiron/sqlx"

	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
	"github.com/mercato-dev/mercato/user"
)

// Repository implements user.Repository on PostgreSQL.
type Repository struct {
	db *sqlx.DB
}

var _ user.Repository = (*Repository)(nil)

// New returns a repository on db, whose schema Schema.Migrate has brought up
// to date.
func New(db *sqlx.DB) *Repository { return &Repository{db: db} }

// notFound maps "no such row" to the user service's ErrNotFound.
func notFound(err error) error { return sharedpg.NotFound(err, user.ErrNotFound) }
