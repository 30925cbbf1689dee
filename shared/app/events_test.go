package app

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// TestRelayAndConsume checks the event wiring a main gets from the instance:
// an event committed to the outbox reaches a consumer of the service's own
// group, both recorded in one set of event metrics.
func TestRelayAndConsume(t *testing.T) {
	var logs bytes.Buffer
	in, err := Start(context.Background(), testConfig(t, testkit.PostgresURL(t), testkit.RedisAddr(t)), &logs,
		Options{Migrate: events.Migrate, Redis: redis.Options{ReadTimeout: 5 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()

	got := make(chan events.Envelope, 1)
	in.RelayOutbox()
	in.Consume("thing consumer", "consumer", events.Consumer{Types: []string{"thing.made"},
		Handler: func(_ context.Context, _ events.Tx, e events.Envelope) error { got <- e; return nil }})

	e, err := events.New(context.Background(), "thing", "thing.made", map[string]int{"id": 1})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := in.DB.Beginx()
	if err != nil {
		t.Fatal(err)
	}
	if err := events.Enqueue(context.Background(), tx, e); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-got:
		if e.Type != "thing.made" {
			t.Errorf("consumed %+v", e)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("the event never reached the consumer; logs:\n%s", logs.String())
	}
	// The consumer counts the event once its transaction commits, after the
	// handler returns.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if n, _ := testutil.GatherAndCount(in.Registry, "events_consumed_total"); n > 0 {
			break
		}
	}
	if err := in.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if strings.Contains(logs.String(), ` stopped"`) {
		t.Errorf("a loop stopped with an error:\n%s", logs.String())
	}
	want := `
# HELP events_consumed_total Events a consumer group handled and acknowledged.
# TYPE events_consumed_total counter
events_consumed_total{group="thing",service="thing",type="thing.made"} 1
# HELP events_published_total Events the outbox relay published to the stream.
# TYPE events_published_total counter
events_published_total{service="thing",type="thing.made"} 1
`
	if err := testutil.GatherAndCompare(in.Registry, strings.NewReader(want), "events_consumed_total", "events_published_total"); err != nil {
		t.Error(err)
	}
}
