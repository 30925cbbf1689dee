package order_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/go-kit/kit/sd"
	"github.com/go-kit/log"
	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/order"
	"github.com/mercato-dev/mercato/order/postgres"
	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/httpkit"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// withToken is the context of a request that arrived with this bearer token,
// as auth.HTTPToContext leaves it; the client forwards the token.
func withToken(token string) context.Context {
	r := &http.Request{Header: http.Header{"Authorization": {"Bearer " + token}}}
	return auth.HTTPToContext(context.Background(), r)
}

func TestClient(t *testing.T) {
	db := testkit.Postgres(t)
	if err := postgres.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	// Two instances of the service on one database and one set of upstreams.
	inv, pay := newFakeInventory(), newFakePayments()
	a, b := newStackOn(t, db, inv, pay), newStackOn(t, db, inv, pay)
	mug := uuid.NewString()
	inv.add(mug, nil, 5, 1250)

	// Sorted: every endpointer sorts the instance list it is sent in place,
	// and a FixedInstancer sends all of them the same slice.
	instances := []string{a.srv.Listener.Addr().String(), b.srv.Listener.Addr().String()}
	slices.Sort(instances)
	client := order.NewClient(sd.FixedInstancer(instances), log.NewNopLogger(), discovery.Options{Timeout: 10 * time.Second})
	ada := uuid.NewString()
	asAda := withToken(a.token(t, ada, auth.RoleCustomer))
	asAdmin := withToken(a.token(t, uuid.NewString(), auth.RoleAdmin))

	c := order.Checkout{Items: []order.LineRequest{{ProductID: mug, Quantity: 2}}, ShippingAddress: address(), Card: visa}
	o, err := client.PlaceOrder(asAda, "", "client-key", c)
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != order.StatusPending || o.UserID != ada || o.Subtotal != 2500 || o.TotalAmount != 2500+206+499 || len(o.Items) != 1 {
		t.Errorf("PlaceOrder = %+v", o)
	}
	again, err := client.PlaceOrder(asAda, "", "client-key", c)
	if err != nil || again.ID != o.ID {
		t.Errorf("repeat: %s, %v", again.ID, err)
	}
	for range 4 {
		got, err := client.GetOrder(asAda, order.Caller{}, o.ID)
		if err != nil || got.ID != o.ID || len(got.StatusHistory) != 1 {
			t.Fatalf("GetOrder = %+v, %v", got, err)
		}
	}
	if a.hits.Load() == 0 || b.hits.Load() == 0 {
		t.Errorf("calls not balanced: %d and %d", a.hits.Load(), b.hits.Load())
	}
	page, err := client.ListOrders(asAdmin, order.Caller{}, order.ListFilter{Status: order.StatusPending, Page: 1, PageSize: 5})
	if err != nil || page.Total != 1 || len(page.Items) != 1 || page.PageSize != 5 {
		t.Errorf("ListOrders = %+v, %v", page, err)
	}

	// Errors come back as the domain errors, details kept.
	_, err = client.PlaceOrder(asAda, "", "", order.Checkout{Items: []order.LineRequest{{ProductID: mug, Quantity: 4}},
		ShippingAddress: address(), Card: visa})
	var coded httpkit.Coded
	if !errors.Is(err, order.ErrOutOfStock) || !errors.As(err, &coded) || coded.StatusCode() != http.StatusConflict {
		t.Errorf("out of stock: %v", err)
	}
	if _, err := client.SetStatus(asAdmin, o.ID, order.StatusShipped); !errors.Is(err, order.ErrInvalidTransition) {
		t.Errorf("ship a pending order: %v", err)
	}
	if _, err := client.GetOrder(asAdmin, order.Caller{}, uuid.NewString()); !errors.Is(err, order.ErrNotFound) {
		t.Errorf("unknown order: %v", err)
	}
	got, err := client.CancelOrder(asAda, order.Caller{}, o.ID, "no longer needed")
	if err != nil || got.Status != order.StatusCancelled || got.StatusHistory[1].Reason != "no longer needed" {
		t.Errorf("CancelOrder = %+v, %v", got, err)
	}
	if _, err := client.SetStatus(asAda, o.ID, order.StatusShipped); !errors.As(err, &coded) || coded.StatusCode() != http.StatusForbidden {
		t.Errorf("customer sets a status: %v", err)
	}
	if _, err := client.GetOrder(context.Background(), order.Caller{}, o.ID); !errors.As(err, &coded) || coded.StatusCode() != http.StatusUnauthorized {
		t.Errorf("no token: %v", err)
	}
}

func TestClientUpstreamFailures(t *testing.T) {
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		httpkit.WriteError(w, httpkit.Internal())
	}))
	t.Cleanup(broken.Close)
	client := order.NewClient(sd.FixedInstancer{broken.Listener.Addr().String()}, log.NewNopLogger(), discovery.Options{Timeout: 2 * time.Second})
	_, err := client.GetOrder(withToken("t"), order.Caller{}, uuid.NewString())
	var upstream *discovery.UpstreamError
	if !errors.As(err, &upstream) || upstream.StatusCode != http.StatusInternalServerError {
		t.Errorf("5xx: err = %v, want *discovery.UpstreamError with 500", err)
	}
	none := order.NewClient(sd.FixedInstancer{}, log.NewNopLogger(), discovery.Options{Timeout: 2 * time.Second})
	if _, err := none.ListOrders(withToken("t"), order.Caller{}, order.ListFilter{Page: 1, PageSize: 1}); !errors.Is(err, discovery.ErrNoInstances) {
		t.Errorf("no instances: err = %v, want ErrNoInstances", err)
	}
}
