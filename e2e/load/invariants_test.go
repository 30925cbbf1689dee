package load

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mercato-dev/mercato/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// TestOrdersInvariantHoldsTheAPIToTheDatabase: the run settles its orders
// from the database (Run, with Databases), so an API showing a shopper a
// status the database does not hold is seen only by what the API is
// asked: an order shown pending though confirmed, or not shown at all,
// fails ordersInvariant.
func TestOrdersInvariantHoldsTheAPIToTheDatabase(t *testing.T) {
	db := testkit.Postgres(t)
	db.MustExec(`
		CREATE TABLE orders (id uuid PRIMARY KEY, status text NOT NULL);
		CREATE TABLE inventory_reservations (order_id uuid PRIMARY KEY, status text NOT NULL, expires_at timestamptz NOT NULL);
		INSERT INTO orders VALUES ('00000000-0000-0000-0000-00000000000a', 'pending'), ('00000000-0000-0000-0000-00000000000b', 'pending');
		UPDATE orders SET status = 'confirmed'`) // the saga's work, after the checkouts' 201s
	d := &Databases{Order: db, Product: db}
	ctx := context.Background()
	acknowledged := []Order{{ID: "00000000-0000-0000-0000-00000000000a", Status: "pending"}, {ID: "00000000-0000-0000-0000-00000000000b", Status: "pending"}}
	orders, err := settle(ctx, acknowledged, d.orderStatus, time.Second) // as Run does
	if err != nil {
		t.Fatal(err)
	}

	right := map[string]string{orders[0].ID: "confirmed", orders[1].ID: "confirmed"}
	if inv := d.ordersInvariant(ctx, orders, right); !inv.OK {
		t.Fatalf("the API shows what the database holds, yet: %+v", inv)
	}
	stale := map[string]string{orders[0].ID: "pending", orders[1].ID: "confirmed"}
	if inv := d.ordersInvariant(ctx, orders, stale); inv.OK || !strings.Contains(inv.Detail, "confirmed in the database, pending through the API") {
		t.Errorf("an order the API shows pending though confirmed passed: %+v", inv)
	}
	unread := map[string]string{orders[1].ID: "confirmed"}
	if inv := d.ordersInvariant(ctx, orders, unread); inv.OK || !strings.Contains(inv.Detail, "could not be read through the API") {
		t.Errorf("an order the API did not show passed: %+v", inv)
	}
}

func TestReadAllAsksAgainForWhatFailed(t *testing.T) {
	orders := []Order{{ID: "a"}, {ID: "b"}}
	calls := 0
	got, err := readAll(context.Background(), orders, func(_ context.Context, open []Order) (map[string]string, error) {
		calls++
		if calls == 1 {
			return map[string]string{"a": "confirmed"}, nil
		}
		if len(open) != 1 || open[0].ID != "b" {
			t.Errorf("asked again for %+v, want b alone", open)
		}
		return map[string]string{"b": "cancelled"}, nil
	}, time.Minute)
	if err != nil || got["a"] != "confirmed" || got["b"] != "cancelled" || calls != 2 {
		t.Errorf("readAll: %v %v after %d calls", got, err, calls)
	}
}
