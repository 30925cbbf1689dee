package load

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/jmoiron/sqlx"
	"golang.org/x/sync/errgroup"

	"github.com/mercato-dev/mercato/clients/go/mercato"
	"github.com/mercato-dev/mercato/shared/money"
)

// Databases are the product, order and payment services' databases, read
// after a run for what no API shows: the stock ledger and reservations,
// every order (not only the run's), and every payment's captured and
// refunded amounts. Read-only.
type Databases struct {
	Product, Order, Payment *sqlx.DB
}

// orderStatus reads the orders' status from the order database.
func (d *Databases) orderStatus(ctx context.Context, orders []Order) (map[string]string, error) {
	ids := make([]string, len(orders))
	for i, o := range orders {
		ids[i] = o.ID
	}
	var rows []struct {
		ID     string `db:"id"`
		Status string `db:"status"`
	}
	if err := d.Order.SelectContext(ctx, &rows, `SELECT id, status FROM orders
		WHERE id::text = ANY(string_to_array($1, ','))`, strings.Join(ids, ",")); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(rows))
	for _, r := range rows {
		out[r.ID] = r.Status
	}
	return out, nil
}

// apiStatus reads the orders' status through the gateway, each with its
// owner's token, a few at a time.
func (s *shop) apiStatus(hc *http.Client) statusSource {
	return func(ctx context.Context, orders []Order) (map[string]string, error) {
		api, err := mercato.New(strings.TrimSuffix(s.api, "/api/v1"), mercato.WithHTTPClient(hc))
		if err != nil {
			return nil, err
		}
		out := make([]string, len(orders))
		g, ctx := errgroup.WithContext(ctx)
		g.SetLimit(4)
		for i, o := range orders {
			owner := s.byShopper[o.UserID]
			if owner == nil {
				continue
			}
			g.Go(func() error {
				resp, err := api.GetOrderWithResponse(ctx, o.ID, mercato.BearerToken(owner.token))
				if err == nil && resp.JSON200 != nil {
					out[i] = string(resp.JSON200.Order.Status)
				}
				return nil // a failed read is asked again in the next round
			})
		}
		_ = g.Wait()
		m := map[string]string{}
		for i, st := range out {
			if st != "" {
				m[orders[i].ID] = st
			}
		}
		return m, nil
	}
}

// check reads the invariants that need the databases; shown is each
// order's status as the API shows it to its owner.
func (d *Databases) check(ctx context.Context, acknowledged []Order, shown map[string]string) []Invariant {
	return []Invariant{d.ordersInvariant(ctx, acknowledged, shown), d.stockInvariant(ctx), d.Money(ctx)}
}

// Result is the invariant name with the violations found (at most a few
// named), or what it checked.
func Result(name string, checked string, violations []string, err error) Invariant {
	switch {
	case err != nil:
		return Invariant{Name: name, Detail: "could not be read: " + err.Error()}
	case len(violations) == 0:
		return Invariant{Name: name, OK: true, Detail: checked}
	}
	shown := violations[:min(3, len(violations))]
	return Invariant{Name: name, Detail: fmt.Sprintf("%d violations: %s", len(violations), strings.Join(shown, "; "))}
}

// ordersInvariant: every acknowledged order is stored exactly once, with
// the status the run saw last, and the API shows its owner that status
// (shown: the run settles the orders from the database, so the status it
// saw last is no view of the API's); no order anywhere is pending without
// a live reservation holding its stock.
func (d *Databases) ordersInvariant(ctx context.Context, acknowledged []Order, shown map[string]string) Invariant {
	const name = "orders stored, none stuck"
	got, err := d.orderStatus(ctx, acknowledged)
	if err != nil {
		return Result(name, "", nil, err)
	}
	var v []string
	seen := map[string]bool{}
	for _, o := range acknowledged {
		if seen[o.ID] {
			v = append(v, "order "+o.ID+" acknowledged twice")
		}
		seen[o.ID] = true
		if st, ok := got[o.ID]; !ok {
			v = append(v, "acknowledged order "+o.ID+" is not in the order database")
		} else if st != o.Status {
			v = append(v, fmt.Sprintf("order %s is %s in the database, %s when the run last read it", o.ID, st, o.Status))
		} else if api, ok := shown[o.ID]; !ok {
			v = append(v, "acknowledged order "+o.ID+" could not be read through the API")
		} else if api != st {
			v = append(v, fmt.Sprintf("order %s is %s in the database, %s through the API", o.ID, st, api))
		}
	}
	var pending []string
	if err := d.Order.SelectContext(ctx, &pending, `SELECT id FROM orders WHERE status = 'pending'`); err != nil {
		return Result(name, "", nil, err)
	}
	var live []string
	if err := d.Product.SelectContext(ctx, &live, `SELECT order_id FROM inventory_reservations
		WHERE status = 'reserved' AND expires_at > now() AND order_id::text = ANY(string_to_array($1, ','))`,
		strings.Join(pending, ",")); err != nil {
		return Result(name, "", nil, err)
	}
	held := map[string]bool{}
	for _, id := range live {
		held[id] = true
	}
	for _, id := range pending {
		if !held[id] {
			v = append(v, "order "+id+" is pending without a live reservation")
		}
	}
	var total int
	if err := d.Order.GetContext(ctx, &total, `SELECT count(*) FROM orders`); err != nil {
		return Result(name, "", nil, err)
	}
	return Result(name, fmt.Sprintf("%d acknowledged orders stored once each, as the API shows them; %d orders in all, %d pending with a live reservation",
		len(acknowledged), total, len(pending)), v, nil)
}

// stockInvariant: for every product and variant, available + reserved +
// sold = what it was given (initial stock and admin adjustments), the
// ledger's movements add up to the available stock, and none is negative.
func (d *Databases) stockInvariant(ctx context.Context) Invariant {
	const name = "stock + reserved + sold = initial"
	var rows []struct {
		Item      string `db:"item"`
		Available int64  `db:"available"`
		Given     int64  `db:"given"`
		Ledger    int64  `db:"ledger"`
		Reserved  int64  `db:"reserved"`
		Sold      int64  `db:"sold"`
	}
	// One row per product sold as itself and per variant: the ledger's and
	// the reservations' sums grouped by (product, variant) first, so each
	// table is read once.
	err := d.Product.SelectContext(ctx, &rows, `
		WITH items AS (
			SELECT id AS product_id, NULL::uuid AS variant_id, stock_quantity AS available FROM products
			UNION ALL
			SELECT product_id, id, stock_quantity FROM product_variants),
		ledger AS (
			SELECT product_id, variant_id, sum(delta) AS ledger,
			       sum(delta) FILTER (WHERE reason IN ('initial', 'adjust')) AS given
			FROM stock_movements GROUP BY product_id, variant_id),
		held AS (
			SELECT i.product_id, i.variant_id,
			       sum(i.quantity) FILTER (WHERE r.status = 'reserved') AS reserved,
			       sum(i.quantity) FILTER (WHERE r.status = 'committed') AS sold
			FROM reservation_items i JOIN inventory_reservations r USING (order_id)
			GROUP BY i.product_id, i.variant_id)
		SELECT items.product_id::text || coalesce('/' || items.variant_id::text, '') AS item, items.available,
		       coalesce(ledger.given, 0) AS given, coalesce(ledger.ledger, 0) AS ledger,
		       coalesce(held.reserved, 0) AS reserved, coalesce(held.sold, 0) AS sold
		FROM items
		LEFT JOIN ledger ON ledger.product_id = items.product_id AND ledger.variant_id IS NOT DISTINCT FROM items.variant_id
		LEFT JOIN held ON held.product_id = items.product_id AND held.variant_id IS NOT DISTINCT FROM items.variant_id`)
	if err != nil {
		return Result(name, "", nil, err)
	}
	var v []string
	var sold, reserved int64
	for _, r := range rows {
		sold, reserved = sold+r.Sold, reserved+r.Reserved
		if r.Available+r.Reserved+r.Sold != r.Given {
			v = append(v, fmt.Sprintf("%s: available %d + reserved %d + sold %d ≠ given %d", r.Item, r.Available, r.Reserved, r.Sold, r.Given))
		}
		if r.Ledger != r.Available {
			v = append(v, fmt.Sprintf("%s: the ledger adds up to %d, available is %d", r.Item, r.Ledger, r.Available))
		}
		if r.Available < 0 {
			v = append(v, fmt.Sprintf("%s: available %d", r.Item, r.Available))
		}
	}
	if len(rows) == 0 {
		err = errors.New("no products")
	}
	return Result(name, fmt.Sprintf("%d products and variants, %d units sold, %d reserved", len(rows), sold, reserved), v, err)
}

// Money: every order's payment holds (captured − refunded) what
// the order owes — its total less its refunds when confirmed, shipped or
// delivered, nothing otherwise — and so in sum; no payment is of an order
// that does not exist.
func (d *Databases) Money(ctx context.Context) Invariant {
	const name = "captured − refunded = paid orders' totals"
	var payments []struct {
		OrderID  string       `db:"order_id"`
		Captured money.Amount `db:"captured_amount"`
		Refunded money.Amount `db:"refunded_amount"`
	}
	if err := d.Payment.SelectContext(ctx, &payments, `SELECT order_id, captured_amount, refunded_amount FROM payments`); err != nil {
		return Result(name, "", nil, err)
	}
	var orders []struct {
		ID       string       `db:"id"`
		Status   string       `db:"status"`
		Total    money.Amount `db:"total_amount"`
		Refunded money.Amount `db:"refunded_amount"`
	}
	if err := d.Order.SelectContext(ctx, &orders, `SELECT id, status, total_amount, refunded_amount FROM orders`); err != nil {
		return Result(name, "", nil, err)
	}
	held := map[string]money.Amount{}
	var heldSum, owedSum money.Amount
	for _, p := range payments {
		held[p.OrderID] += p.Captured - p.Refunded
		heldSum += p.Captured - p.Refunded
	}
	var v []string
	known := map[string]bool{}
	paid := 0
	for _, o := range orders {
		known[o.ID] = true
		var owed money.Amount
		switch o.Status {
		case "confirmed", "shipped", "delivered":
			owed = o.Total - o.Refunded
			paid++
		}
		owedSum += owed
		if held[o.ID] != owed {
			v = append(v, fmt.Sprintf("order %s (%s, total %s): its payment holds %s, want %s", o.ID, o.Status, o.Total, held[o.ID], owed))
		}
	}
	for _, p := range payments {
		if !known[p.OrderID] {
			v = append(v, "a payment of order "+p.OrderID+", which does not exist")
		}
	}
	if heldSum != owedSum {
		v = append(v, fmt.Sprintf("captured − refunded = %s in all, paid orders' totals − refunds = %s", heldSum, owedSum))
	}
	return Result(name, fmt.Sprintf("%s held for %d paid orders of %d, %d payments", heldSum, paid, len(orders), len(payments)), v, nil)
}
