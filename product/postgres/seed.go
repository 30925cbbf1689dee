package postgres

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/product"
	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
)

func (r *Repository) SeedCatalogue(ctx context.Context, seed string, categories []product.Category, products []product.Product) (bool, error) {
	var seeded bool
	err := sharedpg.InTx(ctx, r.db, func(tx *sqlx.Tx) error {
		// The marker row is the arbiter between instances starting together:
		// the second waits on the first's uncommitted insert, then finds it.
		res, err := tx.ExecContext(ctx, `INSERT INTO data_seeds (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`, seed)
		if err != nil {
			return fmt.Errorf("seed marker: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		for _, c := range categories { // parents come first
			if _, err := tx.ExecContext(ctx, insertCategory, c.ID, c.Name, c.Slug, sharedpg.NullString(c.Description), c.ParentID); err != nil {
				return fmt.Errorf("seed category %s: %w", c.Slug, constraintError(err))
			}
		}
		for _, p := range products {
			if _, err := r.insertProduct(ctx, tx, p); err != nil {
				return fmt.Errorf("seed product %s: %w", p.Slug, err)
			}
		}
		seeded = true
		return nil
	})
	return seeded, err
}
