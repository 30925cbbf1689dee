package product_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/kit/sd"
	"github.com/go-kit/log"
	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/product"
	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/httpkit"
)

// twoInstances is two instances of the service on one database and the
// client the order service would build over them.
func twoInstances(t *testing.T) (a, b *stack, client product.Inventory) {
	t.Helper()
	db := newDB(t)
	a, b = newStackOn(t, db, nil), newStackOn(t, db, nil)
	// Sorted: every endpointer sorts the instance list it is sent in place,
	// and a FixedInstancer sends all of them the same slice, so an unsorted
	// one is a data race (Consul's instancer sends sorted lists).
	instances := []string{a.srv.Listener.Addr().String(), b.srv.Listener.Addr().String()}
	slices.Sort(instances)
	client = product.NewClient(sd.FixedInstancer(instances), log.NewNopLogger(),
		discovery.Options{Timeout: 20 * time.Second, CommandTimeout: 20 * time.Second})
	return a, b, client
}

// TestOversell is the order rush: 200 concurrent reservations of one unit
// against a stock of 50, spread over two instances. Exactly 50 succeed, the
// stock ends at 0, and the ledger accounts for every unit.
func TestOversell(t *testing.T) {
	a, b, client := twoInstances(t)
	pid := a.createProduct(t, map[string]any{"stock_quantity": 50})["id"].(string)
	ctx := auth.NewTokenContext(context.Background(), a.service)

	const attempts = 200
	var (
		wg                 sync.WaitGroup
		mu                 sync.Mutex
		reserved, outStock int
		unexpected         []error
	)
	start := make(chan struct{})
	for range attempts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, created, err := client.Reserve(ctx, product.ReservationRequest{OrderID: uuid.NewString(),
				Items: []product.ReservationLine{{ProductID: pid, Quantity: 1}}})
			mu.Lock()
			defer mu.Unlock()
			var le *product.LineError
			switch {
			case err == nil && created:
				reserved++
			case errors.As(err, &le) && errors.Is(err, product.ErrOutOfStock) && le.ProductID == pid && le.Requested == 1 && le.Available == 0:
				outStock++
			default:
				unexpected = append(unexpected, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if reserved != 50 || outStock != attempts-50 || len(unexpected) > 0 {
		t.Fatalf("%d reserved, %d out of stock, unexpected %v; want 50 and %d", reserved, outStock, unexpected, attempts-50)
	}
	if a.hits.Load() < 20 || b.hits.Load() < 20 {
		t.Errorf("load not spread: %d and %d requests", a.hits.Load(), b.hits.Load())
	}
	if n := a.stockOf(t, "products", pid); n != 0 {
		t.Errorf("stock ends at %d, want 0", n)
	}
	var ledger struct {
		Rows int `db:"rows"`
		Sum  int `db:"sum"`
	}
	if err := a.db.Get(&ledger, `SELECT count(*) AS rows, sum(delta) AS sum FROM stock_movements WHERE product_id = $1 AND reason = 'reserve'`, pid); err != nil {
		t.Fatal(err)
	}
	var items int
	if err := a.db.Get(&items, `SELECT coalesce(sum(quantity), 0) FROM reservation_items WHERE product_id = $1`, pid); err != nil {
		t.Fatal(err)
	}
	if ledger.Rows != 50 || ledger.Sum != -50 || items != 50 {
		t.Errorf("ledger %+v and %d reserved units, want 50 rows summing to -50 and 50 units", ledger, items)
	}
	checkLedger(t, a.db)
}

func TestClient(t *testing.T) {
	a, _, client := twoInstances(t)
	asService := auth.NewTokenContext(context.Background(), a.service)
	asAdmin := auth.NewTokenContext(context.Background(), a.admin)
	asCustomer := auth.NewTokenContext(context.Background(), a.customer)

	// The catalogue the reservations take stock of, written over HTTP: the
	// client serves the order service, which only reserves.
	catID := a.createCategory(t, "Tea", "")
	p := a.createProduct(t, map[string]any{"category_id": catID, "name": "Green Tea", "sku": "TEA-G", "price": "4.50", "stock_quantity": 3})
	pid := p["id"].(string)
	v := a.createVariant(t, pid, map[string]any{"sku": "TEA-G-500", "name": "Green Tea Half Kilo", "price": "12.99", "stock_quantity": 5})
	vid := v["id"].(string)

	// The reservation calls, as the order service makes them.
	order := uuid.NewString()
	lines := []product.ReservationLine{{ProductID: pid, Quantity: 2}, {ProductID: pid, VariantID: &vid, Quantity: 1}}
	res, created, err := client.Reserve(asService, product.ReservationRequest{OrderID: order, Items: lines, TTL: time.Minute})
	if err != nil || !created || res.Status != product.StatusReserved || len(res.Items) != 2 ||
		res.Items[0].UnitPrice != 450 || res.Items[1].UnitPrice != 1299 || res.Items[1].Name != "Green Tea Half Kilo" {
		t.Fatalf("Reserve = %+v, %v, %v", res, created, err)
	}
	if again, created, err := client.Reserve(asService, product.ReservationRequest{OrderID: order, Items: lines}); err != nil || created || !again.ExpiresAt.Equal(res.ExpiresAt) {
		t.Errorf("Reserve again = %+v, %v, %v", again, created, err)
	}
	_, _, err = client.Reserve(asService, product.ReservationRequest{OrderID: uuid.NewString(),
		Items: []product.ReservationLine{{ProductID: pid, Quantity: 2}}})
	var le *product.LineError
	if !errors.As(err, &le) || !errors.Is(err, product.ErrOutOfStock) || le.ProductID != pid || le.VariantID != nil || le.Requested != 2 || le.Available != 1 {
		t.Errorf("Reserve beyond stock: %#v", err)
	}
	bogus := uuid.NewString()
	_, _, err = client.Reserve(asService, product.ReservationRequest{OrderID: uuid.NewString(),
		Items: []product.ReservationLine{{ProductID: pid, VariantID: &bogus, Quantity: 1}}})
	if !errors.As(err, &le) || !errors.Is(err, product.ErrUnknownProduct) || le.VariantID == nil || *le.VariantID != bogus {
		t.Errorf("Reserve unknown variant: %#v", err)
	}
	if _, _, err := client.Reserve(asCustomer, product.ReservationRequest{OrderID: uuid.NewString(), Items: lines}); !isStatus(err, http.StatusForbidden) {
		t.Errorf("Reserve as a customer: %v", err)
	}
	if got, err := client.CommitReservation(asService, order); err != nil || got.Status != product.StatusCommitted {
		t.Errorf("CommitReservation = %+v, %v", got, err)
	}
	if got, err := client.GetReservation(asService, order); err != nil || got.Status != product.StatusCommitted || len(got.Items) != 2 {
		t.Errorf("GetReservation = %+v, %v", got, err)
	}
	if got, err := client.GetReservation(asAdmin, order); err != nil || got.Status != product.StatusCommitted {
		t.Errorf("GetReservation as an admin = %+v, %v", got, err)
	}
	if got, err := client.ReleaseReservation(asService, order); err != nil || got.Status != product.StatusReleased || got.ReleaseReason != product.ReasonReleased {
		t.Errorf("ReleaseReservation = %+v, %v", got, err)
	}
	if _, err := client.CommitReservation(asService, order); !errors.Is(err, product.ErrReservationReleased) {
		t.Errorf("CommitReservation after release: %v", err)
	}
	if _, err := client.GetReservation(asService, uuid.NewString()); !errors.Is(err, product.ErrNotFound) {
		t.Errorf("GetReservation unknown: %v", err)
	}

	// The catalogue after the reservations, over HTTP.
	want(t, a.call(t, "DELETE", "/api/v1/products/"+pid, a.admin, nil), http.StatusNoContent)
	if r := want(t, a.call(t, "DELETE", "/api/v1/categories/"+catID, a.admin, nil), http.StatusConflict); errorCode(r) != "category_not_empty" {
		t.Errorf("DeleteCategory of a category with products: %s", r.raw)
	}
	want(t, a.call(t, "PATCH", "/api/v1/categories/"+catID, a.admin, map[string]any{"description": "Leaves"}), http.StatusOK)
}

func isStatus(err error, status int) bool {
	var coded httpkit.Coded
	return errors.As(err, &coded) && coded.StatusCode() == status
}

func TestClientUpstreamFailures(t *testing.T) {
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		httpkit.WriteError(w, httpkit.Internal())
	}))
	t.Cleanup(broken.Close)

	client := product.NewClient(sd.FixedInstancer{broken.Listener.Addr().String()}, log.NewNopLogger(), discovery.Options{Timeout: 2 * time.Second})
	_, err := client.GetReservation(context.Background(), uuid.NewString())
	var upstream *discovery.UpstreamError
	if !errors.As(err, &upstream) || upstream.StatusCode != http.StatusInternalServerError {
		t.Errorf("5xx: err = %v, want *discovery.UpstreamError with 500", err)
	}

	none := product.NewClient(sd.FixedInstancer{}, log.NewNopLogger(), discovery.Options{Timeout: 2 * time.Second})
	if _, _, err := none.Reserve(context.Background(), product.ReservationRequest{OrderID: uuid.NewString()}); !errors.Is(err, discovery.ErrNoInstances) {
		t.Errorf("no instances: err = %v, want ErrNoInstances", err)
	}
}
