package events_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// gathered checks the exposition of the named metrics in reg.
func gathered(t *testing.T, reg *prometheus.Registry, want string, names ...string) error {
	t.Helper()
	return testutil.GatherAndCompare(reg, strings.NewReader(want), names...)
}

// outbox_oldest_event_age_seconds is 0 on a drained outbox, the age of the
// oldest unpublished row while Redis is down, and 0 again once the relay
// has published everything.
func TestOutboxOldestEventAge(t *testing.T) {
	db := newDB(t)
	srv, rdb := privateRedis(t)
	stream, _ := names()

	reg := prometheus.NewRegistry()
	relay := &events.Relay{
		DB: db, Redis: rdb, Stream: stream,
		PollInterval: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, BacklogInterval: 20 * time.Millisecond,
		Metrics: events.NewMetrics(reg, "order"),
	}
	start(t, relay.Run)
	drained := `
# HELP outbox_backlog Outbox rows not yet published.
# TYPE outbox_backlog gauge
outbox_backlog{service="order"} 0
# HELP outbox_oldest_event_age_seconds Seconds the oldest unpublished outbox row has waited; 0 when the outbox is drained.
# TYPE outbox_oldest_event_age_seconds gauge
outbox_oldest_event_age_seconds{service="order"} 0
`
	eventually(t, "the gauges of an empty outbox", func() bool {
		return gathered(t, reg, drained, "outbox_backlog", "outbox_oldest_event_age_seconds") == nil
	})

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	oldest, newer := newEvent(t, events.OrderCreated, 1), newEvent(t, events.OrderCreated, 2)
	enqueue(t, db, oldest, newer)
	if _, err := db.ExecContext(testCtx(t),
		`UPDATE outbox SET created_at = clock_timestamp() - interval '90 seconds' WHERE id = $1`, oldest.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the age of the oldest waiting event", func() bool {
		age := metric(t, reg, "outbox_oldest_event_age_seconds", nil)
		return age >= 90 && age < 90+testTimeout.Seconds() && metric(t, reg, "outbox_backlog", nil) == 2
	})

	if err := srv.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the gauges to drop to 0 once published", func() bool {
		return gathered(t, reg, drained, "outbox_backlog", "outbox_oldest_event_age_seconds") == nil
	})
	if n := unpublished(t, db); n != 0 {
		t.Errorf("%d rows unpublished", n)
	}
}

// events_consumer_pending and events_consumer_lag follow the group: 0 on an
// empty stream; while the handler is held, the entries read and not yet
// acknowledged are pending and the rest are lag; both 0 once handled.
func TestConsumerPendingAndLag(t *testing.T) {
	db, rdb := newDB(t), testkit.Redis(t)
	stream, dead := names()
	release := make(chan struct{})
	held := func(ctx context.Context, _ events.Tx, _ events.Envelope) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	reg := prometheus.NewRegistry()
	c := fastConsumer(db, rdb, stream, dead, "notification", "n1", held)
	c.Count, c.MinIdle, c.BacklogInterval = 2, time.Minute, 20*time.Millisecond
	c.Metrics = events.NewMetrics(reg, "notification")
	stop := start(t, c.Run)

	backlog := func(pending, lag string) string {
		return `
# HELP events_consumer_lag Stream entries not yet delivered to the consumer group (XINFO GROUPS lag).
# TYPE events_consumer_lag gauge
events_consumer_lag{group="notification",service="notification",stream="` + stream + `"} ` + lag + `
# HELP events_consumer_pending Stream entries delivered to the consumer group and not yet acknowledged (XINFO GROUPS pending).
# TYPE events_consumer_pending gauge
events_consumer_pending{group="notification",service="notification",stream="` + stream + `"} ` + pending + "\n"
	}
	wantBacklog := func(what, pending, lag string) {
		t.Helper()
		deadline := time.Now().Add(testTimeout)
		for {
			err := gathered(t, reg, backlog(pending, lag), "events_consumer_pending", "events_consumer_lag")
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: %v", what, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	wantBacklog("an empty group's gauges", "0", "0")
	// Five entries at once (MULTI/EXEC), so the consumer's blocked read
	// wakes to all of them, not to the first alone.
	if _, err := rdb.TxPipelined(testCtx(t), func(p redis.Pipeliner) error {
		for i := range 5 {
			publish(t, p, stream, newEvent(t, events.OrderCreated, i))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Two read (Count) and held by the handler, three not delivered.
	wantBacklog("two pending and three waiting", "2", "3")
	close(release)
	wantBacklog("the backlog to drain", "0", "0")

	// The watch stops with the consumer: no refresh after Run returns.
	stop()
	publish(t, rdb, stream, newEvent(t, events.OrderCreated, 6))
	time.Sleep(100 * time.Millisecond) // five refresh intervals
	if err := gathered(t, reg, backlog("0", "0"), "events_consumer_pending", "events_consumer_lag"); err != nil {
		t.Errorf("the gauges changed after the consumer stopped: %v", err)
	}
}
