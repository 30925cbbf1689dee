package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/jmoiron/sqlx"

	orderpg "github.com/mercato-dev/mercato/order/postgres"
	paymentpg "github.com/mercato-dev/mercato/payment/postgres"
	"github.com/mercato-dev/mercato/payment/sandbox"
	productpg "github.com/mercato-dev/mercato/product/postgres"
	"github.com/mercato-dev/mercato/shared/localinfra"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// PostgreSQL's ceiling for checkouts: scripts/pgbench-checkout.sql, all the
// database work of one checkout, run by pgbench against a scratch database
// holding the order, product and payment databases side by side as schemas.

// checkoutSchemas are the schemas of the scratch database, each migrated as
// its service migrates its own database.
var checkoutSchemas = []struct {
	name    string
	migrate []func(context.Context, *sqlx.DB) error
}{
	{"order_db", []func(context.Context, *sqlx.DB) error{orderpg.Schema.Migrate}},
	{"product_db", []func(context.Context, *sqlx.DB) error{productpg.Schema.Migrate}},
	{"payment_db", []func(context.Context, *sqlx.DB) error{paymentpg.Schema.Migrate, sandbox.Migrate}},
}

// checkoutCeilingDB creates a scratch database on the test PostgreSQL server
// with the order_db, product_db and payment_db schemas, each brought up by
// the service's own migrations (outbox, inbox and the notify triggers
// included) through a connection whose search_path is that schema, and
// seeds the product the script sells. It returns the database's URL and the
// product's id.
func checkoutCeilingDB(b *testing.B) (dbURL, productID string) {
	b.Helper()
	ctx := context.Background()
	dbURL = testkit.PostgresURL(b)
	db, err := sqlx.Open("postgres", dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for _, s := range checkoutSchemas {
		if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+s.name); err != nil {
			b.Fatalf("schema %s: %v", s.name, err)
		}
		if err := migrateIn(ctx, dbURL, s.name, s.migrate); err != nil {
			b.Fatalf("schema %s: %v", s.name, err)
		}
	}
	// The benchmark's Bench Mug: one product every checkout buys, stock
	// enough for any run.
	if err := db.GetContext(ctx, &productID, `
		INSERT INTO product_db.products (name, slug, sku, price, currency, stock_quantity)
		VALUES ('Bench Mug', 'pgb-mug', 'PGB-MUG', 19.99, 'USD', 1000000000)
		RETURNING id`); err != nil {
		b.Fatalf("seed product: %v", err)
	}
	return dbURL, productID
}

// migrateIn applies migrations to schema of the database at dbURL.
func migrateIn(ctx context.Context, dbURL, schema string, migrations []func(context.Context, *sqlx.DB) error) error {
	u, err := url.Parse(dbURL)
	if err != nil {
		return err
	}
	q := u.Query()
	q.Set("search_path", schema) // lib/pq sends it as a run-time parameter
	u.RawQuery = q.Encode()
	db, err := sqlx.Open("postgres", u.String())
	if err != nil {
		return err
	}
	defer db.Close()
	for _, migrate := range migrations {
		if err := migrate(ctx, db); err != nil {
			return err
		}
	}
	return nil
}

// checkCheckouts fails b unless every checkout the script ran in the
// database at dbURL ended as a real one does: the order confirmed with its
// payment captured, the key done, the event in the inbox, the reservation
// committed, the payment completed by its webhook, the stock taken. A
// statement that matched no row (a column renamed, an id mixed up) would
// leave a checkout short of that and the ceiling too high.
func checkCheckouts(b *testing.B, dbURL string) {
	b.Helper()
	db, err := sqlx.Open("postgres", dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var n struct {
		Orders    int `db:"orders"`
		Confirmed int `db:"confirmed"`
		Keys      int `db:"keys"`
		Inbox     int `db:"inbox"`
		Committed int `db:"committed"`
		Completed int `db:"completed"`
		Webhooks  int `db:"webhooks"`
		Sold      int `db:"sold"`
	}
	if err := db.GetContext(context.Background(), &n, `SELECT
		(SELECT count(*) FROM order_db.orders) AS orders,
		(SELECT count(*) FROM order_db.orders WHERE status = 'confirmed' AND payment_status = 'captured') AS confirmed,
		(SELECT count(*) FROM order_db.idempotency_keys WHERE state = 'done') AS keys,
		(SELECT count(*) FROM order_db.inbox) AS inbox,
		(SELECT count(*) FROM product_db.inventory_reservations WHERE status = 'committed') AS committed,
		(SELECT count(*) FROM payment_db.payments WHERE status = 'completed') AS completed,
		(SELECT count(*) FROM payment_db.webhook_events) AS webhooks,
		(SELECT 1000000000 - stock_quantity FROM product_db.products WHERE sku = 'PGB-MUG') AS sold`); err != nil {
		b.Fatalf("count the checkouts: %v", err)
	}
	if n.Orders == 0 || n.Confirmed != n.Orders || n.Keys != n.Orders || n.Inbox != n.Orders ||
		n.Committed != n.Orders || n.Completed != n.Orders || n.Webhooks != n.Orders || n.Sold != n.Orders {
		b.Fatalf("pgbench's checkouts did not all complete: %+v", n)
	}
}

// pgbenchResult is what one pgbench run measured.
type pgbenchResult struct {
	TPS       float64 // script runs per second, without connection time
	LatencyMS float64 // average time of one script run
}

// runPgbench runs scripts/<script> with clients clients, each running it
// perClient times, against dbURL, with -D variables vars ("name=value"). A
// run with a failed transaction fails b.
func runPgbench(b *testing.B, dbURL, script string, clients, perClient int, vars ...string) pgbenchResult {
	b.Helper()
	root, err := localinfra.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	// -M extended: bound parameters, parsed and planned at each execution,
	// as lib/pq sends the services' statements.
	args := []string{"-n", "-M", "extended", "-f", filepath.Join(root, "scripts", script),
		"-c", strconv.Itoa(clients), "-j", "2", "-t", strconv.Itoa(perClient)}
	for _, v := range vars {
		args = append(args, "-D", v)
	}
	out, err := exec.Command("pgbench", append(args, dbURL)...).CombinedOutput()
	if errors.Is(err, exec.ErrNotFound) {
		b.Fatalf("pgbench is not installed (Debian's postgresql-client; make deps installs it): %v", err)
	}
	if err != nil {
		b.Fatalf("pgbench: %v\n%s", err, out)
	}
	if failed := pgbenchFigure(b, out, `number of failed transactions: ([0-9]+)`); failed != 0 {
		b.Fatalf("pgbench: %v failed transactions:\n%s", failed, out)
	}
	return pgbenchResult{
		TPS:       pgbenchFigure(b, out, `tps = ([0-9.]+)`),
		LatencyMS: pgbenchFigure(b, out, `latency average = ([0-9.]+) ms`),
	}
}

func pgbenchFigure(b *testing.B, out []byte, pattern string) float64 {
	b.Helper()
	m := regexp.MustCompile(pattern).FindSubmatch(out)
	if m == nil {
		b.Fatalf("pgbench output lacks %s:\n%s", pattern, out)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		b.Fatal(fmt.Errorf("pgbench figure %q: %w", m[1], err))
	}
	return v
}
