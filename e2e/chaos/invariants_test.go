package chaos

import (
	"context"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/e2e/load"
	"github.com/mercato-dev/mercato/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// books are the columns of the order, payment and sandbox tables the
// invariants read, in one database (each invariant names the one it asks).
func books(t *testing.T) *sqlx.DB {
	t.Helper()
	db := testkit.Postgres(t)
	db.MustExec(`
		CREATE TABLE orders (id uuid PRIMARY KEY, status text NOT NULL);
		CREATE TABLE payments (id uuid PRIMARY KEY, order_id uuid NOT NULL UNIQUE, captured_amount numeric(10,2) NOT NULL DEFAULT 0);
		CREATE TABLE sandbox_charges (id text PRIMARY KEY, payment_id uuid NOT NULL, amount numeric(10,2) NOT NULL,
			outcome text NOT NULL, refunded_amount numeric(10,2) NOT NULL DEFAULT 0)`)
	return db
}

// TestChargesOfOrdersNotPaid: a cancelled order whose sandbox charge
// succeeded and was never refunded is a customer charged for nothing, which
// charges names; one refunded in full, or whose charge failed, is not.
func TestChargesOfOrdersNotPaid(t *testing.T) {
	db := books(t)
	db.MustExec(`
		INSERT INTO orders VALUES
			('00000000-0000-0000-0000-00000000000a', 'confirmed'),
			('00000000-0000-0000-0000-00000000000b', 'cancelled'),
			('00000000-0000-0000-0000-00000000000c', 'cancelled'),
			('00000000-0000-0000-0000-00000000000d', 'cancelled');
		INSERT INTO payments VALUES
			('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-00000000000a', 10),
			('00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-00000000000b', 0),
			('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-00000000000c', 10),
			('00000000-0000-0000-0000-0000000000d1', '00000000-0000-0000-0000-00000000000d', 0);
		INSERT INTO sandbox_charges VALUES
			('ch_a', '00000000-0000-0000-0000-0000000000a1', 10, 'succeeded', 0),
			('ch_c', '00000000-0000-0000-0000-0000000000c1', 10, 'succeeded', 10),
			('ch_d', '00000000-0000-0000-0000-0000000000d1', 10, 'failed', 0)`)
	p := &Platform{Databases: &load.Databases{Order: db, Payment: db}}
	if inv := p.charges(context.Background()); !inv.OK {
		t.Fatalf("the books are right, yet: %+v", inv)
	}

	// The provider took the money of cancelled order b and kept it.
	db.MustExec(`INSERT INTO sandbox_charges VALUES ('ch_b', '00000000-0000-0000-0000-0000000000b1', 10, 'succeeded', 0)`)
	inv := p.charges(context.Background())
	if inv.OK || !strings.Contains(inv.Detail, "00000000-0000-0000-0000-00000000000b") {
		t.Errorf("a cancelled order's charge kept by the provider passed: %+v", inv)
	}
}
