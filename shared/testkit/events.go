package testkit

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/shared/events"
)

// Publish writes an event straight to the stream events.DefaultStream, as a
// service's outbox relay would (or anyone who can reach Redis), and returns
// it. A failure fails t.
func Publish(t testing.TB, rdb redis.Cmdable, source, typ string, data any) events.Envelope {
	t.Helper()
	e, err := events.New(context.Background(), source, typ, data)
	if err != nil {
		t.Fatalf("testkit: event %s: %v", typ, err)
	}
	raw, err := json.Marshal(e)
	if err != nil {
		t.Fatalf("testkit: event %s: %v", typ, err)
	}
	if err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: events.DefaultStream,
		Values: []any{"id", e.ID, "type", e.Type, "envelope", string(raw)}}).Err(); err != nil {
		t.Fatalf("testkit: publish %s: %v", typ, err)
	}
	return e
}
