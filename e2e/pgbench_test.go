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
