package events_test

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"sort"
	"testing"

	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/money"
)

// TestPayloadsRoundTrip sends every event type's payload the way a producer
// does (events.New, then the envelope as the relay stores and publishes it)
// and decodes it the way a consumer does, checking that the consumer gets
// every field back and that the JSON names, which are the wire contract,
// stay what they are.
func TestPayloadsRoundTrip(t *testing.T) {
	category, variant := "6a0e9e83-6a4b-4b8e-9a43-3c1a1b6f0d11", "2f1d3c4b-5a69-4788-9b0a-1c2d3e4f5a6b"
	user := events.UserPayload{UserID: "8d4e3f2a-1b0c-4d9e-8f7a-6b5c4d3e2f1a", Email: "ada@example.com",
		FirstName: "Ada", LastName: "Lovelace", Phone: "+44 20 7946 0000", Role: "customer"}
	prod := events.ProductPayload{ProductID: "0c9b8a7d-6e5f-4a3b-8c1d-0e9f8a7b6c5d", CategoryID: &category,
		SKU: "MUG-1", Name: "Mug", Slug: "mug", Price: money.Amount(1299), Currency: "USD", StockQuantity: 7, IsActive: true}
	userFields := []string{"email", "first_name", "last_name", "phone", "role", "user_id"}
	productFields := []string{"category_id", "currency", "is_active", "name", "price", "product_id", "sku", "slug", "stock_quantity"}

	tests := []struct {
		typ     string
		payload any
		fields  []string // every JSON name, nested ones as "parent[].child"
	}{
		{events.UserCreated, user, userFields},
		{events.UserUpdated, user, userFields},
		{events.ProductCreated, prod, productFields},
		{events.ProductUpdated, prod, productFields},
		{events.InventoryLowStock, events.InventoryLowStockPayload{ProductID: prod.ProductID, VariantID: &variant,
			SKU: "MUG-1-RED", StockQuantity: 2, MinStockQuantity: 3},
			[]string{"min_stock_quantity", "product_id", "sku", "stock_quantity", "variant_id"}},
		{events.InventoryReleased, events.InventoryReleasedPayload{OrderID: "5b4a3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d",
			Reason: events.ReleaseReasonExpired},
			[]string{"order_id", "reason"}},
		{events.OrderCreated, events.OrderCreatedPayload{OrderID: "5b4a3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d",
			OrderNumber: "MER-20261129-7K3F9Q", UserID: user.UserID, TotalAmount: money.Amount(3097), Currency: "EUR",
			Items: []events.OrderItemPayload{{ProductID: prod.ProductID, VariantID: &variant, Name: "Mug (red)",
				Quantity: 2, UnitPrice: money.Amount(1299)}}},
			[]string{"currency", "items", "items[].name", "items[].product_id", "items[].quantity", "items[].unit_price",
				"items[].variant_id", "order_id", "order_number", "total_amount", "user_id"}},
		{events.OrderUpdated, events.OrderUpdatedPayload{OrderID: "5b4a3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d",
			OrderNumber: "MER-20261129-7K3F9Q", UserID: user.UserID, Status: "shipped", PreviousStatus: "confirmed"},
			[]string{"order_id", "order_number", "previous_status", "status", "user_id"}},
		{events.OrderCancelled, events.OrderCancelledPayload{OrderID: "5b4a3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d",
			UserID: user.UserID, Reason: "cancelled by the customer"},
			[]string{"order_id", "reason", "user_id"}},
		{events.PaymentProcessed, events.PaymentProcessedPayload{PaymentID: "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b",
			OrderID: "5b4a3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d", UserID: user.UserID, Amount: money.Amount(3097), Currency: "EUR"},
			[]string{"amount", "currency", "order_id", "payment_id", "user_id"}},
		{events.PaymentFailed, events.PaymentFailedPayload{PaymentID: "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b",
			OrderID: "5b4a3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d", UserID: user.UserID, FailureCode: "card_declined"},
			[]string{"failure_code", "order_id", "payment_id", "user_id"}},
		{events.PaymentRefunded, events.PaymentRefundedPayload{PaymentID: "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b",
			OrderID: "5b4a3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d", UserID: user.UserID, Amount: money.Amount(500),
			RefundedAmount: money.Amount(3097), FullyRefunded: true, Currency: "EUR"},
			[]string{"amount", "currency", "fully_refunded", "order_id", "payment_id", "refunded_amount", "user_id"}},
	}

	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.typ] = true
		t.Run(tt.typ, func(t *testing.T) {
			// Every field set, so a field the wire loses shows up as a
			// difference (and a field added later must be added here).
			if path, ok := unset(reflect.ValueOf(tt.payload), ""); !ok {
				t.Fatalf("test payload leaves %s unset", path)
			}

			env, err := events.New(context.Background(), "test", tt.typ, tt.payload)
			if err != nil {
				t.Fatal(err)
			}
			wire, err := json.Marshal(env) // what the outbox stores and the stream carries
			if err != nil {
				t.Fatal(err)
			}
			var received events.Envelope
			if err := json.Unmarshal(wire, &received); err != nil {
				t.Fatal(err)
			}

			got := reflect.New(reflect.TypeOf(tt.payload))
			if err := received.Decode(got.Interface()); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Elem().Interface(), tt.payload) {
				t.Errorf("decoded %+v\nsent    %+v", got.Elem().Interface(), tt.payload)
			}

			var raw any
			if err := json.Unmarshal(received.Data, &raw); err != nil {
				t.Fatal(err)
			}
			names := jsonNames(raw, "")
			sort.Strings(names)
			if !slices.Equal(names, tt.fields) {
				t.Errorf("JSON fields %q\nwant        %q", names, tt.fields)
			}
		})
	}

	for _, typ := range []string{events.UserCreated, events.UserUpdated, events.ProductCreated, events.ProductUpdated,
		events.OrderCreated, events.OrderUpdated, events.OrderCancelled, events.PaymentProcessed, events.PaymentFailed,
		events.PaymentRefunded, events.InventoryReleased, events.InventoryLowStock} {
		if !covered[typ] {
			t.Errorf("no payload round-trip for %s", typ)
		}
	}
}

// TestPayloadZeroValues checks the optional fields: absent when empty where
// the producer leaves them out, null where consumers expect a null.
func TestPayloadZeroValues(t *testing.T) {
	tests := []struct {
		name    string
		payload any
		want    string
	}{
		{"user without phone", events.UserPayload{UserID: "u", Email: "e", FirstName: "f", LastName: "l"},
			`{"user_id":"u","email":"e","first_name":"f","last_name":"l"}`},
		{"product without category", events.ProductPayload{ProductID: "p", SKU: "s", Name: "n", Slug: "n", Price: 100, Currency: "USD"},
			`{"product_id":"p","category_id":null,"sku":"s","name":"n","slug":"n","price":"1.00","currency":"USD","stock_quantity":0,"is_active":false}`},
		{"item without variant", events.OrderItemPayload{ProductID: "p", Name: "n", Quantity: 1, UnitPrice: 5},
			`{"product_id":"p","variant_id":null,"name":"n","quantity":1,"unit_price":"0.05"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(tt.payload)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// unset returns the path of the first field of v that holds its zero value
// (looking into structs, pointers and slice elements), or ok when there is
// none.
func unset(v reflect.Value, path string) (string, bool) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return path, false
		}
		return unset(v.Elem(), path)
	case reflect.Struct:
		for i := range v.NumField() {
			if p, ok := unset(v.Field(i), path+"."+v.Type().Field(i).Name); !ok {
				return p, false
			}
		}
		return "", true
	case reflect.Slice:
		if v.Len() == 0 {
			return path, false
		}
		for i := range v.Len() {
			if p, ok := unset(v.Index(i), path+"[]"); !ok {
				return p, false
			}
		}
		return "", true
	}
	if v.IsZero() {
		return path, false
	}
	return "", true
}

// jsonNames lists the object keys in a decoded JSON value, nested ones as
// "parent.child" and those of array elements as "parent[].child".
func jsonNames(v any, prefix string) []string {
	var names []string
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			names = append(names, prefix+k)
			names = append(names, jsonNames(child, prefix+k+".")...)
		}
	case []any:
		seen := map[string]bool{}
		for _, el := range v {
			for _, n := range jsonNames(el, prefix[:len(prefix)-1]+"[].") {
				if !seen[n] {
					seen[n] = true
					names = append(names, n)
				}
			}
		}
	}
	return names
}
