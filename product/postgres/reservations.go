package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/mercato-dev/mercato/product"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/money"
	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
)

type reservationRow struct {
	OrderID       string         `db:"order_id"`
	Status        string         `db:"status"`
	ReleaseReason sql.NullString `db:"release_reason"`
	ExpiresAt     time.Time      `db:"expires_at"`
	Expired       bool           `db:"expired"` // by the database's clock, which every expiry is judged by
}

type itemRow struct {
	ProductID string         `db:"product_id"`
	VariantID sql.NullString `db:"variant_id"`
	Quantity  int            `db:"quantity"`
	SKU       string         `db:"sku"`
	Name      string         `db:"name"`
	UnitPrice money.Amount   `db:"unit_price"`
	Currency  string         `db:"currency"`
}

func (i itemRow) item() product.ReservedItem {
	out := product.ReservedItem{ProductID: i.ProductID, Quantity: i.Quantity, SKU: i.SKU, Name: i.Name,
		UnitPrice: i.UnitPrice, Currency: i.Currency}
	if i.VariantID.Valid {
		out.VariantID = &i.VariantID.String
	}
	return out
}

// reservation reads a reservation with its items, in the order MergeLines
// sorts lines (uuid order is the order of their canonical text), and
// whether it has expired by the database's clock.
func reservation(ctx context.Context, q sqlx.QueryerContext, orderID string, lock bool) (product.Reservation, bool, error) {
	query := `SELECT order_id, status, release_reason, expires_at, expires_at <= now() AS expired
		FROM inventory_reservations WHERE order_id = $1`
	if lock {
		query += ` FOR UPDATE`
	}
	var row reservationRow
	if err := sqlx.GetContext(ctx, q, &row, query, orderID); err != nil {
		return product.Reservation{}, false, sharedpg.NotFound(err, product.ErrNotFound)
	}
	var items []itemRow
	if err := sqlx.SelectContext(ctx, q, &items, `
		SELECT product_id, variant_id, quantity, sku, name, unit_price, currency
		FROM reservation_items WHERE order_id = $1
		ORDER BY product_id, variant_id NULLS FIRST`, orderID); err != nil {
		return product.Reservation{}, false, fmt.Errorf("reservation items: %w", err)
	}
	return product.Reservation{OrderID: row.OrderID, Status: row.Status, ReleaseReason: row.ReleaseReason.String,
		ExpiresAt: row.ExpiresAt.UTC(), Items: sharedpg.Convert(items, itemRow.item)}, row.Expired, nil
}

func (r *Repository) Reservation(ctx context.Context, orderID string) (product.Reservation, error) {
	res, _, err := reservation(ctx, r.db, orderID, false)
	return res, err
}

func (r *Repository) Reserve(ctx context.Context, orderID string, lines []product.ReservationLine, ttl time.Duration) (product.Reservation, bool, error) {
	var (
		res       product.Reservation
		created   bool
		expiresAt time.Time
	)
	err := sharedpg.InTx(ctx, r.db, func(tx *sqlx.Tx) error {
		// The header first: a concurrent reserve of the same order waits
		// here for this transaction and then finds the reservation, instead
		// of taking the stock a second time.
		// The expiry is the database's now() + ttl, as every instance's
		// sweeper and commit compare it with the database's clock.
		err := tx.GetContext(ctx, &expiresAt, `
			INSERT INTO inventory_reservations (order_id, status, expires_at)
			VALUES ($1, 'reserved', now() + make_interval(secs => $2))
			ON CONFLICT (order_id) DO NOTHING
			RETURNING expires_at`, orderID, ttl.Seconds())
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("insert reservation: %w", err)
		}
		if errors.Is(err, sql.ErrNoRows) {
			var expired bool
			res, expired, err = reservation(ctx, tx, orderID, true)
			if err != nil || res.Status != product.StatusReserved || !expired {
				return err
			}
			// Asked for again once expired (a checkout resumed late): the
			// stock is no longer the order's. Released here, as the sweeper
			// would, so the answer does not depend on whether it got there
			// first.
			res, err = giveBack(ctx, tx, res, product.ReasonExpired)
			return err
		}
		res, err = takeStock(ctx, tx, orderID, lines)
		if err != nil {
			return err
		}
		res.Status, res.ExpiresAt, created = product.StatusReserved, expiresAt.UTC(), true
		return nil
	})
	if err != nil {
		return product.Reservation{}, false, err
	}
	return res, created, nil
}

// takeStock takes every line's quantity from stock for the order, writing
// the reservation items and ledger rows, or fails with a *LineError (and the
// caller's transaction rolls back everything).
func takeStock(ctx context.Context, tx *sqlx.Tx, orderID string, lines []product.ReservationLine) (product.Reservation, error) {
	var productIDs, variantIDs []string
	for _, l := range lines {
		productIDs = append(productIDs, l.ProductID)
		if l.VariantID != nil {
			variantIDs = append(variantIDs, *l.VariantID)
		}
	}
	products, err := lockProducts(ctx, tx, productIDs)
	if err != nil {
		return product.Reservation{}, err
	}
	variants, err := lockVariants(ctx, tx, variantIDs)
	if err != nil {
		return product.Reservation{}, err
	}
	// Every line names something sellable before any stock moves.
	for _, l := range lines {
		p, ok := products[l.ProductID]
		unknown := !ok || !p.IsActive
		if l.VariantID != nil {
			v, ok := variants[*l.VariantID]
			unknown = unknown || !ok || !v.IsActive || v.ProductID != l.ProductID
		}
		if unknown {
			return product.Reservation{}, &product.LineError{Err: product.ErrUnknownProduct,
				ProductID: l.ProductID, VariantID: l.VariantID, Requested: l.Quantity}
		}
	}

	res := product.Reservation{OrderID: orderID, Items: make([]product.ReservedItem, len(lines))}
	var withVariants []string
	for i, l := range lines {
		p := products[l.ProductID]
		item := product.ReservedItem{ProductID: l.ProductID, Quantity: l.Quantity, SKU: p.SKU, Name: p.Name,
			UnitPrice: p.Price, Currency: p.Currency}
		table, id, before := "products", l.ProductID, p.StockQuantity
		if l.VariantID != nil {
			v := variants[*l.VariantID]
			item.VariantID, item.SKU, item.Name, item.UnitPrice = l.VariantID, v.SKU, v.Name, v.Price
			table, id, before = "product_variants", v.ID, v.StockQuantity
			withVariants = append(withVariants, l.ProductID)
		}
		// The row is locked, so before is current; the condition is what
		// makes overselling impossible whatever else the code does.
		upd, err := tx.ExecContext(ctx, `
			UPDATE `+table+` SET stock_quantity = stock_quantity - $2, updated_at = now()
			WHERE id = $1 AND stock_quantity >= $2`, id, l.Quantity)
		if err != nil {
			return product.Reservation{}, fmt.Errorf("take stock: %w", err)
		}
		if n, err := upd.RowsAffected(); err != nil {
			return product.Reservation{}, err
		} else if n == 0 {
			return product.Reservation{}, &product.LineError{Err: product.ErrOutOfStock,
				ProductID: l.ProductID, VariantID: l.VariantID, Requested: l.Quantity, Available: before}
		}
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO reservation_items (order_id, product_id, variant_id, quantity, sku, name, unit_price, currency)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			orderID, item.ProductID, item.VariantID, item.Quantity, item.SKU, item.Name, item.UnitPrice, item.Currency); err != nil {
			return product.Reservation{}, fmt.Errorf("insert reservation item: %w", err)
		}
		if err := movement(ctx, tx, l.ProductID, l.VariantID, -l.Quantity, "reserve", orderID); err != nil {
			return product.Reservation{}, err
		}
		if after := before - l.Quantity; product.LowStock(before, after, p.MinStockQuantity) {
			if err := enqueueLowStock(ctx, tx, l.ProductID, l.VariantID, item.SKU, after, p.MinStockQuantity); err != nil {
				return product.Reservation{}, err
			}
		}
		res.Items[i] = item
	}
	if len(withVariants) > 0 {
		if err := refreshVariantStock(ctx, tx, slices.Compact(withVariants)); err != nil {
			return product.Reservation{}, err
		}
	}
	return res, nil
}

func (r *Repository) CommitReservation(ctx context.Context, orderID string) (product.Reservation, error) {
	var (
		res     product.Reservation
		expired bool
	)
	err := sharedpg.InTx(ctx, r.db, func(tx *sqlx.Tx) error {
		var (
			gone bool
			err  error
		)
		res, gone, err = reservation(ctx, tx, orderID, true)
		if err != nil {
			return err
		}
		switch res.Status {
		case product.StatusCommitted:
			return nil
		case product.StatusReleased:
			return product.ErrReservationReleased
		}
		if gone {
			// Too late: the stock is no longer promised to this order. It is
			// released here, as the sweeper would, so the answer does not
			// depend on whether the sweeper got there first.
			expired = true
			res, err = giveBack(ctx, tx, res, product.ReasonExpired)
			return err
		}
		if _, err := tx.ExecContext(ctx, `
			UPDATE inventory_reservations SET status = 'committed', updated_at = now() WHERE order_id = $1`, orderID); err != nil {
			return fmt.Errorf("commit reservation: %w", err)
		}
		// Committing moves no available stock (the units left it when they
		// were reserved); the ledger records the sale with a zero delta.
		for _, it := range res.Items {
			if err := movement(ctx, tx, it.ProductID, it.VariantID, 0, "commit", orderID); err != nil {
				return err
			}
		}
		res.Status = product.StatusCommitted
		return nil
	})
	if err != nil {
		return product.Reservation{}, err
	}
	if expired {
		return res, product.ErrReservationReleased
	}
	return res, nil
}

func (r *Repository) ReleaseReservation(ctx context.Context, orderID string) (product.Reservation, error) {
	var res product.Reservation
	err := sharedpg.InTx(ctx, r.db, func(tx *sqlx.Tx) error {
		var err error
		res, _, err = reservation(ctx, tx, orderID, true)
		if err != nil || res.Status == product.StatusReleased {
			return err
		}
		res, err = giveBack(ctx, tx, res, product.ReasonReleased)
		return err
	})
	if err != nil {
		return product.Reservation{}, err
	}
	return res, nil
}

func (r *Repository) ReleaseNextExpired(ctx context.Context, skip []string) (string, error) {
	var orderID string
	err := sharedpg.InTx(ctx, r.db, func(tx *sqlx.Tx) error {
		// SKIP LOCKED: another instance's sweeper (or a commit or release)
		// holding a reservation is left to it, not waited for.
		err := tx.GetContext(ctx, &orderID, `
			SELECT order_id FROM inventory_reservations
			WHERE status = 'reserved' AND expires_at <= now() AND order_id <> ALL(coalesce($1::uuid[], '{}'))
			ORDER BY expires_at
			LIMIT 1
			FOR UPDATE SKIP LOCKED`, pq.Array(skip))
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("find expired reservation: %w", err)
		}
		res, _, err := reservation(ctx, tx, orderID, false) // locked just now
		if err != nil {
			return err
		}
		_, err = giveBack(ctx, tx, res, product.ReasonExpired)
		return err
	})
	return orderID, err
}

// giveBack returns a reserved or committed reservation's units to stock,
// with ledger rows ("release" or "expire"), marks it released for reason and
// enqueues inventory.released. The reservation row is locked by the caller.
func giveBack(ctx context.Context, tx *sqlx.Tx, res product.Reservation, reason string) (product.Reservation, error) {
	ledgerReason := "release"
	if reason == product.ReasonExpired {
		ledgerReason = "expire"
	}
	var productIDs, variantIDs, withVariants []string
	for _, it := range res.Items {
		productIDs = append(productIDs, it.ProductID)
		if it.VariantID != nil {
			variantIDs = append(variantIDs, *it.VariantID)
			withVariants = append(withVariants, it.ProductID)
		}
	}
	if _, err := lockProducts(ctx, tx, productIDs); err != nil {
		return product.Reservation{}, err
	}
	if _, err := lockVariants(ctx, tx, variantIDs); err != nil {
		return product.Reservation{}, err
	}
	for _, it := range res.Items {
		table, id := "products", it.ProductID
		if it.VariantID != nil {
			table, id = "product_variants", *it.VariantID
		}
		if _, err := tx.ExecContext(ctx, `
			UPDATE `+table+` SET stock_quantity = stock_quantity + $2, updated_at = now() WHERE id = $1`,
			id, it.Quantity); err != nil {
			return product.Reservation{}, fmt.Errorf("give stock back: %w", constraintError(err))
		}
		if err := movement(ctx, tx, it.ProductID, it.VariantID, it.Quantity, ledgerReason, res.OrderID); err != nil {
			return product.Reservation{}, err
		}
	}
	if len(withVariants) > 0 {
		if err := refreshVariantStock(ctx, tx, slices.Compact(withVariants)); err != nil {
			return product.Reservation{}, err
		}
	}
	if _, err := tx.ExecContext(ctx, `
		UPDATE inventory_reservations SET status = 'released', release_reason = $2, updated_at = now()
		WHERE order_id = $1`, res.OrderID, reason); err != nil {
		return product.Reservation{}, fmt.Errorf("release reservation: %w", err)
	}
	evt, err := product.NewInventoryReleasedEvent(ctx, res.OrderID, reason)
	if err != nil {
		return product.Reservation{}, err
	}
	if err := events.Enqueue(ctx, tx, evt); err != nil {
		return product.Reservation{}, err
	}
	res.Status, res.ReleaseReason = product.StatusReleased, reason
	return res, nil
}

// Seeds.
