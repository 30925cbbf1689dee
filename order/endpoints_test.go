package order_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/order"
	"github.com/mercato-dev/mercato/shared/auth"
)

// TestEndpointsAreAService drives the service through its endpoints used as
// a Service, as a client would: the caller is the token's, whatever the
// arguments say, and business errors come back as the service's own.
func TestEndpointsAreAService(t *testing.T) {
	w := newWorld(t, order.Options{})
	var e order.Service = order.MakeServerEndpoints(w.svc, w.tokens)
	as := func(userID string, role auth.Role) context.Context {
		tok, err := w.tokens.Issue(auth.Identity{UserID: userID, Role: role})
		if err != nil {
			t.Fatal(err)
		}
		return auth.NewTokenContext(context.Background(), tok)
	}
	ada, bob := uuid.NewString(), uuid.NewString()
	ctx := as(ada, auth.RoleCustomer)

	placed, err := e.PlaceOrder(ctx, bob, "key-1", w.checkout())
	if err != nil {
		t.Fatalf("PlaceOrder: %v", err)
	}
	if placed.UserID != ada || placed.Status != order.StatusPending {
		t.Fatalf("placed %+v, want a pending order of the token's user", placed)
	}
	again, err := e.PlaceOrder(ctx, "", "key-1", w.checkout())
	if err != nil || again.ID != placed.ID {
		t.Fatalf("repeat = %s, %v; want order %s", again.ID, err, placed.ID)
	}

	page, err := e.ListOrders(ctx, order.Caller{UserID: bob, Admin: true}, order.ListFilter{Page: 1, PageSize: 20})
	if err != nil || page.Total != 1 || len(page.Items) != 1 || page.Items[0].ID != placed.ID {
		t.Fatalf("ListOrders = %+v, %v; want ada's one order", page, err)
	}
	if got, err := e.GetOrder(ctx, order.Caller{}, placed.ID); err != nil || got.ID != placed.ID {
		t.Fatalf("GetOrder = %s, %v", got.ID, err)
	}
	if _, err := e.GetOrder(as(bob, auth.RoleCustomer), order.Caller{UserID: ada}, placed.ID); !errors.Is(err, order.ErrNotFound) {
		t.Fatalf("GetOrder of another's order: %v, want ErrNotFound", err)
	}
	if _, err := e.SetStatus(ctx, placed.ID, order.StatusShipped); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("SetStatus by a customer: %v, want ErrForbidden", err)
	}
	cancelled, err := e.CancelOrder(ctx, order.Caller{}, placed.ID, "changed my mind")
	if err != nil || cancelled.Status != order.StatusCancelled {
		t.Fatalf("CancelOrder = %s, %v; want cancelled", cancelled.Status, err)
	}
	if _, err := e.SetStatus(as(uuid.NewString(), auth.RoleAdmin), placed.ID, order.StatusShipped); !errors.Is(err, order.ErrInvalidTransition) {
		t.Fatalf("SetStatus of a cancelled order: %v, want ErrInvalidTransition", err)
	}
}
