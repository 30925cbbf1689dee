package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/uuid"

	"github.com/mercato-dev/mercato/order"
	"github.com/mercato-dev/mercato/shared/httpkit"
	"github.com/mercato-dev/mercato/shared/money"
	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// TestMigrateIdempotencyOutcome: keys finished before migration 00002, with
// the HTTP status and body the previous release stored, answer as the
// domain outcome of their request afterwards; unfinished keys carry on.
func TestMigrateIdempotencyOutcome(t *testing.T) {
	ctx := context.Background()
	db := testkit.Postgres(t)
	first, err := migrationFiles.ReadFile("migrations/00001_orders.sql")
	if err != nil {
		t.Fatal(err)
	}
	if err := sharedpg.Migrate(ctx, db, fstest.MapFS{"00001_orders.sql": {Data: first}}, Schema.Table); err != nil {
		t.Fatal(err)
	}

	// What the previous release stored: 201 with the order, or the status
	// with the *httpkit.Error it answered.
	variant := uuid.NewString()
	placed := order.Order{ID: uuid.NewString(), OrderNumber: "MER-20261129-7K3F9Q", UserID: uuid.NewString(),
		Status: order.StatusPending, Subtotal: 1999, TotalAmount: 1999, Currency: "USD",
		Items: []order.Item{{ID: uuid.NewString(), ProductID: uuid.NewString(), VariantID: &variant, SKU: "TEE-M",
			Name: "T-shirt", Quantity: 1, UnitPrice: 1999, TotalPrice: 1999}},
		ShippingAddress: order.Address{Street: "1 Main St", City: "Springfield", State: "IL", ZipCode: "62701", Country: "US"},
		Payment:         &order.Payment{ID: uuid.NewString(), Status: order.PaymentPending, Card: &order.CardSummary{Brand: "visa", Last4: "4242"}, RefundedAmount: money.Amount(0)},
		StatusHistory:   []order.StatusChange{{Status: order.StatusPending, Reason: "order placed", At: time.Date(2026, 11, 29, 10, 0, 0, 123456000, time.UTC)}},
		CreatedAt:       time.Date(2026, 11, 29, 10, 0, 0, 123456000, time.UTC), UpdatedAt: time.Date(2026, 11, 29, 10, 0, 1, 0, time.UTC)}
	placed.BillingAddress = placed.ShippingAddress
	outOfStock := &httpkit.Error{Status: 409, Code: "out_of_stock", Message: "not enough stock for an item: product " + placed.Items[0].ProductID,
		Details: map[string]any{"product_id": placed.Items[0].ProductID, "variant_id": variant, "requested": 9, "available": 8}}
	rejected := &httpkit.Error{Status: 422, Code: "payment_rejected", Message: "payment rejected: invalid_card: the card number is invalid",
		Details: map[string]any{"reason": "invalid_card", "message": "the card number is invalid"}}
	mixed := &httpkit.Error{Status: 422, Code: "mixed_currencies", Message: order.ErrMixedCurrencies.Error()}
	user := uuid.NewString()
	for key, answer := range map[string]struct {
		status int
		body   any
	}{"placed": {201, placed}, "out-of-stock": {409, outOfStock}, "rejected": {422, rejected}, "mixed": {422, mixed}} {
		body, err := json.Marshal(answer.body)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`INSERT INTO idempotency_keys (user_id, key, request_hash, order_id, state, locked_until, response_status, response_body)
			VALUES ($1, $2, 'h', $3, 'done', now(), $4, $5)`, user, key, uuid.NewString(), answer.status, string(body)); err != nil {
			t.Fatal(err)
		}
	}
	unfinished := uuid.NewString()
	if _, err := db.Exec(`INSERT INTO idempotency_keys (user_id, key, request_hash, order_id, locked_until)
		VALUES ($1, 'unfinished', 'h', $2, now() - interval '1 second')`, user, unfinished); err != nil {
		t.Fatal(err)
	}

	if err := Schema.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	repo := New(db)
	claim := func(key string) order.IdempotencyRecord {
		t.Helper()
		rec, owned, err := repo.ClaimIdempotencyKey(ctx, user, key, []byte("h"), uuid.NewString(), time.Minute)
		if err != nil || owned != (key == "unfinished") {
			t.Fatalf("claim %s: owned %v, %v", key, owned, err)
		}
		return rec
	}

	// The order answers as it was: the same JSON, byte for byte.
	rec := claim("placed")
	want, _ := json.Marshal(placed)
	got, _ := json.Marshal(rec.Outcome.Order)
	if !rec.Done || rec.Outcome.Refusal != nil || string(got) != string(want) {
		t.Errorf("placed: %+v\n got %s\nwant %s", rec, got, want)
	}
	// Business errors answer as the domain error, with the code, message
	// and details the client was given.
	for key, tc := range map[string]struct {
		was    *httpkit.Error
		domain error
	}{"out-of-stock": {outOfStock, order.ErrOutOfStock}, "rejected": {rejected, order.ErrPaymentRejected}, "mixed": {mixed, order.ErrMixedCurrencies}} {
		rec := claim(key)
		r := rec.Outcome.Refusal
		wantDetails, _ := json.Marshal(tc.was.Details)
		gotDetails, _ := json.Marshal(r.Details)
		if !rec.Done || rec.Outcome.Order != nil || r == nil || r.Code != tc.was.Code || r.Message != tc.was.Message ||
			string(gotDetails) != string(wantDetails) || !errors.Is(r, tc.domain) {
			t.Errorf("%s: %+v, refusal %+v", key, rec, r)
		}
	}
	// An unfinished key is still taken over, with its order id, and finishes
	// in the new form.
	rec = claim("unfinished")
	if rec.Done || rec.OrderID != unfinished || !rec.Attempted || !reflect.DeepEqual(rec.Outcome, order.Outcome{}) {
		t.Errorf("unfinished: %+v", rec)
	}
	if err := repo.FinishIdempotencyKey(ctx, user, "unfinished", order.Outcome{Order: &placed}); err != nil {
		t.Fatal(err)
	}
}
