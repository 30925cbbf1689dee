package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/mercato-dev/mercato/order"
	"github.com/mercato-dev/mercato/shared/defaults"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/money"
	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
)

// Orders: their rows, items and history, and the transitions that change them.

type orderRow struct {
	ID              string         `db:"id"`
	UserID          string         `db:"user_id"`
	OrderNumber     string         `db:"order_number"`
	Status          string         `db:"status"`
	Subtotal        money.Amount   `db:"subtotal"`
	TaxAmount       money.Amount   `db:"tax_amount"`
	ShippingAmount  money.Amount   `db:"shipping_amount"`
	DiscountAmount  money.Amount   `db:"discount_amount"`
	TotalAmount     money.Amount   `db:"total_amount"`
	Currency        string         `db:"currency"`
	ShippingAddress []byte         `db:"shipping_address"`
	BillingAddress  []byte         `db:"billing_address"`
	PaymentID       sql.NullString `db:"payment_id"`
	PaymentStatus   sql.NullString `db:"payment_status"`
	CardBrand       sql.NullString `db:"card_brand"`
	CardLast4       sql.NullString `db:"card_last4"`
	PaymentFailure  sql.NullString `db:"payment_failure"`
	RefundedAmount  money.Amount   `db:"refunded_amount"`
	CreatedAt       time.Time      `db:"created_at"`
	UpdatedAt       time.Time      `db:"updated_at"`
}

const orderColumns = `id, user_id, order_number, status, subtotal, tax_amount, shipping_amount, discount_amount,
	total_amount, currency, shipping_address, billing_address, payment_id, payment_status, card_brand, card_last4,
	payment_failure, refunded_amount, created_at, updated_at`

func (r orderRow) order() (order.Order, error) {
	o := order.Order{
		ID: r.ID, UserID: r.UserID, OrderNumber: r.OrderNumber, Status: order.Status(r.Status),
		Subtotal: r.Subtotal, TaxAmount: r.TaxAmount, ShippingAmount: r.ShippingAmount,
		DiscountAmount: r.DiscountAmount, TotalAmount: r.TotalAmount, Currency: r.Currency,
		Items: []order.Item{}, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
	if err := json.Unmarshal(r.ShippingAddress, &o.ShippingAddress); err != nil {
		return order.Order{}, fmt.Errorf("order %s: shipping address: %w", r.ID, err)
	}
	if err := json.Unmarshal(r.BillingAddress, &o.BillingAddress); err != nil {
		return order.Order{}, fmt.Errorf("order %s: billing address: %w", r.ID, err)
	}
	if r.PaymentStatus.Valid {
		o.Payment = &order.Payment{ID: r.PaymentID.String, Status: r.PaymentStatus.String,
			FailureCode: r.PaymentFailure.String, RefundedAmount: r.RefundedAmount}
		if r.CardBrand.Valid || r.CardLast4.Valid {
			o.Payment.Card = &order.CardSummary{Brand: r.CardBrand.String, Last4: r.CardLast4.String}
		}
	}
	return o, nil
}

type itemRow struct {
	ID         string         `db:"id"`
	OrderID    string         `db:"order_id"`
	ProductID  string         `db:"product_id"`
	VariantID  sql.NullString `db:"variant_id"`
	SKU        string         `db:"sku"`
	Name       string         `db:"name"`
	Quantity   int            `db:"quantity"`
	UnitPrice  money.Amount   `db:"unit_price"`
	TotalPrice money.Amount   `db:"total_price"`
}

const itemColumns = `id, order_id, product_id, variant_id, sku, name, quantity, unit_price, total_price`

func (r itemRow) item() order.Item {
	it := order.Item{ID: r.ID, ProductID: r.ProductID, SKU: r.SKU, Name: r.Name, Quantity: r.Quantity,
		UnitPrice: r.UnitPrice, TotalPrice: r.TotalPrice}
	if r.VariantID.Valid {
		v := r.VariantID.String
		it.VariantID = &v
	}
	return it
}

type historyRow struct {
	Status    string         `db:"status"`
	Reason    sql.NullString `db:"reason"`
	CreatedAt time.Time      `db:"created_at"`
}

func (r *Repository) CreateOrder(ctx context.Context, o order.Order, created events.Envelope) (order.Order, error) {
	shipping, err := json.Marshal(o.ShippingAddress)
	if err != nil {
		return order.Order{}, err
	}
	billing, err := json.Marshal(o.BillingAddress)
	if err != nil {
		return order.Order{}, err
	}
	// Each line's columns as an array, so every line goes in with one
	// statement however many there are.
	n := len(o.Items)
	var (
		ids, products, skus, names, units, totals = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		variants                                  = make([]sql.NullString, n)
		quantities, lines                         = make([]int64, n), make([]int64, n)
	)
	for i, it := range o.Items {
		ids[i], products[i], skus[i], names[i] = it.ID, it.ProductID, it.SKU, it.Name
		variants[i] = sharedpg.NullString(defaults.Deref(it.VariantID))
		quantities[i], lines[i] = int64(it.Quantity), int64(i+1)
		units[i], totals[i] = it.UnitPrice.String(), it.TotalPrice.String()
	}
	var at struct {
		CreatedAt time.Time `db:"created_at"`
	}
	err = sharedpg.InTx(ctx, r.db, func(tx *sqlx.Tx) error {
		err := tx.GetContext(ctx, &at, `
			INSERT INTO orders (id, user_id, order_number, status, subtotal, tax_amount, shipping_amount,
			                    discount_amount, total_amount, currency, shipping_address, billing_address)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
			RETURNING created_at`,
			o.ID, o.UserID, o.OrderNumber, string(o.Status), o.Subtotal, o.TaxAmount, o.ShippingAmount,
			o.DiscountAmount, o.TotalAmount, o.Currency, string(shipping), string(billing))
		switch {
		case sharedpg.IsUniqueViolation(err, "orders_order_number_key"):
			return order.ErrOrderNumberTaken
		case sharedpg.IsUniqueViolation(err, "orders_pkey"):
			return order.ErrOrderExists
		case err != nil:
			return fmt.Errorf("insert order: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO order_items (id, order_id, line, product_id, variant_id, sku, name, quantity, unit_price, total_price)
			SELECT i.id, $1, i.line, i.product_id, i.variant_id, i.sku, i.name, i.quantity, i.unit_price, i.total_price
			FROM unnest($2::uuid[], $3::smallint[], $4::uuid[], $5::uuid[], $6::text[], $7::text[], $8::int[],
			            $9::numeric[], $10::numeric[])
			     AS i(id, line, product_id, variant_id, sku, name, quantity, unit_price, total_price)`,
			o.ID, pq.Array(ids), pq.Array(lines), pq.Array(products), pq.Array(variants), pq.Array(skus),
			pq.Array(names), pq.Array(quantities), pq.Array(units), pq.Array(totals)); err != nil {
			return fmt.Errorf("insert order items: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO order_status_history (order_id, status, reason, created_at) VALUES ($1, $2, $3, $4)`,
			o.ID, string(o.Status), "order placed", at.CreatedAt); err != nil {
			return fmt.Errorf("insert status history: %w", err)
		}
		return events.Enqueue(ctx, tx, created)
	})
	if err != nil {
		return order.Order{}, err
	}
	o.CreatedAt, o.UpdatedAt = at.CreatedAt.UTC(), at.CreatedAt.UTC()
	o.StatusHistory = []order.StatusChange{{Status: o.Status, Reason: "order placed", At: o.CreatedAt}}
	return o, nil
}

func (r *Repository) OrderByID(ctx context.Context, id string) (order.Order, error) {
	// One snapshot: the order's status, items and history as one commit
	// left them, not a status from before a transition and its history row
	// from after.
	var o order.Order
	err := sharedpg.InSnapshot(ctx, r.db, func(tx *sqlx.Tx) error {
		var err error
		o, err = orderByID(ctx, tx, id, "")
		return err
	})
	return o, err
}

// orderByID reads an order with its items and history; lock is "" or
// "FOR UPDATE", for the order row.
func orderByID(ctx context.Context, q sqlx.QueryerContext, id, lock string) (order.Order, error) {
	var row orderRow
	if err := sqlx.GetContext(ctx, q, &row, `SELECT `+orderColumns+` FROM orders WHERE id = $1 `+lock, id); err != nil {
		return order.Order{}, notFound(err)
	}
	o, err := row.order()
	if err != nil {
		return order.Order{}, err
	}
	var items []itemRow
	if err := sqlx.SelectContext(ctx, q, &items, `SELECT `+itemColumns+` FROM order_items WHERE order_id = $1 ORDER BY line`, id); err != nil {
		return order.Order{}, fmt.Errorf("order items: %w", err)
	}
	for _, it := range items {
		o.Items = append(o.Items, it.item())
	}
	var history []historyRow
	if err := sqlx.SelectContext(ctx, q, &history, `
		SELECT status, reason, created_at FROM order_status_history WHERE order_id = $1 ORDER BY id`, id); err != nil {
		return order.Order{}, fmt.Errorf("order history: %w", err)
	}
	for _, h := range history {
		o.StatusHistory = append(o.StatusHistory, order.StatusChange{
			Status: order.Status(h.Status), Reason: h.Reason.String, At: h.CreatedAt.UTC()})
	}
	return o, nil
}

func (r *Repository) ListOrders(ctx context.Context, userID string, status order.Status, offset, limit int) ([]order.Order, int, error) {
	// "" matches every user and every status.
	const where = `WHERE ($1 = '' OR user_id = NULLIF($1, '')::uuid) AND ($2 = '' OR status = $2)`
	rows, total, err := sharedpg.Page[orderRow](ctx, r.db, orderColumns, `orders `+where, `created_at DESC, id DESC`,
		offset, limit, userID, string(status))
	if err != nil {
		return nil, 0, fmt.Errorf("list orders: %w", err)
	}
	orders, err := sharedpg.TryConvert(rows, orderRow.order)
	if err != nil {
		return nil, 0, err
	}
	index := make(map[string]int, len(rows))
	ids := make([]string, len(rows))
	for i, row := range rows {
		index[row.ID], ids[i] = i, row.ID
	}
	if len(rows) == 0 {
		return orders, total, nil
	}
	// An order's items are written with it and never change, so the
	// page's snapshot need not hold for them.
	var items []itemRow
	if err := r.db.SelectContext(ctx, &items, `
		SELECT `+itemColumns+` FROM order_items WHERE order_id = ANY($1::uuid[]) ORDER BY order_id, line`,
		pq.Array(ids)); err != nil {
		return nil, 0, fmt.Errorf("list order items: %w", err)
	}
	for _, it := range items {
		i := index[it.OrderID]
		orders[i].Items = append(orders[i].Items, it.item())
	}
	return orders, total, nil
}

func (r *Repository) Transition(ctx context.Context, tx events.Tx, id string, decide func(order.Order) (*order.Change, error)) (order.Order, error) {
	var out order.Order
	apply := func(tx events.Tx) error {
		cur, err := orderByID(ctx, tx, id, "FOR UPDATE")
		if err != nil {
			return err
		}
		change, err := decide(cur)
		if err != nil {
			return err
		}
		if change == nil {
			out = cur
			return nil
		}
		out, err = applyChange(ctx, tx, cur, change)
		return err
	}
	if tx != nil {
		return out, apply(tx)
	}
	return out, sharedpg.InTx(ctx, r.db, func(tx *sqlx.Tx) error { return apply(tx) })
}

// applyChange writes change to the locked order cur and returns the order
// as it now is (what a fresh read would return, without the read).
func applyChange(ctx context.Context, tx events.Tx, cur order.Order, change *order.Change) (order.Order, error) {
	status := cur.Status
	if change.Status != "" {
		status = change.Status
	}
	p := cur.Payment
	if change.Payment != nil {
		p = change.Payment
	}
	var (
		paymentID, paymentStatus, brand, last4, failure sql.NullString
		refunded                                        money.Amount
	)
	if p != nil {
		paymentID, paymentStatus, failure = sharedpg.NullString(p.ID), sharedpg.NullString(p.Status), sharedpg.NullString(p.FailureCode)
		refunded = p.RefundedAmount
		if p.Card != nil {
			brand, last4 = sharedpg.NullString(p.Card.Brand), sharedpg.NullString(p.Card.Last4)
		}
	}
	var row orderRow
	if err := sqlx.GetContext(ctx, tx, &row, `
		UPDATE orders SET status = $2, payment_id = $3, payment_status = $4, card_brand = $5, card_last4 = $6,
		                  payment_failure = $7, refunded_amount = $8, updated_at = now()
		WHERE id = $1
		RETURNING `+orderColumns,
		cur.ID, string(status), paymentID, paymentStatus, brand, last4, failure, refunded); err != nil {
		return order.Order{}, fmt.Errorf("update order: %w", err)
	}
	out, err := row.order()
	if err != nil {
		return order.Order{}, err
	}
	out.Items, out.StatusHistory = cur.Items, cur.StatusHistory
	if status != cur.Status {
		var at time.Time
		if err := sqlx.GetContext(ctx, tx, &at, `
			INSERT INTO order_status_history (order_id, status, previous_status, reason) VALUES ($1, $2, $3, $4)
			RETURNING created_at`,
			cur.ID, string(status), string(cur.Status), sharedpg.NullString(change.Reason)); err != nil {
			return order.Order{}, fmt.Errorf("insert status history: %w", err)
		}
		out.StatusHistory = append(out.StatusHistory[:len(out.StatusHistory):len(out.StatusHistory)],
			order.StatusChange{Status: status, Reason: change.Reason, At: at.UTC()})
	}
	for _, e := range change.Events {
		if err := events.Enqueue(ctx, tx, e); err != nil {
			return order.Order{}, err
		}
	}
	return out, nil
}
