package events_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/requestid"
)

func TestNew(t *testing.T) {
	ctx := requestid.NewContext(context.Background(), "req-42")
	before := time.Now()
	e, err := events.New(ctx, "order", events.OrderCreated, map[string]string{"order_id": "o1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := uuid.Parse(e.ID); err != nil {
		t.Errorf("ID %q is not a UUID", e.ID)
	}
	if e.Type != "order.created" || e.Source != "order" || e.RequestID != "req-42" {
		t.Errorf("got type %q source %q request id %q", e.Type, e.Source, e.RequestID)
	}
	if e.Timestamp.Location() != time.UTC || e.Timestamp.Before(before.Add(-time.Second)) || e.Timestamp.After(time.Now()) {
		t.Errorf("timestamp %v: want UTC now", e.Timestamp)
	}
	if string(e.Data) != `{"order_id":"o1"}` {
		t.Errorf("data %s", e.Data)
	}
	var got struct {
		OrderID string `json:"order_id"`
	}
	if err := e.Decode(&got); err != nil || got.OrderID != "o1" {
		t.Errorf("Decode: %+v, %v", got, err)
	}

	if _, err := events.New(ctx, "order", "", nil); err == nil {
		t.Error("New with an empty type: want error")
	}
	if _, err := events.New(ctx, "order", events.OrderCreated, func() {}); err == nil {
		t.Error("New with unmarshallable data: want error")
	}
}

func TestEnvelopeJSON(t *testing.T) {
	ts := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		e    events.Envelope
		want string
	}{
		{
			name: "with request id",
			e:    events.Envelope{ID: "i", Type: "t", Source: "s", Timestamp: ts, RequestID: "r", Data: json.RawMessage(`{"a":1}`)},
			want: `{"id":"i","type":"t","source":"s","timestamp":"2024-05-01T12:00:00Z","request_id":"r","data":{"a":1}}`,
		},
		{
			name: "request id omitted when empty",
			e:    events.Envelope{ID: "i", Type: "t", Source: "s", Timestamp: ts, Data: json.RawMessage(`null`)},
			want: `{"id":"i","type":"t","source":"s","timestamp":"2024-05-01T12:00:00Z","data":null}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(tt.e)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestEventTypes(t *testing.T) {
	want := map[string]string{
		events.UserCreated: "user.created", events.UserUpdated: "user.updated",
		events.ProductCreated: "product.created", events.ProductUpdated: "product.updated",
		events.OrderCreated: "order.created", events.OrderUpdated: "order.updated",
		events.OrderCancelled: "order.cancelled", events.PaymentProcessed: "payment.processed",
		events.PaymentFailed: "payment.failed", events.PaymentRefunded: "payment.refunded",
		events.InventoryReleased: "inventory.released", events.InventoryLowStock: "inventory.low_stock",
	}
	for got, w := range want {
		if got != w {
			t.Errorf("constant %q, want %q", got, w)
		}
	}
	if len(want) != 12 {
		t.Errorf("%d distinct types, want 12", len(want))
	}
}

func TestNewMetrics(t *testing.T) {
	// Separate registries: building metrics twice must not panic, which it
	// would on the global registry.
	for range 2 {
		reg := prometheus.NewRegistry()
		m := events.NewMetrics(reg, "order")
		m.Published.With("type", events.OrderCreated).Add(2)
		m.OutboxBacklog.Set(7)
		if got := metric(t, reg, "events_published_total", map[string]string{"service": "order", "type": "order.created"}); got != 2 {
			t.Errorf("events_published_total = %v, want 2", got)
		}
		if got := metric(t, reg, "outbox_backlog", map[string]string{"service": "order"}); got != 7 {
			t.Errorf("outbox_backlog = %v, want 7", got)
		}
	}
}

func TestEnqueueRejectsInvalidEnvelopes(t *testing.T) {
	db := newDB(t)
	good := newEvent(t, events.UserCreated, 1)
	tests := []struct {
		name    string
		mutate  func(*events.Envelope)
		wantErr string
	}{
		{"id not a uuid", func(e *events.Envelope) { e.ID = "42" }, "not a UUID"},
		{"no type", func(e *events.Envelope) { e.Type = "" }, "no type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := good
			tt.mutate(&e)
			err := events.Enqueue(testCtx(t), db, e)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Enqueue: %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
	if n := count(t, db, `SELECT count(*) FROM outbox`); n != 0 {
		t.Errorf("outbox has %d rows, want 0", n)
	}
}

func TestMigrateTwice(t *testing.T) {
	db := newDB(t) // first run
	if err := events.Migrate(testCtx(t), db); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	for _, table := range []string{"outbox", "inbox"} {
		if n := count(t, db, `SELECT count(*) FROM information_schema.tables WHERE table_name = $1`, table); n != 1 {
			t.Errorf("table %s: found %d", table, n)
		}
	}
	if n := count(t, db, `SELECT count(*) FROM pg_indexes WHERE indexname = 'outbox_unpublished_idx'`); n != 1 {
		t.Errorf("partial index on unpublished rows missing")
	}
}
