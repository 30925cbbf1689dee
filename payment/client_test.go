package payment_test

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

	"github.com/mercato-dev/mercato/payment"
	"github.com/mercato-dev/mercato/payment/sandbox"
	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/httpkit"
	"github.com/mercato-dev/mercato/shared/money"
	"github.com/mercato-dev/mercato/shared/testkit"
)

func TestClient(t *testing.T) {
	// Two instances of the service on one database, each delivering its
	// webhooks to itself.
	dbURL := testkit.PostgresURL(t)
	a := newStackOn(t, dbURL, stackOptions{dispatch: true})
	b := newStackOn(t, dbURL, stackOptions{dispatch: true})
	// Sorted: a FixedInstancer hands every endpointer the same slice, which
	// each sorts in place (Consul's instancer sends sorted lists).
	instances := []string{a.srv.Listener.Addr().String(), b.srv.Listener.Addr().String()}
	slices.Sort(instances)
	client := payment.NewClient(sd.FixedInstancer(instances), log.NewNopLogger(), discovery.Options{Timeout: 5 * time.Second})

	// The order service charges on its own behalf, with a service token.
	asOrder := auth.NewTokenContext(context.Background(), a.serviceToken(t))
	userID, orderID := uuid.NewString(), uuid.NewString()
	req := payment.ChargeRequest{OrderID: orderID, UserID: userID, Amount: 1999, Currency: "USD",
		Card: payment.CardDetails{Number: sandbox.CardSucceeds, ExpMonth: 12, ExpYear: cardYear, CVC: "123"}}
	p, created, err := client.Charge(asOrder, req)
	if err != nil || !created || p.Status != payment.StatusPending || p.OrderID != orderID || p.Amount != 1999 || p.Card.Last4 != "4242" {
		t.Fatalf("Charge = %+v, %v, %v", p, created, err)
	}
	again, created, err := client.Charge(asOrder, req)
	if err != nil || created || again.ID != p.ID {
		t.Errorf("Charge again = %+v, %v, %v", again, created, err)
	}
	mismatch := req
	mismatch.Amount = 2000
	if _, _, err := client.Charge(asOrder, mismatch); !errors.Is(err, payment.ErrPaymentMismatch) {
		t.Errorf("Charge with another amount: %v", err)
	}
	bad := req
	bad.OrderID, bad.Card.CVC = uuid.NewString(), "1"
	var coded httpkit.Coded
	if _, _, err := client.Charge(asOrder, bad); !errors.As(err, &coded) || coded.StatusCode() != 422 {
		t.Errorf("Charge with a bad card: %v", err)
	}
	asCustomer := auth.NewTokenContext(context.Background(), a.customerToken(t, userID))
	if _, _, err := client.Charge(asCustomer, req); !errors.As(err, &coded) || coded.StatusCode() != 403 {
		t.Errorf("Charge as a customer: %v", err)
	}

	// Reads, as the customer (forwarding their token) and as the service.
	a.waitStatus(t, p.ID, payment.StatusCompleted)
	for _, ctx := range []context.Context{asCustomer, asOrder} {
		got, err := client.PaymentByOrder(ctx, "", orderID)
		if err != nil || got.ID != p.ID || got.Status != payment.StatusCompleted || got.CapturedAmount != 1999 || got.Refunds == nil {
			t.Errorf("PaymentByOrder = %+v, %v", got, err)
		}
		if got, err := client.GetPayment(ctx, "", p.ID); err != nil || got.OrderID != orderID {
			t.Errorf("GetPayment = %+v, %v", got, err)
		}
	}
	if _, err := client.PaymentByOrder(asOrder, "", uuid.NewString()); !errors.Is(err, payment.ErrNotFound) {
		t.Errorf("PaymentByOrder of an order without payment: %v", err)
	}
	if _, err := client.PaymentByOrder(asOrder, "", "not-a-uuid"); !errors.Is(err, payment.ErrNotFound) {
		t.Errorf("PaymentByOrder of a malformed id: %v", err)
	}
	other := auth.NewTokenContext(context.Background(), a.customerToken(t, uuid.NewString()))
	if _, err := client.GetPayment(other, "", p.ID); !errors.Is(err, payment.ErrNotFound) {
		t.Errorf("GetPayment of another's payment: %v", err)
	}
	page, err := client.ListPayments(asOrder, payment.PaymentQuery{Page: 1, PageSize: 10})
	if err != nil || page.Total != 1 || len(page.Items) != 1 || page.PageSize != 10 {
		t.Errorf("ListPayments = %+v, %v", page, err)
	}

	// Refunds, as an admin.
	asAdmin := auth.NewTokenContext(context.Background(), a.adminToken(t))
	res, err := client.Refund(asAdmin, payment.RefundRequest{PaymentID: p.ID, Amount: 500, Reason: "late", IdempotencyKey: "key-1"})
	if err != nil || res.Refund.Amount != 500 || res.Payment.Status != payment.StatusPartiallyRefunded || res.Replayed {
		t.Fatalf("Refund = %+v, %v", res, err)
	}
	replay, err := client.Refund(asAdmin, payment.RefundRequest{PaymentID: p.ID, Amount: 500, Reason: "late", IdempotencyKey: "key-1"})
	if err != nil || replay.Refund.ID != res.Refund.ID || !replay.Replayed {
		t.Errorf("Refund replay = %+v, %v", replay, err)
	}
	if _, err := client.Refund(asAdmin, payment.RefundRequest{PaymentID: p.ID, Amount: money.Amount(1500)}); !errors.Is(err, payment.ErrRefundExceedsCaptured) {
		t.Errorf("over-refund: %v", err)
	}
	if _, err := client.Refund(asCustomer, payment.RefundRequest{PaymentID: p.ID, Amount: 1}); !errors.As(err, &coded) || coded.StatusCode() != 403 {
		t.Errorf("Refund as a customer: %v", err)
	}
	full, err := client.Refund(asAdmin, payment.RefundRequest{PaymentID: p.ID})
	if err != nil || full.Refund.Amount != 1499 || full.Payment.Status != payment.StatusRefunded {
		t.Errorf("Refund of the rest = %+v, %v", full, err)
	}

	// The webhook route travels too; the saga's cancellation does not.
	if _, err := client.HandleWebhook(context.Background(), payment.WebhookDelivery{Provider: "sandbox", Body: []byte(`{}`)}); !errors.Is(err, payment.ErrInvalidSignature) {
		t.Errorf("HandleWebhook unsigned: %v", err)
	}
	if _, ok := client.(payment.OrderCanceller); ok {
		t.Error("the client offers CancelOrderPayment, which has no route")
	}
	if a.hits.Load() == 0 || b.hits.Load() == 0 {
		t.Errorf("calls not balanced: %d and %d", a.hits.Load(), b.hits.Load())
	}
}

func TestClientUpstreamFailures(t *testing.T) {
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		httpkit.WriteError(w, httpkit.Internal())
	}))
	t.Cleanup(broken.Close)
	ctx := auth.NewTokenContext(context.Background(), "t")

	client := payment.NewClient(sd.FixedInstancer{broken.Listener.Addr().String()}, log.NewNopLogger(), discovery.Options{Timeout: 2 * time.Second})
	_, _, err := client.Charge(ctx, payment.ChargeRequest{OrderID: uuid.NewString(), UserID: uuid.NewString(), Amount: 100})
	var upstream *discovery.UpstreamError
	if !errors.As(err, &upstream) || upstream.StatusCode != http.StatusInternalServerError {
		t.Errorf("5xx: err = %v, want *discovery.UpstreamError with 500", err)
	}

	none := payment.NewClient(sd.FixedInstancer{}, log.NewNopLogger(), discovery.Options{Timeout: 2 * time.Second})
	if _, err := none.PaymentByOrder(ctx, "", uuid.NewString()); !errors.Is(err, discovery.ErrNoInstances) {
		t.Errorf("no instances: err = %v, want ErrNoInstances", err)
	}
}
