package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/order"
	"github.com/mercato-dev/mercato/order/postgres"
	"github.com/mercato-dev/mercato/shared/events"
	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
	"github.com/mercato-dev/mercato/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func newRepo(t *testing.T) (*postgres.Repository, *sqlx.DB) {
	t.Helper()
	db := testkit.Postgres(t)
	ctx := context.Background()
	if err := postgres.Schema.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	// A second run is a no-op: every instance migrates at start.
	if err := postgres.Schema.Migrate(ctx, db); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	return postgres.New(db), db
}

func count(t *testing.T, db *sqlx.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.Get(&n, query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

var seq int

// newOrder is a pending order of userID with two lines, one of a variant.
func newOrder(userID string) order.Order {
	seq++
	variant := uuid.NewString()
	addr := order.Address{Street: "1 Main St", City: "Springfield", State: "IL", ZipCode: "62701", Country: "US"}
	billing := addr
	billing.Street = "2 Bill Rd"
	return order.Order{
		ID: uuid.NewString(), UserID: userID, OrderNumber: fmt.Sprintf("MER-20261129-T%05d", seq), Status: order.StatusPending,
		Items: []order.Item{
			{ID: uuid.NewString(), ProductID: uuid.NewString(), SKU: "MUG-1", Name: "Mug", Quantity: 2, UnitPrice: 1999, TotalPrice: 3998},
			{ID: uuid.NewString(), ProductID: uuid.NewString(), VariantID: &variant, SKU: "TEE-M", Name: "T-shirt (M)", Quantity: 1, UnitPrice: 500, TotalPrice: 500},
		},
		Subtotal: 4498, TaxAmount: 371, ShippingAmount: 499, DiscountAmount: 0, TotalAmount: 5368, Currency: "USD",
		ShippingAddress: addr, BillingAddress: billing,
	}
}

func created(t *testing.T, o order.Order) events.Envelope {
	t.Helper()
	e, err := events.New(context.Background(), order.ServiceName, events.OrderCreated, map[string]string{"order_id": o.ID})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func mustCreate(t *testing.T, repo *postgres.Repository, o order.Order) order.Order {
	t.Helper()
	stored, err := repo.CreateOrder(context.Background(), o, created(t, o))
	if err != nil {
		t.Fatal(err)
	}
	return stored
}

func TestCreateAndReadOrder(t *testing.T) {
	ctx := context.Background()
	repo, db := newRepo(t)
	o := newOrder(uuid.NewString())
	stored := mustCreate(t, repo, o)
	if stored.CreatedAt.IsZero() || stored.CreatedAt.Location() != time.UTC || len(stored.StatusHistory) != 1 {
		t.Errorf("stored = %+v", stored)
	}

	got, err := repo.OrderByID(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, stored) {
		t.Errorf("read back\n%+v\nwant\n%+v", got, stored)
	}
	if got.Payment != nil || got.Items[1].VariantID == nil || *got.Items[1].VariantID != *o.Items[1].VariantID || got.Items[0].VariantID != nil {
		t.Errorf("payment %+v, items %+v", got.Payment, got.Items)
	}
	if h := got.StatusHistory; h[0].Status != order.StatusPending || h[0].Reason != "order placed" || !h[0].At.Equal(got.CreatedAt) {
		t.Errorf("history %+v", h)
	}
	if n := count(t, db, `SELECT count(*) FROM outbox WHERE type = 'order.created'`); n != 1 {
		t.Errorf("%d order.created rows in the outbox", n)
	}

	// A second order with the same number, or the same id, writes nothing.
	dupNumber := newOrder(o.UserID)
	dupNumber.OrderNumber = o.OrderNumber
	if _, err := repo.CreateOrder(ctx, dupNumber, created(t, dupNumber)); !errors.Is(err, order.ErrOrderNumberTaken) {
		t.Errorf("same number: %v", err)
	}
	dupID := newOrder(o.UserID)
	dupID.ID = o.ID
	if _, err := repo.CreateOrder(ctx, dupID, created(t, dupID)); !errors.Is(err, order.ErrOrderExists) {
		t.Errorf("same id: %v", err)
	}
	// An event the outbox refuses: the order must not exist either.
	lost := newOrder(o.UserID)
	bad := created(t, lost)
	bad.ID = "not-a-uuid"
	if _, err := repo.CreateOrder(ctx, lost, bad); err == nil {
		t.Error("order stored with an unstorable event")
	}
	for table, want := range map[string]int{"orders": 1, "order_items": 2, "order_status_history": 1, "outbox": 1} {
		if n := count(t, db, `SELECT count(*) FROM `+table); n != want {
			t.Errorf("%s holds %d rows, want %d", table, n, want)
		}
	}

	if _, err := repo.OrderByID(ctx, uuid.NewString()); !errors.Is(err, order.ErrNotFound) {
		t.Errorf("missing order: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := repo.OrderByID(cancelled, o.ID); err == nil || errors.Is(err, order.ErrNotFound) {
		t.Errorf("cancelled context: err = %v, want a failure that is not ErrNotFound", err)
	}
}

func TestListOrders(t *testing.T) {
	ctx := context.Background()
	repo, db := newRepo(t)
	ada, bob := uuid.NewString(), uuid.NewString()
	var ids []string
	for i, user := range []string{ada, bob, ada, ada} {
		o := mustCreate(t, repo, newOrder(user))
		// Distinct times, one second apart, oldest first.
		if _, err := db.Exec(`UPDATE orders SET created_at = now() - make_interval(secs => $2) WHERE id = $1`, o.ID, 10-i); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, o.ID)
	}
	if _, err := db.Exec(`UPDATE orders SET status = 'confirmed' WHERE id = $1`, ids[2]); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name          string
		user          string
		status        order.Status
		offset, limit int
		want          []string
		total         int
	}{
		{"ada's, newest first", ada, "", 0, 10, []string{ids[3], ids[2], ids[0]}, 3},
		{"everyone's", "", "", 0, 10, []string{ids[3], ids[2], ids[1], ids[0]}, 4},
		{"ada's confirmed", ada, order.StatusConfirmed, 0, 10, []string{ids[2]}, 1},
		{"everyone's pending", "", order.StatusPending, 0, 10, []string{ids[3], ids[1], ids[0]}, 3},
		{"a page", "", "", 1, 2, []string{ids[2], ids[1]}, 4},
		{"past the end", ada, "", 5, 2, nil, 3},
		{"nobody's", uuid.NewString(), "", 0, 10, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orders, total, err := repo.ListOrders(ctx, tc.user, tc.status, tc.offset, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range orders {
				got = append(got, o.ID)
				if len(o.Items) != 2 || o.Items[0].SKU != "MUG-1" || o.Items[1].SKU != "TEE-M" || o.StatusHistory != nil {
					t.Errorf("listed order %s: items %+v, history %+v", o.ID, o.Items, o.StatusHistory)
				}
			}
			if !reflect.DeepEqual(got, tc.want) || total != tc.total {
				t.Errorf("got %v of %d, want %v of %d", got, total, tc.want, tc.total)
			}
		})
	}
}

func TestTransition(t *testing.T) {
	ctx := context.Background()
	repo, db := newRepo(t)
	o := mustCreate(t, repo, newOrder(uuid.NewString()))
	evt := func(typ string) events.Envelope {
		e, err := events.New(ctx, order.ServiceName, typ, map[string]string{"order_id": o.ID})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}

	// Payment fields alone: no history row.
	payment := order.Payment{ID: uuid.NewString(), Status: order.PaymentPending, Card: &order.CardSummary{Brand: "visa", Last4: "4242"}}
	got, err := repo.Transition(ctx, nil, o.ID, func(cur order.Order) (*order.Change, error) {
		return &order.Change{Payment: &payment}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Payment == nil || *got.Payment.Card != *payment.Card || got.Payment.ID != payment.ID || got.Status != order.StatusPending || len(got.StatusHistory) != 1 {
		t.Errorf("after the payment update: %+v, %+v", got.Payment, got.StatusHistory)
	}

	// A status change: the history row, the events, in one transaction.
	captured := payment
	captured.Status, captured.RefundedAmount = order.PaymentPartiallyRefunded, 1000
	got, err = repo.Transition(ctx, nil, o.ID, func(cur order.Order) (*order.Change, error) {
		if cur.Payment == nil || cur.Payment.ID != payment.ID {
			t.Errorf("decide saw payment %+v", cur.Payment)
		}
		return &order.Change{Status: order.StatusConfirmed, Reason: "payment captured", Payment: &captured,
			Events: []events.Envelope{evt(events.OrderUpdated)}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fresh, err := repo.OrderByID(ctx, o.ID); err != nil || !reflect.DeepEqual(fresh, got) {
		t.Errorf("Transition returned\n%+v\na fresh read gives\n%+v (%v)", got, fresh, err)
	}
	if got.Status != order.StatusConfirmed || len(got.StatusHistory) != 2 || got.StatusHistory[1].Reason != "payment captured" ||
		got.Payment.Status != order.PaymentPartiallyRefunded || got.Payment.RefundedAmount != 1000 || !got.UpdatedAt.After(got.CreatedAt) {
		t.Errorf("after confirming: %+v", got)
	}
	var prev string
	if err := db.Get(&prev, `SELECT previous_status FROM order_status_history WHERE order_id = $1 ORDER BY id DESC LIMIT 1`, o.ID); err != nil || prev != "pending" {
		t.Errorf("previous_status %q, %v", prev, err)
	}

	// decide's error and nil change write nothing.
	boom := errors.New("boom")
	if _, err := repo.Transition(ctx, nil, o.ID, func(order.Order) (*order.Change, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("decide's error: %v", err)
	}
	if got, err := repo.Transition(ctx, nil, o.ID, func(order.Order) (*order.Change, error) { return nil, nil }); err != nil || got.Status != order.StatusConfirmed {
		t.Errorf("nil change: %s, %v", got.Status, err)
	}
	if _, err := repo.Transition(ctx, nil, uuid.NewString(), func(order.Order) (*order.Change, error) { return nil, nil }); !errors.Is(err, order.ErrNotFound) {
		t.Errorf("missing order: %v", err)
	}
	// An event the outbox refuses rolls the status change back.
	bad := evt(events.OrderUpdated)
	bad.ID = "x"
	if _, err := repo.Transition(ctx, nil, o.ID, func(order.Order) (*order.Change, error) {
		return &order.Change{Status: order.StatusShipped, Events: []events.Envelope{bad}}, nil
	}); err == nil {
		t.Error("unstorable event accepted")
	}

	// In a caller's transaction: nothing is visible until it commits, and a
	// rollback leaves no trace.
	tx, err := db.Beginx()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Transition(ctx, tx, o.ID, func(order.Order) (*order.Change, error) {
		return &order.Change{Status: order.StatusShipped, Events: []events.Envelope{evt(events.OrderUpdated)}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if got, _ := repo.OrderByID(ctx, o.ID); got.Status != order.StatusConfirmed || len(got.StatusHistory) != 2 {
		t.Errorf("after the rolled-back transition: %s, %d history rows", got.Status, len(got.StatusHistory))
	}
	if n := count(t, db, `SELECT count(*) FROM outbox WHERE type = 'order.updated'`); n != 1 {
		t.Errorf("%d order.updated rows, want 1", n)
	}
}

// TestConcurrentTransitions is several cancels of one order at once (a
// customer's double click, an expiry, a failed payment): the row lock makes
// them queue, and exactly one finds the order still pending.
func TestConcurrentTransitions(t *testing.T) {
	ctx := context.Background()
	repo, db := newRepo(t)
	o := mustCreate(t, repo, newOrder(uuid.NewString()))
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := repo.Transition(ctx, nil, o.ID, func(cur order.Order) (*order.Change, error) {
				if !cur.Status.CanBecome(order.StatusCancelled) {
					return nil, order.ErrInvalidTransition
				}
				time.Sleep(5 * time.Millisecond) // widen the window a missing lock would show in
				return &order.Change{Status: order.StatusCancelled, Reason: "race"}, nil
			})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	ok, invalid := 0, 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, order.ErrInvalidTransition):
			invalid++
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 || invalid != n-1 {
		t.Errorf("%d succeeded, %d refused; want 1 and %d", ok, invalid, n-1)
	}
	if c := count(t, db, `SELECT count(*) FROM order_status_history WHERE order_id = $1 AND status = 'cancelled'`, o.ID); c != 1 {
		t.Errorf("%d cancelled history rows", c)
	}
}

func TestIdempotencyKeys(t *testing.T) {
	ctx := context.Background()
	repo, db := newRepo(t)
	user, hash, other := uuid.NewString(), []byte("hash-1"), []byte("hash-2")
	orderID := uuid.NewString()

	rec, owned, err := repo.ClaimIdempotencyKey(ctx, user, "k", hash, orderID, time.Minute)
	if err != nil || !owned || rec.OrderID != orderID || rec.Done || rec.Attempted || string(rec.RequestHash) != "hash-1" {
		t.Fatalf("first claim: %+v owned %v, %v", rec, owned, err)
	}
	// Held: another claim, with the same or another body, does not get it.
	for _, h := range [][]byte{hash, other} {
		rec, owned, err = repo.ClaimIdempotencyKey(ctx, user, "k", h, uuid.NewString(), time.Minute)
		if err != nil || owned || rec.OrderID != orderID || string(rec.RequestHash) != "hash-1" {
			t.Errorf("claim while held: %+v owned %v, %v", rec, owned, err)
		}
	}
	// Released (the holder failed half-way): the same request takes it over
	// with the same order id; another request still may not.
	if err := repo.ReleaseIdempotencyKey(ctx, user, "k"); err != nil {
		t.Fatal(err)
	}
	if _, owned, _ := repo.ClaimIdempotencyKey(ctx, user, "k", other, uuid.NewString(), time.Minute); owned {
		t.Error("another request took over the key")
	}
	rec, owned, err = repo.ClaimIdempotencyKey(ctx, user, "k", hash, uuid.NewString(), time.Minute)
	if err != nil || !owned || rec.OrderID != orderID || !rec.Attempted {
		t.Errorf("take-over: %+v owned %v, %v", rec, owned, err)
	}

	// Concurrent take-overs of an expired lease: one wins.
	if _, err := db.Exec(`UPDATE idempotency_keys SET locked_until = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wins := make(chan bool, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, owned, err := repo.ClaimIdempotencyKey(ctx, user, "k", hash, uuid.NewString(), time.Minute)
			if err != nil {
				t.Error(err)
			}
			wins <- owned
		}()
	}
	wg.Wait()
	close(wins)
	n := 0
	for w := range wins {
		if w {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d concurrent take-overs won, want 1", n)
	}

	// Done: the outcome is kept and answers every later claim.
	if err := repo.FinishIdempotencyKey(ctx, user, "k", order.Outcome{Order: &order.Order{ID: "x"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE idempotency_keys SET locked_until = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	rec, owned, err = repo.ClaimIdempotencyKey(ctx, user, "k", hash, uuid.NewString(), time.Minute)
	if err != nil || owned || !rec.Done || rec.Outcome.Order == nil || rec.Outcome.Order.ID != "x" || rec.Outcome.Refusal != nil {
		t.Errorf("claim of a done key: %+v owned %v, %v", rec, owned, err)
	}
	if err := repo.FinishIdempotencyKey(ctx, user, "missing", order.Outcome{Order: &order.Order{}}); !errors.Is(err, order.ErrNotFound) {
		t.Errorf("finish a missing key: %v", err)
	}
	// Keys are per user.
	if _, owned, _ := repo.ClaimIdempotencyKey(ctx, uuid.NewString(), "k", other, uuid.NewString(), time.Minute); !owned {
		t.Error("another user's key k was taken")
	}

	// Clean-up deletes by age only.
	if _, err := db.Exec(`UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE user_id = $1`, user); err != nil {
		t.Fatal(err)
	}
	deleted, err := repo.KeyJanitor(24*time.Hour, log.NewNopLogger()).Clean(ctx)
	if err != nil || deleted != 1 {
		t.Errorf("deleted %d, %v; want 1", deleted, err)
	}
	if c := count(t, db, `SELECT count(*) FROM idempotency_keys`); c != 1 {
		t.Errorf("%d keys left, want 1", c)
	}
}

// TestIdempotencyKeyRefusal: a key finished with a business error keeps
// its code, message and details as they were.
func TestIdempotencyKeyRefusal(t *testing.T) {
	ctx := context.Background()
	repo, db := newRepo(t)
	user, hash := uuid.NewString(), []byte("hash-1")
	refused := order.Refusal{Code: "out_of_stock", Message: "not enough stock for an item: product p",
		Details: map[string]any{"product_id": "p", "requested": float64(9), "available": float64(8)}}
	if _, _, err := repo.ClaimIdempotencyKey(ctx, user, "k", hash, uuid.NewString(), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := repo.FinishIdempotencyKey(ctx, user, "k", order.Outcome{Refusal: &refused}); err != nil {
		t.Fatal(err)
	}
	rec, owned, err := repo.ClaimIdempotencyKey(ctx, user, "k", hash, uuid.NewString(), time.Minute)
	if err != nil || owned || !rec.Done || rec.Outcome.Order != nil || rec.Outcome.Refusal == nil || !reflect.DeepEqual(*rec.Outcome.Refusal, refused) {
		t.Errorf("claim of a refused key: %+v owned %v, %v", rec, owned, err)
	}
	// A done key without an outcome is refused by the schema.
	if _, err := db.Exec(`UPDATE idempotency_keys SET outcome = NULL`); !sharedpg.IsCheckViolation(err, "idempotency_keys_outcome_check") {
		t.Errorf("a done key without an outcome: %v", err)
	}
}

func TestSchemaConstraints(t *testing.T) {
	repo, db := newRepo(t)
	o := mustCreate(t, repo, newOrder(uuid.NewString()))
	for _, tc := range []struct {
		name, query, constraint string
	}{
		{"total not the sum", `UPDATE orders SET total_amount = total_amount + 1 WHERE id = $1`, "orders_total_check"},
		{"unknown status", `UPDATE orders SET status = 'lost' WHERE id = $1`, "orders_status_check"},
		{"negative amount", `UPDATE orders SET discount_amount = -1, total_amount = total_amount + 1 WHERE id = $1`, "orders_amounts_check"},
		{"a card number for last4", `UPDATE orders SET card_last4 = '4242424242424242' WHERE id = $1`, ""},
		{"letters for last4", `UPDATE orders SET card_last4 = 'abcd' WHERE id = $1`, "orders_card_last4_check"},
		{"unknown payment status", `UPDATE orders SET payment_status = 'maybe' WHERE id = $1`, "orders_payment_status_check"},
		{"line total not price × quantity", `UPDATE order_items SET total_price = 1 WHERE order_id = $1`, "order_items_price_check"},
		{"zero quantity", `UPDATE order_items SET quantity = 0, total_price = 0 WHERE order_id = $1`, "order_items_quantity_check"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := db.Exec(tc.query, o.ID)
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.constraint != "" && !sharedpg.IsCheckViolation(err, tc.constraint) {
				t.Errorf("err = %v, want a violation of %s", err, tc.constraint)
			}
		})
	}
}

// TestReadsAreOneSnapshot reads orders while other transactions change
// them. An order and its history, and a page of orders and its total, each
// come from one snapshot: an order's status is its last history row's, and
// a total is never fewer than the orders it lists.
func TestReadsAreOneSnapshot(t *testing.T) {
	ctx := context.Background()
	repo, _ := newRepo(t)
	user := uuid.NewString()
	const n = 60
	orders := make([]order.Order, n)
	for i := range orders {
		orders[i] = newOrder(user)
	}
	// First a read of each order racing its confirmation, then lists
	// racing the creation of more orders.
	for i := range n / 2 {
		mustCreate(t, repo, orders[i])
	}
	var (
		wg      sync.WaitGroup
		current atomic.Int32 // the order being confirmed
	)
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for i := range n / 2 {
			current.Store(int32(i))
			if _, err := repo.Transition(ctx, nil, orders[i].ID, func(order.Order) (*order.Change, error) {
				return &order.Change{Status: order.StatusConfirmed, Reason: "payment captured"}, nil
			}); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(time.Millisecond)
		}
		for _, o := range orders[n/2:] {
			if _, err := repo.CreateOrder(ctx, o, created(t, o)); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	var skewedOrders, skewedPages int
	for {
		select {
		case <-done:
			wg.Wait()
			if skewedOrders > 0 || skewedPages > 0 {
				t.Errorf("%d order reads whose status is not their history's last, %d pages listing more orders than their total",
					skewedOrders, skewedPages)
			}
			return
		default:
		}
		o, err := repo.OrderByID(ctx, orders[current.Load()].ID)
		if err != nil {
			t.Fatal(err)
		}
		if last := o.StatusHistory[len(o.StatusHistory)-1].Status; last != o.Status {
			skewedOrders++
		}
		page, total, err := repo.ListOrders(ctx, user, "", 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > total {
			skewedPages++
		}
	}
}
