package postgres

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/product"
	"github.com/mercato-dev/mercato/shared/money"
	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
	"github.com/mercato-dev/mercato/shared/testkit"
	"github.com/mercato-dev/mercato/shared/validate"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func newRepo(t *testing.T) (*Repository, *sqlx.DB) {
	t.Helper()
	db := testkit.Postgres(t)
	ctx := context.Background()
	if err := Schema.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	// A second run is a no-op: every instance migrates at start.
	if err := Schema.Migrate(ctx, db); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	return New(db), db
}

func count(t *testing.T, db *sqlx.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.Get(&n, query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// TestListQueriesUseIndexes builds the 100,000-product catalogue of
// testdata/catalogue.sql and checks, with EXPLAIN, that the page query of
// every filter and sort is served by the index made for it. Each case picks
// parameters for which that index is the plan a DBA would want (a leaf
// category, a narrow price band, a rare noun): with a filter that keeps most
// of the catalogue, walking the sort's index and filtering is cheaper, and
// PostgreSQL rightly does that instead — the broad cases check only that no
// sequential scan of products is left.
func TestListQueriesUseIndexes(t *testing.T) {
	repo, db := newRepo(t)
	ctx := context.Background()
	script, err := os.ReadFile("testdata/catalogue.sql")
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	if _, err := db.ExecContext(ctx, string(script)); err != nil {
		t.Fatalf("catalogue.sql: %v", err)
	}
	if _, err := db.ExecContext(ctx, `VACUUM ANALYZE`); err != nil {
		t.Fatal(err)
	}
	t.Logf("100,000 products generated and analysed in %s", time.Since(begin).Round(time.Millisecond))
	if n := count(t, db, `SELECT count(*) FROM products`); n != 100_000 {
		t.Fatalf("%d products", n)
	}

	leaf, err := repo.CategoryTree(ctx, "dept-3-sub-4-leaf-2")
	if err != nil || len(leaf) != 1 {
		t.Fatalf("leaf = %v, %v", leaf, err)
	}
	dept, err := repo.CategoryTree(ctx, "dept-4")
	if err != nil || len(dept) != 61 {
		t.Fatalf("department tree = %d ids, %v; want 61", len(dept), err)
	}
	price := func(s string) *money.Amount {
		a, err := money.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return &a
	}
	q := func(f product.ProductQuery, categories []string) product.ProductFilter {
		f.Page, f.PageSize = 1, 20
		return product.ProductFilter{ProductQuery: f, CategoryIDs: categories}
	}
	tests := []struct {
		name  string
		f     product.ProductFilter
		index string // "" = any index, but no sequential scan of products
	}{
		{"category (leaf), sort=price", q(product.ProductQuery{Sort: product.SortPrice}, leaf), "products_category_price_idx"},
		{"category (leaf), newest first", q(product.ProductQuery{Sort: product.SortNewest}, leaf), "products_category_price_idx"},
		{"category (department), sort=price", q(product.ProductQuery{Sort: product.SortPrice}, dept), ""},
		{"q, by relevance (the default with q)", q(product.ProductQuery{Q: "telescope", Sort: product.SortRelevance}, nil), "products_search_idx"},
		{"q, newest first", q(product.ProductQuery{Q: "quiet telescope", Sort: product.SortNewest}, nil), "products_search_idx"},
		{"price range, newest first", q(product.ProductQuery{MinPrice: price("500.00"), MaxPrice: price("500.99"), Sort: product.SortNewest}, nil), "products_price_idx"},
		{"price range, sort=price", q(product.ProductQuery{MinPrice: price("100"), MaxPrice: price("200"), Sort: product.SortPrice}, nil), "products_price_idx"},
		{"min_price only, sort=price", q(product.ProductQuery{MinPrice: price("900"), Sort: product.SortPrice}, nil), "products_price_idx"},
		{"in_stock", q(product.ProductQuery{InStock: true, Sort: product.SortNewest}, nil), "products_in_stock_idx"},
		{"featured", q(product.ProductQuery{Featured: true, Sort: product.SortNewest}, nil), "products_featured_idx"},
		{"sort=price", q(product.ProductQuery{Sort: product.SortPrice}, nil), "products_price_idx"},
		{"sort=-price", q(product.ProductQuery{Sort: product.SortPriceDesc}, nil), "products_price_idx"},
		{"sort=name", q(product.ProductQuery{Sort: product.SortName}, nil), "products_name_idx"},
		{"sort=-created_at", q(product.ProductQuery{Sort: product.SortNewest}, nil), "products_created_at_idx"},
		{"every filter", q(product.ProductQuery{Q: "kettle", MinPrice: price("10"), MaxPrice: price("900"), InStock: true,
			Featured: true, Sort: product.SortPrice}, dept), ""},
		// An admin sees inactive products too: no is_active for the partial
		// indexes to match, so these need indexes of every product (00002).
		{"admin, newest first (the default)", q(product.ProductQuery{Admin: true, Sort: product.SortNewest}, nil), "products_all_created_at_idx"},
		{"admin, category (leaf), newest first", q(product.ProductQuery{Admin: true, Sort: product.SortNewest}, leaf), "products_all_category_idx"},
		{"admin, category (leaf), sort=price", q(product.ProductQuery{Admin: true, Sort: product.SortPrice}, leaf), "products_all_category_idx"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			countQuery, _, page, args := listSQL(tc.f)
			for _, query := range []struct {
				name, sql string
				args      []any
			}{{"page", page, args}, {"count", countQuery, args[:len(args)-2]}} {
				var lines []string
				if err := db.SelectContext(ctx, &lines, `EXPLAIN `+query.sql, query.args...); err != nil {
					t.Fatalf("EXPLAIN %s: %v", query.name, err)
				}
				plan := strings.Join(lines, "\n")
				if strings.Contains(plan, "Seq Scan on products") {
					t.Errorf("%s: sequential scan:\n%s", query.name, plan)
				}
				if tc.index != "" && !strings.Contains(plan, tc.index) {
					t.Errorf("%s: plan does not use %s:\n%s", query.name, tc.index, plan)
				}
			}
			// And the query returns what it says.
			items, total, err := repo.ListProducts(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if total == 0 || len(items) == 0 || len(items) > 20 {
				t.Errorf("%d items of %d", len(items), total)
			}
			// total is exact up to ExactTotalLimit, an estimate above it
			// that stays above the limit and near the truth.
			where, whereArgs, _ := listQuery(tc.f)
			exact := count(t, db, `SELECT count(*) FROM products p WHERE `+where, whereArgs...)
			switch {
			case exact <= ExactTotalLimit && total != exact:
				t.Errorf("total %d, want the exact %d", total, exact)
			case exact > ExactTotalLimit && (total <= ExactTotalLimit || total > 2*exact || 2*total < exact):
				t.Errorf("total %d, want an estimate above %d near the exact %d", total, ExactTotalLimit, exact)
			}
			for i := 1; i < len(items); i++ {
				if tc.f.Sort == product.SortPrice && items[i].Price < items[i-1].Price {
					t.Errorf("not sorted by price at %d", i)
				}
			}
		})
	}
}

// TestSeedCatalogueConcurrently is two instances starting together with
// -seed-demo: one loads the catalogue, the other finds it loaded.
func TestSeedCatalogueConcurrently(t *testing.T) {
	repo, db := newRepo(t)
	cats, products := product.DemoCatalogue()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		seeded int
	)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := repo.SeedCatalogue(context.Background(), "demo", cats, products)
			if err != nil {
				t.Errorf("seed: %v", err)
			}
			if ok {
				mu.Lock()
				seeded++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if seeded != 1 {
		t.Errorf("seeded %d times, want 1", seeded)
	}
	if ok, err := repo.SeedCatalogue(context.Background(), "demo", cats, products); ok || err != nil {
		t.Errorf("seed again: %v, %v", ok, err)
	}
	if n := count(t, db, `SELECT count(*) FROM products`); n != 50 {
		t.Errorf("%d products", n)
	}
	if n := count(t, db, `SELECT count(*) FROM categories`); n != len(cats) {
		t.Errorf("%d categories", n)
	}
	if n := count(t, db, `SELECT count(*) FROM outbox WHERE type = 'product.created'`); n != 50 {
		t.Errorf("%d product.created events", n)
	}
	// Every product is in stock, on its own or through its variants, and
	// the ledger holds the initial stock.
	if n := count(t, db, `SELECT count(*) FROM products WHERE stock_quantity = 0 AND variant_stock = 0`); n != 0 {
		t.Errorf("%d demo products out of stock", n)
	}
	if n := count(t, db, `SELECT count(*) FROM products p WHERE variant_stock <>
			(SELECT coalesce(sum(stock_quantity), 0) FROM product_variants v WHERE v.product_id = p.id)`); n != 0 {
		t.Errorf("%d products whose variant_stock is off", n)
	}
	if a, b := count(t, db, `SELECT sum(delta) FROM stock_movements`),
		count(t, db, `SELECT (SELECT sum(stock_quantity) FROM products) + (SELECT sum(stock_quantity) FROM product_variants)`); a != b {
		t.Errorf("ledger sums to %d, stock to %d", a, b)
	}
}

func TestSchemaConstraints(t *testing.T) {
	repo, db := newRepo(t)
	ctx := context.Background()
	p := product.Product{ID: uuid.NewString(), Name: "P", Slug: "p", SKU: "P-1", Price: 100, Currency: "USD",
		StockQuantity: 2, Images: []string{}, IsActive: true}
	if _, err := repo.CreateProduct(ctx, p); err != nil {
		t.Fatal(err)
	}
	c, err := repo.CreateCategory(ctx, product.Category{ID: uuid.NewString(), Name: "C", Slug: "c"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		query      string
		args       []any
		constraint string
		check      func(error, ...string) bool
	}{
		{"negative stock", `UPDATE products SET stock_quantity = -1 WHERE id = $1`, []any{p.ID}, "products_stock_quantity_check", sharedpg.IsCheckViolation},
		{"negative price", `UPDATE products SET price = -0.01 WHERE id = $1`, []any{p.ID}, "products_price_check", sharedpg.IsCheckViolation},
		{"negative cost", `UPDATE products SET cost_price = -1 WHERE id = $1`, []any{p.ID}, "products_cost_price_check", sharedpg.IsCheckViolation},
		{"huge stock", `UPDATE products SET stock_quantity = 1000000001 WHERE id = $1`, []any{p.ID}, "products_stock_quantity_max", sharedpg.IsCheckViolation},
		{"negative variant stock", `INSERT INTO product_variants (product_id, sku, name, price, stock_quantity) VALUES ($1, 'V', 'V', 1, -1)`, []any{p.ID}, "product_variants_stock_quantity_check", sharedpg.IsCheckViolation},
		{"own parent", `UPDATE categories SET parent_id = id WHERE id = $1`, []any{c.ID}, "categories_not_own_parent", sharedpg.IsCheckViolation},
		{"status", `INSERT INTO inventory_reservations (order_id, status, expires_at) VALUES ($1, 'lost', now())`, []any{uuid.NewString()}, "inventory_reservations_status_check", sharedpg.IsCheckViolation},
		{"released without reason", `INSERT INTO inventory_reservations (order_id, status, expires_at) VALUES ($1, 'released', now())`, []any{uuid.NewString()}, "inventory_reservations_release_reason_check", sharedpg.IsCheckViolation},
		{"ledger reason", `INSERT INTO stock_movements (product_id, delta, reason, reference) VALUES ($1, 1, 'gift', 'x')`, []any{p.ID}, "stock_movements_reason_check", sharedpg.IsCheckViolation},
		{"orphaning a category's products", `UPDATE products SET category_id = $2 WHERE id = $1`, []any{p.ID, uuid.NewString()}, "products_category_id_fkey", sharedpg.IsForeignKeyViolation},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := db.Exec(tc.query, tc.args...)
			if !tc.check(err, tc.constraint) {
				t.Errorf("err = %v, want a violation of %s", err, tc.constraint)
			}
		})
	}

	// Only "no rows" is not found: a failing query is a failure.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := repo.ProductByID(cancelled, p.ID); err == nil || err == product.ErrNotFound {
		t.Errorf("ProductByID with a cancelled context: err = %v, want a failure that is not ErrNotFound", err)
	}
	if _, err := repo.ProductByID(ctx, uuid.NewString()); err != product.ErrNotFound {
		t.Errorf("ProductByID(missing): %v", err)
	}
}

// TestListIsOneSnapshot: docs/api.md calls a list's total exact (up to
// ExactTotalLimit matches). Products deactivated and reactivated while the
// list is read must not give a page that contradicts its own total.
func TestListIsOneSnapshot(t *testing.T) {
	repo, _ := newRepo(t)
	ctx := context.Background()
	var ids []string
	for i := range 10 {
		p := product.Product{ID: uuid.NewString(), Name: "P", Slug: "p-" + strings.Repeat("x", i+1), SKU: uuid.NewString(),
			Price: 100, Currency: "USD", Images: []string{}, IsActive: true}
		if _, err := repo.CreateProduct(ctx, p); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, p.ID)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for active := false; ; active = !active {
			select {
			case <-done:
				return
			default:
			}
			for _, id := range ids[:5] {
				if _, err := repo.UpdateProduct(ctx, id, product.ProductPatch{IsActive: validate.Some(active)}); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	contradictions := 0
	for range 300 {
		items, total, err := repo.ListProducts(ctx, product.ProductFilter{ProductQuery: product.ProductQuery{Page: 1, PageSize: 100}})
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != total {
			contradictions++
		}
	}
	close(done)
	wg.Wait()
	if contradictions > 0 {
		t.Errorf("%d of 300 pages of all products whose items are not their total", contradictions)
	}
}

// TestMigrateAfterAnInterruptedIndexBuild: a concurrent index build that the
// start-up deadline cut short is built again at the next start. It left an
// INVALID index, which CREATE INDEX CONCURRENTLY IF NOT EXISTS took for the
// index, and the migration was recorded as applied without one.
func TestMigrateAfterAnInterruptedIndexBuild(t *testing.T) {
	testkit.MigrateInterrupted(t, testkit.Postgres(t), Schema.Migrate)
}
