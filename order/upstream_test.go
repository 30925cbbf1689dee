package order_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/afex/hystrix-go/hystrix"
	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/order"
	"github.com/mercato-dev/mercato/payment"
	"github.com/mercato-dev/mercato/product"
	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/httpkit"
)

// stubProduct answers every reservation call with res and err, and records
// what it was asked.
type stubProduct struct {
	res product.Reservation
	err error
	got product.ReservationRequest
}

func (s *stubProduct) Reserve(_ context.Context, r product.ReservationRequest) (product.Reservation, bool, error) {
	s.got = r
	return s.res, true, s.err
}
func (s *stubProduct) CommitReservation(context.Context, string) (product.Reservation, error) {
	return s.res, s.err
}
func (s *stubProduct) ReleaseReservation(context.Context, string) (product.Reservation, error) {
	return s.res, s.err
}

type stubPayment struct {
	p   payment.Payment
	err error
	got payment.ChargeRequest
}

func (s *stubPayment) Charge(_ context.Context, r payment.ChargeRequest) (payment.Payment, bool, error) {
	s.got = r
	return s.p, true, s.err
}

func (s *stubPayment) GetPayment(context.Context, string, string) (payment.Payment, error) {
	return s.p, s.err
}

func TestInventoryAdapter(t *testing.T) {
	ctx := context.Background()
	orderID, productID, variant := uuid.NewString(), uuid.NewString(), uuid.NewString()
	stub := &stubProduct{res: product.Reservation{OrderID: orderID, Status: product.StatusReserved, ExpiresAt: time.Now(),
		Items: []product.ReservedItem{{ProductID: productID, VariantID: &variant, Quantity: 2, SKU: "S", Name: "N", UnitPrice: 1999, Currency: "USD"}}}}
	inv := order.NewInventory(stub)
	res, err := inv.Reserve(ctx, orderID, []order.LineRequest{{ProductID: productID, VariantID: &variant, Quantity: 2}}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Live || res.Items[0].UnitPrice != 1999 || *res.Items[0].VariantID != variant || res.Items[0].SKU != "S" {
		t.Errorf("reservation %+v", res)
	}
	if stub.got.OrderID != orderID || stub.got.TTL != time.Minute || *stub.got.Items[0].VariantID != variant || stub.got.Items[0].Quantity != 2 {
		t.Errorf("asked %+v", stub.got)
	}
	stub.res.Status = product.StatusReleased
	if res, _ := inv.Reserve(ctx, orderID, nil, time.Minute); res.Live {
		t.Error("a released reservation is live")
	}

	for _, tc := range []struct {
		name string
		err  error
		call string
		want error
	}{
		{"out of stock", &product.LineError{Err: product.ErrOutOfStock, ProductID: productID, VariantID: &variant, Requested: 3, Available: 1}, "reserve", order.ErrOutOfStock},
		{"unknown product", &product.LineError{Err: product.ErrUnknownProduct, ProductID: productID}, "reserve", order.ErrUnknownProduct},
		{"mismatch", product.ErrReservationMismatch, "reserve", order.ErrReservationMismatch},
		{"no instances", fmt.Errorf("product: %w", discovery.ErrNoInstances), "reserve", order.ErrUpstreamUnavailable},
		{"breakers open", hystrix.ErrCircuitOpen, "commit", order.ErrUpstreamUnavailable},
		{"5xx", &discovery.UpstreamError{Instance: "x", StatusCode: 500, Err: errors.New("boom")}, "release", order.ErrUpstreamUnavailable},
		{"released", product.ErrReservationReleased, "commit", order.ErrReservationReleased},
		{"commit of a missing reservation", product.ErrNotFound, "commit", order.ErrReservationReleased},
		{"release of a missing reservation", product.ErrNotFound, "release", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stub.err = tc.err
			var err error
			switch tc.call {
			case "reserve":
				_, err = inv.Reserve(ctx, orderID, nil, time.Minute)
			case "commit":
				err = inv.Commit(ctx, orderID)
			case "release":
				err = inv.Release(ctx, orderID)
			}
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
	stub.err = &product.LineError{Err: product.ErrOutOfStock, ProductID: productID, VariantID: &variant, Requested: 3, Available: 1}
	_, err = inv.Reserve(ctx, orderID, nil, time.Minute)
	var ie *order.ItemError
	if !errors.As(err, &ie) || ie.ProductID != productID || ie.VariantID != variant || ie.Requested != 3 || ie.Available != 1 {
		t.Errorf("line error %#v", err)
	}
	// A refused token is our misconfiguration, not the client's 401.
	stub.err = auth.ErrForbidden
	err = inv.Commit(ctx, orderID)
	var coded httpkit.Coded
	if err == nil || errors.As(err, &coded) || errors.Is(err, order.ErrUpstreamUnavailable) {
		t.Errorf("forbidden: %v, want a plain failure", err)
	}
}

func TestPaymentsAdapter(t *testing.T) {
	ctx := context.Background()
	stub := &stubPayment{p: payment.Payment{ID: "p1", Status: payment.StatusPending, Card: payment.Card{Brand: "visa", Last4: "4242"}}}
	pay := order.NewPayments(stub)
	res, err := pay.Charge(ctx, order.Charge{OrderID: "o", UserID: "u", Amount: 5368, Currency: "USD", Card: visa})
	if err != nil || res != (order.ChargeResult{PaymentID: "p1", Status: "pending", Card: order.CardSummary{Brand: "visa", Last4: "4242"}}) {
		t.Errorf("charge = %+v, %v", res, err)
	}
	if g := stub.got; g.OrderID != "o" || g.Amount != 5368 || g.Card.Number != visa.Number || g.Card.CVC != "123" || g.Card.ExpYear != visa.ExpYear {
		t.Errorf("sent %+v", g)
	}
	stub.err = httpkit.Invalid(map[string]string{"card.number": "bad"})
	_, err = pay.Charge(ctx, order.Charge{})
	var rejected *order.RejectedError
	if !errors.As(err, &rejected) || rejected.Code != "invalid_card" {
		t.Errorf("422: %v", err)
	}
	stub.err = &discovery.UpstreamError{Instance: "x", StatusCode: http.StatusBadGateway, Err: errors.New("provider")}
	if _, err := pay.Charge(ctx, order.Charge{}); !errors.Is(err, order.ErrUpstreamUnavailable) {
		t.Errorf("502: %v", err)
	}
	stub.err = payment.ErrPaymentMismatch
	if _, err := pay.Charge(ctx, order.Charge{}); !errors.Is(err, payment.ErrPaymentMismatch) || errors.Is(err, order.ErrPaymentRejected) || errors.Is(err, order.ErrUpstreamUnavailable) {
		t.Errorf("mismatch: %v", err)
	}
}

// Every 422 of the payment service used to be reported as invalid_card; a
// charge refused for its amount (a product priced 0.00) blamed the card.
func TestPaymentsAdapterKeepsRefusalCodes(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		err      *httpkit.Error
		wantCode string
	}{
		{httpkit.Invalid(map[string]string{"card.number": "fails the Luhn check"}), "invalid_card"},
		{httpkit.Invalid(map[string]string{"amount": "must be greater than 0"}), "invalid_amount"},
		{httpkit.Invalid(map[string]string{"currency": "must be an ISO 4217 code like USD"}), "invalid_currency"},
		{httpkit.Invalid(map[string]string{"amount": "must be greater than 0", "card.cvc": "bad"}), "invalid_card"},
		{httpkit.Invalid(map[string]string{"order_id": "must be a UUID"}), "invalid_charge"},
		{httpkit.NewError(http.StatusUnprocessableEntity, "card_expired", "the card has expired"), "card_expired"},
	} {
		pay := order.NewPayments(&stubPayment{err: tc.err})
		_, err := pay.Charge(ctx, order.Charge{})
		var rejected *order.RejectedError
		if !errors.As(err, &rejected) || rejected.Code != tc.wantCode || !errors.Is(err, order.ErrPaymentRejected) {
			t.Errorf("%v: %v, want a rejection %s", tc.err.Details, err, tc.wantCode)
			continue
		}
		for field := range tc.err.Details {
			if !strings.Contains(rejected.Message, field) {
				t.Errorf("%s: message %q does not name %s", tc.wantCode, rejected.Message, field)
			}
		}
	}
}

// TestPaymentsAdapterReadsPayments checks the read the saga confirms payment
// events with: the payment service's status named as the order service
// names it, an unknown payment, and an outage told apart.
func TestPaymentsAdapterReadsPayments(t *testing.T) {
	ctx := context.Background()
	stub := &stubPayment{p: payment.Payment{ID: "p1", OrderID: "o1", UserID: "u1", Status: payment.StatusCompleted,
		Amount: 5368, CapturedAmount: 5368, Currency: "USD"}}
	pay := order.NewPayments(stub)
	got, err := pay.Payment(ctx, "p1")
	want := order.PaymentRecord{ID: "p1", OrderID: "o1", UserID: "u1", Status: order.PaymentCaptured, Captured: 5368, Currency: "USD"}
	if err != nil || got != want {
		t.Errorf("payment = %+v, %v; want %+v", got, err, want)
	}
	stub.p = payment.Payment{ID: "p2", Status: payment.StatusFailed, FailureCode: "card_declined"}
	if got, err := pay.Payment(ctx, "p2"); err != nil || got.Status != order.PaymentFailed || got.FailureCode != "card_declined" {
		t.Errorf("failed payment = %+v, %v", got, err)
	}
	stub.p = payment.Payment{ID: "p3", Status: "chargeback"} // a status this service does not know confirms nothing
	if got, err := pay.Payment(ctx, "p3"); err != nil || got.Status == order.PaymentCaptured || got.Status == order.PaymentFailed {
		t.Errorf("unknown status = %+v, %v", got, err)
	}
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"not found", payment.ErrNotFound, order.ErrUnknownPayment},
		{"5xx", &discovery.UpstreamError{Instance: "x", StatusCode: 503, Err: errors.New("down")}, order.ErrUpstreamUnavailable},
		{"no instance", discovery.ErrNoInstances, order.ErrUpstreamUnavailable},
		{"breaker open", hystrix.ErrCircuitOpen, order.ErrUpstreamUnavailable},
	} {
		stub.err = tc.err
		if _, err := pay.Payment(ctx, "p1"); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}
