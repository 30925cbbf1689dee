// Package postgres is the PostgreSQL repository of the product service, with
// the schema migrations it owns embedded.
//
// Locking: a transaction that changes stock locks the product rows it needs
// first, in id order (FOR NO KEY UPDATE), and only then variant rows, in id
// order; transactions on a reservation lock its row before either. Every
// stock-changing path follows that order, so concurrent reservations,
// releases, the sweeper and admin adjustments queue behind each other but
// never deadlock. NO KEY UPDATE, not UPDATE: it leaves the key-share locks
// that foreign key checks take (a reservation item or ledger row pointing at
// the product) free.
package postgres

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/product"
	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
	"github.com/mercato-dev/mercato/shared/validate"
)

// Repository implements product.Repository on PostgreSQL.
type Repository struct {
	db *sqlx.DB
}

var _ product.Repository = (*Repository)(nil)

// New returns a repository on db, whose schema Schema.Migrate has brought up
// to date.
func New(db *sqlx.DB) *Repository { return &Repository{db: db} }

// constraintError maps the constraint violations a write can meet to
// domain errors.
func constraintError(err error) error {
	switch {
	case err == nil:
		return nil
	case sharedpg.IsUniqueViolation(err, "categories_slug_key"), sharedpg.IsUniqueViolation(err, "products_slug_key"):
		return product.ErrSlugTaken
	case sharedpg.IsUniqueViolation(err, "products_sku_key"), sharedpg.IsUniqueViolation(err, "product_variants_sku_key"):
		return product.ErrSKUTaken
	case sharedpg.IsForeignKeyViolation(err, "categories_parent_id_fkey"), sharedpg.IsForeignKeyViolation(err, "products_category_id_fkey"):
		return product.ErrUnknownCategory
	case sharedpg.IsCheckViolation(err, "categories_not_own_parent"):
		return product.ErrCategoryCycle
	case sharedpg.IsCheckViolation(err, "products_stock_quantity_max"), sharedpg.IsCheckViolation(err, "product_variants_stock_quantity_max"):
		return product.ErrStockLimit
	}
	return err
}

func nullableOpt(o validate.Optional[string]) sql.NullString {
	if o.Value == nil {
		return sql.NullString{}
	}
	return sharedpg.NullString(*o.Value)
}

// jsonb marshals v for a JSONB column; nil stays NULL. A string, because
// lib/pq would send []byte as bytea.
func jsonb(v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if string(b) == "null" {
		return nil, nil
	}
	return string(b), nil
}

// setter builds the SET list of a partial update. Column names come from
// this package's code only; values are always parameters ($1 is the row id).
type setter struct {
	cols []string
	args []any
	err  error
}

func newSetter(ids ...any) *setter { return &setter{args: ids} }

func (s *setter) set(col string, v any) {
	s.args = append(s.args, v)
	s.cols = append(s.cols, fmt.Sprintf("%s = $%d", col, len(s.args)))
}

// setOptional sets col to o's value when the patch gives one; a null (an
// Optional that is Set without a Value) is each caller's own business.
func setOptional[T any](s *setter, col string, o validate.Optional[T]) {
	if o.Value != nil {
		s.set(col, *o.Value)
	}
}

func (s *setter) setJSON(col string, v any) {
	j, err := jsonb(v)
	if err != nil {
		s.err = err
		return
	}
	s.set(col, j)
}

func (s *setter) clause() string {
	return strings.Join(append(s.cols, "updated_at = now()"), ", ")
}
