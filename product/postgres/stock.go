package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/mercato-dev/mercato/product"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/money"
	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
)

// movement writes one row of the stock ledger.
func movement(ctx context.Context, tx *sqlx.Tx, productID string, variantID *string, delta int, reason, reference string) error {
	_, err := tx.ExecContext(ctx, `
		INSERT INTO stock_movements (product_id, variant_id, delta, reason, reference)
		VALUES ($1, $2, $3, $4, $5)`, productID, variantID, delta, reason, reference)
	if err != nil {
		return fmt.Errorf("stock ledger: %w", err)
	}
	return nil
}

// refreshVariantStock recomputes products.variant_stock, the sum the
// in-stock filter reads, from the active variants' stock. Called in every
// transaction that changes a variant's stock or activity, after the change.
func refreshVariantStock(ctx context.Context, tx *sqlx.Tx, productIDs []string) error {
	_, err := tx.ExecContext(ctx, `
		UPDATE products p SET variant_stock = coalesce((
			SELECT sum(v.stock_quantity) FROM product_variants v WHERE v.product_id = p.id AND v.is_active), 0)
		WHERE p.id = ANY($1::uuid[])`, pq.Array(productIDs))
	if err != nil {
		return fmt.Errorf("refresh variant stock: %w", err)
	}
	return nil
}

// lockedProduct is the part of a product row a stock change needs, read
// under its row lock.
type lockedProduct struct {
	ID               string       `db:"id"`
	Name             string       `db:"name"`
	SKU              string       `db:"sku"`
	Price            money.Amount `db:"price"`
	Currency         string       `db:"currency"`
	StockQuantity    int          `db:"stock_quantity"`
	MinStockQuantity int          `db:"min_stock_quantity"`
	IsActive         bool         `db:"is_active"`
}

// lockProducts locks the products (in id order, the repository's lock
// order) and returns them by id; missing ones are absent.
func lockProducts(ctx context.Context, tx *sqlx.Tx, ids []string) (map[string]lockedProduct, error) {
	return lockRows(ctx, tx, "products", `
		SELECT id, name, sku, price, currency, stock_quantity, min_stock_quantity, is_active
		FROM products WHERE id = ANY($1::uuid[])
		ORDER BY id
		FOR NO KEY UPDATE`, ids, func(row lockedProduct) string { return row.ID })
}

type lockedVariant struct {
	ID            string       `db:"id"`
	ProductID     string       `db:"product_id"`
	Name          string       `db:"name"`
	SKU           string       `db:"sku"`
	Price         money.Amount `db:"price"`
	StockQuantity int          `db:"stock_quantity"`
	IsActive      bool         `db:"is_active"`
}

// lockVariants locks the variants (in id order, after their products) and
// returns them by id; missing ones are absent.
func lockVariants(ctx context.Context, tx *sqlx.Tx, ids []string) (map[string]lockedVariant, error) {
	return lockRows(ctx, tx, "variants", `
		SELECT id, product_id, name, sku, price, stock_quantity, is_active
		FROM product_variants WHERE id = ANY($1::uuid[])
		ORDER BY id
		FOR NO KEY UPDATE`, ids, func(row lockedVariant) string { return row.ID })
}

// lockRows runs query, which locks the rows of ids, and returns them by id.
func lockRows[T any](ctx context.Context, tx *sqlx.Tx, what, query string, ids []string, id func(T) string) (map[string]T, error) {
	var rows []T
	if err := tx.SelectContext(ctx, &rows, query, pq.Array(ids)); err != nil {
		return nil, fmt.Errorf("lock %s: %w", what, err)
	}
	out := make(map[string]T, len(rows))
	for _, row := range rows {
		out[id(row)] = row
	}
	return out, nil
}

func (r *Repository) AdjustStock(ctx context.Context, productID string, a product.StockAdjustment) error {
	return sharedpg.InTx(ctx, r.db, func(tx *sqlx.Tx) error {
		products, err := lockProducts(ctx, tx, []string{productID})
		if err != nil {
			return err
		}
		prod, ok := products[productID]
		if !ok {
			return product.ErrNotFound
		}
		table, id, before, sku := "products", productID, prod.StockQuantity, prod.SKU
		var variantID *string
		if a.VariantID != "" {
			variants, err := lockVariants(ctx, tx, []string{a.VariantID})
			if err != nil {
				return err
			}
			v, ok := variants[a.VariantID]
			if !ok || v.ProductID != productID {
				return product.ErrUnknownVariant
			}
			table, id, before, sku, variantID = "product_variants", v.ID, v.StockQuantity, v.SKU, &v.ID
		}
		var after int
		err = tx.GetContext(ctx, &after, `
			UPDATE `+table+` SET stock_quantity = stock_quantity + $2, updated_at = now()
			WHERE id = $1 AND stock_quantity + $2 >= 0
			RETURNING stock_quantity`, id, a.Delta)
		if errors.Is(err, sql.ErrNoRows) {
			return &product.LineError{Err: product.ErrOutOfStock, ProductID: productID, VariantID: variantID,
				Requested: -a.Delta, Available: before}
		}
		if err != nil {
			return constraintError(err)
		}
		if err := movement(ctx, tx, productID, variantID, a.Delta, "adjust", a.Reason); err != nil {
			return err
		}
		if variantID != nil {
			if err := refreshVariantStock(ctx, tx, []string{productID}); err != nil {
				return err
			}
		}
		if product.LowStock(before, after, prod.MinStockQuantity) {
			if err := enqueueLowStock(ctx, tx, productID, variantID, sku, after, prod.MinStockQuantity); err != nil {
				return err
			}
		}
		var p product.Product
		return r.updated(ctx, tx, productID, &p)
	})
}

func enqueueLowStock(ctx context.Context, tx *sqlx.Tx, productID string, variantID *string, sku string, stock, min int) error {
	evt, err := product.NewLowStockEvent(ctx, events.InventoryLowStockPayload{ProductID: productID, VariantID: variantID,
		SKU: sku, StockQuantity: stock, MinStockQuantity: min})
	if err != nil {
		return err
	}
	return events.Enqueue(ctx, tx, evt)
}

// Reservations.

// CountLowStock counts in one statement: a scan of the products, and an
// index lookup of each one's variants (product_variants_product_id_idx).
func (r *Repository) CountLowStock(ctx context.Context) (int, error) {
	var n int
	err := r.db.GetContext(ctx, &n, `
		SELECT
			(SELECT count(*) FROM products p
			 WHERE p.is_active AND p.stock_quantity <= p.min_stock_quantity
			   AND NOT EXISTS (SELECT 1 FROM product_variants v WHERE v.product_id = p.id AND v.is_active))
		  + (SELECT count(*) FROM product_variants v JOIN products p ON p.id = v.product_id
			 WHERE p.is_active AND v.is_active AND v.stock_quantity <= p.min_stock_quantity)`)
	if err != nil {
		return 0, fmt.Errorf("count low stock: %w", err)
	}
	return n, nil
}
