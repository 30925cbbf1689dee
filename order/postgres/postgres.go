// Package postgres is the PostgreSQL repository of the order service, with
// the schema migrations it owns embedded.
package postgres

import (
	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/order"
	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
)

// Repository implements order.Repository on PostgreSQL.
type Repository struct {
	db *sqlx.DB
}

var _ order.Repository = (*Repository)(nil)

// New returns a repository on db, whose schema Schema.Migrate has brought up
// to date.
func New(db *sqlx.DB) *Repository { return &Repository{db: db} }

// notFound maps "no such row" to the order service's ErrNotFound.
func notFound(err error) error { return sharedpg.NotFound(err, order.ErrNotFound) }
