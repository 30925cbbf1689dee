package events_test

import (
	"context"
	"encoding/json"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/postgres"
	"github.com/mercato-dev/mercato/shared/testkit"
)

func TestRelayPublishesCommittedEventsOnce(t *testing.T) {
	db, rdb := newDB(t), testkit.Redis(t)
	stream, _ := names()
	ctx := testCtx(t)

	rolledBack, committed := newEvent(t, events.OrderCreated, 1), newEvent(t, events.OrderUpdated, 2)
	committed.RequestID = "req-7"

	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := events.Enqueue(ctx, tx, rolledBack); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	enqueue(t, db, committed)

	reg := prometheus.NewRegistry()
	logs := &recordingLogger{}
	relay := &events.Relay{
		DB: db, Redis: rdb, Stream: stream, PollInterval: 10 * time.Millisecond,
		BacklogInterval: 10 * time.Millisecond,
		Logger:          logs, Metrics: events.NewMetrics(reg, "order"),
	}
	start(t, relay.Run)

	eventually(t, "the committed event to be marked published", func() bool { return unpublished(t, db) == 0 })
	eventually(t, "the backlog gauge to drop to 0", func() bool {
		return metric(t, reg, "outbox_backlog", nil) == 0
	})
	time.Sleep(100 * time.Millisecond) // several more polls: nothing else may appear

	msgs := entries(t, rdb, stream)
	if len(msgs) != 1 {
		t.Fatalf("stream has %d entries, want 1: %v", len(msgs), msgs)
	}
	if msgs[0].Values["id"] != committed.ID || msgs[0].Values["type"] != events.OrderUpdated {
		t.Errorf("entry fields %v", msgs[0].Values)
	}
	got := entryEnvelope(t, msgs[0])
	if got.ID != committed.ID || got.Type != committed.Type || got.Source != committed.Source ||
		got.RequestID != "req-7" || !got.Timestamp.Equal(committed.Timestamp) {
		t.Errorf("published %+v, want %+v", got, committed)
	}
	var data map[string]int
	if err := json.Unmarshal(got.Data, &data); err != nil || !reflect.DeepEqual(data, map[string]int{"n": 2}) {
		t.Errorf("data %s", got.Data)
	}
	if n := count(t, db, `SELECT count(*) FROM outbox WHERE id = $1 AND published_at IS NOT NULL`, committed.ID); n != 1 {
		t.Errorf("committed event not marked published")
	}
	if n := count(t, db, `SELECT count(*) FROM outbox`); n != 1 {
		t.Errorf("outbox has %d rows, want 1 (the rolled back one must not exist)", n)
	}
	if v := metric(t, reg, "events_published_total", map[string]string{"type": events.OrderUpdated}); v != 1 {
		t.Errorf("events_published_total = %v, want 1", v)
	}
	if len(logs.msgs) != 0 {
		t.Errorf("unexpected log lines: %v", logs.msgs)
	}
}

func TestRelaysRunningConcurrentlyPublishEachEventOnce(t *testing.T) {
	db, rdb := newDB(t), testkit.Redis(t)
	stream, _ := names()

	for range 3 {
		relay := &events.Relay{
			DB: db, Redis: rdb, Stream: stream,
			BatchSize: 7, PollInterval: 5 * time.Millisecond, // small batches: many contested rounds
		}
		start(t, relay.Run)
	}

	// Producers keep enqueuing while the relays run.
	const producers, perProducer = 4, 50
	want := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perProducer {
				e, err := events.New(context.Background(), "test", events.ProductUpdated, map[string]int{"p": p, "i": i})
				if err != nil {
					t.Error(err)
					return
				}
				if err := events.Enqueue(context.Background(), db, e); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				want[e.ID] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()

	eventually(t, "the outbox to drain", func() bool { return unpublished(t, db) == 0 })
	time.Sleep(50 * time.Millisecond)

	msgs := entries(t, rdb, stream)
	if len(msgs) != producers*perProducer {
		t.Errorf("stream has %d entries, want %d", len(msgs), producers*perProducer)
	}
	seen := map[string]int{}
	for _, m := range msgs {
		seen[entryEnvelope(t, m).ID]++
	}
	for id, n := range seen {
		if n != 1 || !want[id] {
			t.Errorf("event %s published %d times (enqueued: %v)", id, n, want[id])
		}
	}
	if len(seen) != len(want) {
		t.Errorf("%d distinct events published, want %d", len(seen), len(want))
	}
}

func TestRelayRetriesWhileRedisIsDown(t *testing.T) {
	db := newDB(t)
	srv, rdb := privateRedis(t)
	stream, _ := names()

	reg := prometheus.NewRegistry()
	logs := &recordingLogger{}
	relay := &events.Relay{
		DB: db, Redis: rdb, Stream: stream,
		PollInterval: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		BacklogInterval: 20 * time.Millisecond,
		Logger:          logs, Metrics: events.NewMetrics(reg, "order"),
	}
	start(t, relay.Run)

	var before []events.Envelope
	for i := range 5 {
		before = append(before, newEvent(t, events.OrderCreated, i))
	}
	enqueue(t, db, before...)
	eventually(t, "the first events to be published", func() bool { return unpublished(t, db) == 0 })

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	var during []events.Envelope
	for i := range 20 {
		e := newEvent(t, events.OrderUpdated, i)
		during = append(during, e)
		enqueue(t, db, e)
	}
	eventually(t, "the backlog gauge to show the 20 waiting events", func() bool {
		return metric(t, reg, "outbox_backlog", nil) == 20
	})
	eventually(t, "the relay to log the outage", func() bool {
		return logs.count("outbox relay: publish failed; retrying with backoff") == 1
	})
	time.Sleep(500 * time.Millisecond) // many retries while Redis is down
	if n := unpublished(t, db); n != 20 {
		t.Fatalf("%d events unpublished while Redis is down, want 20 (none may be marked)", n)
	}

	if err := srv.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the backlog to drain after Redis is back", func() bool { return unpublished(t, db) == 0 })
	eventually(t, "the backlog gauge to drop to 0", func() bool {
		return metric(t, reg, "outbox_backlog", nil) == 0
	})

	msgs := entries(t, rdb, stream)
	var got []string
	for _, m := range msgs {
		got = append(got, entryEnvelope(t, m).ID)
	}
	var want []string
	for _, e := range append(before, during...) {
		want = append(want, e.ID)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stream holds %d events %v,\nwant %d in enqueue order %v", len(got), got, len(want), want)
	}
	if n := logs.count("outbox relay: publish failed; retrying with backoff"); n != 1 {
		t.Errorf("outage logged %d times, want once", n)
	}
	if n := logs.count("outbox relay: publishing again"); n != 1 {
		t.Errorf("recovery logged %d times, want once", n)
	}
	if v := metric(t, reg, "events_published_total", map[string]string{"type": events.OrderUpdated}); v != 20 {
		t.Errorf("events_published_total{order.updated} = %v, want 20", v)
	}
}

func TestRelayDeletesPublishedRowsAfterRetention(t *testing.T) {
	db, rdb := newDB(t), testkit.Redis(t)
	stream, _ := names()
	old, recent := newEvent(t, events.UserCreated, 1), newEvent(t, events.UserCreated, 2)
	enqueue(t, db, old, recent)
	ctx := testCtx(t)
	// old was published long ago; recent is still waiting.
	if _, err := db.ExecContext(ctx, `UPDATE outbox SET published_at = now() - interval '2 hours' WHERE id = $1`, old.ID); err != nil {
		t.Fatal(err)
	}

	relay := &events.Relay{
		DB: db, Redis: rdb, Stream: stream, PollInterval: 10 * time.Millisecond,
		BacklogInterval: 10 * time.Millisecond, Retention: time.Hour,
	}
	start(t, relay.Run)

	eventually(t, "the old published row to be deleted", func() bool {
		return count(t, db, `SELECT count(*) FROM outbox WHERE id = $1`, old.ID) == 0
	})
	eventually(t, "the recent event to be published", func() bool { return unpublished(t, db) == 0 })
	if n := count(t, db, `SELECT count(*) FROM outbox WHERE id = $1`, recent.ID); n != 1 {
		t.Errorf("recently published row deleted before its retention")
	}
	if msgs := entries(t, rdb, stream); len(msgs) != 1 || msgs[0].Values["id"] != recent.ID {
		t.Errorf("stream %v, want only %s", msgs, recent.ID)
	}
}

// The inbox forgets a handled event after InboxRetention, as the outbox a
// published one: before, it kept a row per event per consumer group for
// ever.
func TestRelayDeletesInboxRowsAfterRetention(t *testing.T) {
	db, rdb := newDB(t), testkit.Redis(t)
	stream, _ := names()
	ctx := testCtx(t)
	old, recent := newEvent(t, events.UserCreated, 1), newEvent(t, events.UserCreated, 2)
	if _, err := db.ExecContext(ctx, `INSERT INTO inbox (consumer, event_id, processed_at)
		VALUES ('order', $1, now() - interval '2 hours'), ('payment', $1, now() - interval '2 hours'), ('order', $2, now())`,
		old.ID, recent.ID); err != nil {
		t.Fatal(err)
	}
	relay := &events.Relay{DB: db, Redis: rdb, Stream: stream, PollInterval: 10 * time.Millisecond,
		BacklogInterval: 10 * time.Millisecond, InboxRetention: time.Hour}
	start(t, relay.Run)

	eventually(t, "the old inbox rows to be deleted", func() bool {
		return count(t, db, `SELECT count(*) FROM inbox WHERE event_id = $1`, old.ID) == 0
	})
	if n := count(t, db, `SELECT count(*) FROM inbox WHERE event_id = $1`, recent.ID); n != 1 {
		t.Errorf("a recently handled event's inbox row deleted before its retention")
	}
}

// The clean-up does not hold publishing up: an event committed while it runs
// is published before it ends. Before, the relay cleaned up between its
// batches, for up to PublishTimeout a round: a backlog of 600,000 inbox rows
// past retention kept a committed event waiting 6 s.
func TestRelayPublishesDuringItsCleanUp(t *testing.T) {
	db, rdb := newDB(t), testkit.Redis(t)
	stream, _ := names()
	ctx := testCtx(t)
	old := newEvent(t, events.UserCreated, 1)
	if _, err := db.ExecContext(ctx, `INSERT INTO inbox (consumer, event_id, processed_at)
		VALUES ('order', $1, now() - interval '2 hours')`, old.ID); err != nil {
		t.Fatal(err)
	}
	// A clean-up that takes as long as the test does: its DELETE waits for
	// the lock, held until the test lets it go (not by ctx, whose end
	// would roll it back before the test has seen what it waits for).
	lock, err := db.BeginTxx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lock.Rollback() }() // already rolled back, at the end
	if _, err := lock.ExecContext(context.Background(), `LOCK TABLE inbox IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	relay := &events.Relay{DB: db, Redis: rdb, Stream: stream, PollInterval: 10 * time.Millisecond,
		PublishTimeout: 2 * testTimeout, InboxRetention: time.Hour}
	start(t, relay.Run)
	eventually(t, "the clean-up to wait for the inbox", func() bool {
		return count(t, db, `SELECT count(*) FROM pg_locks WHERE relation = 'inbox'::regclass AND NOT granted`) > 0
	})

	e := newEvent(t, events.UserCreated, 2)
	enqueue(t, db, e)
	eventually(t, "the event committed during the clean-up to be published", func() bool {
		return len(entries(t, rdb, stream)) == 1
	})
	if err := lock.Rollback(); err != nil {
		t.Fatal(err)
	}
}

// With the fallback poll an hour away, only the commit notification can
// wake the drained relay: the event still arriving proves the wake-up.
func TestRelayWakesOnCommitNotification(t *testing.T) {
	url := testkit.PostgresURL(t)
	db, err := sqlx.Connect("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := testCtx(t)
	if err := events.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	rdb := testkit.Redis(t)
	stream, _ := names()

	first := newEvent(t, events.OrderCreated, 1)
	enqueue(t, db, first)
	relay := &events.Relay{DB: db, Redis: rdb, Stream: stream, ListenURL: url,
		PollInterval: time.Hour, BacklogInterval: time.Hour}
	start(t, relay.Run)
	// The first pass publishes what is there, then the relay idles.
	eventually(t, "the first event to be published", func() bool { return len(entries(t, rdb, stream)) == 1 })
	eventually(t, "the relay to LISTEN", func() bool {
		return count(t, db, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND query LIKE 'LISTEN%'`) == 1
	})

	second, third := newEvent(t, events.OrderUpdated, 2), newEvent(t, events.OrderUpdated, 3)
	enqueue(t, db, second, third)
	eventually(t, "the events committed while idle to be published", func() bool { return unpublished(t, db) == 0 })
	msgs := entries(t, rdb, stream)
	if len(msgs) != 3 {
		t.Fatalf("stream has %d entries, want 3: %v", len(msgs), msgs)
	}
	for i, want := range []string{first.ID, second.ID, third.ID} {
		if msgs[i].Values["id"] != want {
			t.Errorf("entry %d is %v, want %s", i, msgs[i].Values["id"], want)
		}
	}
}

// A relay with an ApplicationName wakes for the commits of its own
// instance's connections and of connections that name none, not for another
// instance's: that instance's relay has them, and this one's poll (an hour
// away here) is only their fallback.
func TestRelayWakesForItsOwnInstancesCommits(t *testing.T) {
	url := testkit.PostgresURL(t)
	ctx := testCtx(t)
	open := func(name string) *sqlx.DB {
		db, err := postgres.Open(ctx, url, postgres.PoolOptions{ApplicationName: name})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	own, other, unnamed := open("order-aaaaaaaa"), open("order-bbbbbbbb"), open("")
	if err := events.Migrate(ctx, own); err != nil {
		t.Fatal(err)
	}
	rdb := testkit.Redis(t)
	stream, _ := names()

	// The test's own listener sees what the trigger sends.
	l := pq.NewListener(url, time.Second, time.Second, nil)
	t.Cleanup(func() { l.Close() })
	if err := l.Listen("outbox_insert"); err != nil {
		t.Fatal(err)
	}
	notified := func(committer string) {
		t.Helper()
		select {
		case n := <-l.NotificationChannel():
			if n == nil || n.Extra != committer {
				t.Fatalf("notification %+v, want one naming %s", n, committer)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no commit notification in 10s")
		}
	}

	// A row before the relay starts: its first round publishes it.
	enqueue(t, own, newEvent(t, events.OrderCreated, 0))
	notified("order-aaaaaaaa")
	relay := &events.Relay{DB: own, Redis: rdb, Stream: stream, ListenURL: url, ApplicationName: "order-aaaaaaaa",
		PollInterval: time.Hour, BacklogInterval: time.Hour}
	start(t, relay.Run)
	eventually(t, "the relay to LISTEN", func() bool {
		return count(t, own, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND query LIKE 'LISTEN%'`) == 2
	})
	// Its start-up rounds are over once that row is out and the round its
	// listener's connection asks for has passed; another instance's row
	// committed before then would be published by them, not by a wake-up.
	eventually(t, "the relay's first round", func() bool { return unpublished(t, own) == 0 })
	time.Sleep(time.Second)

	enqueue(t, other, newEvent(t, events.OrderCreated, 1))
	notified("order-bbbbbbbb")
	// A woken relay publishes in milliseconds; this one must not wake.
	time.Sleep(time.Second)
	if n := unpublished(t, own); n != 1 {
		t.Fatalf("%d rows unpublished after another instance's commit, want 1: the relay woke for it", n)
	}

	enqueue(t, unnamed, newEvent(t, events.OrderCreated, 2))
	eventually(t, "a commit naming no instance to wake the relay", func() bool { return unpublished(t, own) == 0 })
	enqueue(t, own, newEvent(t, events.OrderCreated, 3))
	eventually(t, "the relay's own instance's commit to wake it", func() bool { return unpublished(t, own) == 0 })
	if n := len(entries(t, rdb, stream)); n != 4 {
		t.Errorf("stream has %d entries, want 4", n)
	}
}

// TestRelayTrimsOnlyWhatEveryGroupIsDoneWith: the stream is trimmed of the
// entries every consumer group has handled, and never of one a group has
// not been given or still holds pending, however far it lags.
func TestRelayTrimsOnlyWhatEveryGroupIsDoneWith(t *testing.T) {
	db, rdb := newDB(t), testkit.Redis(t)
	stream, _ := names()
	ctx := testCtx(t)
	const n = 1000
	es := make([]events.Envelope, n)
	for i := range es {
		es[i] = newEvent(t, events.OrderCreated, i)
	}
	enqueue(t, db, es...)
	length := func() int64 {
		t.Helper()
		l, err := rdb.XLen(ctx, stream).Result()
		if err != nil {
			t.Fatalf("xlen: %v", err)
		}
		return l
	}
	housekeeping := func() { time.Sleep(200 * time.Millisecond) } // twenty rounds

	relay := &events.Relay{
		DB: db, Redis: rdb, Stream: stream, PollInterval: 10 * time.Millisecond,
		BacklogInterval: 10 * time.Millisecond,
	}
	start(t, relay.Run)
	eventually(t, "every event to be published", func() bool { return unpublished(t, db) == 0 })
	housekeeping()
	if l := length(); l != n {
		t.Fatalf("a stream no group reads yet was trimmed to %d entries of %d: a group to come starts at its beginning", l, n)
	}

	read := func(group string, count int64) []string {
		t.Helper()
		res, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: group, Consumer: "c", Streams: []string{stream, ">"}, Count: count, Block: -1,
		}).Result()
		if err != nil {
			t.Fatalf("xreadgroup %s: %v", group, err)
		}
		var ids []string
		for _, m := range res[0].Messages {
			ids = append(ids, m.ID)
		}
		return ids
	}
	ack := func(group string, ids []string) {
		t.Helper()
		if err := rdb.XAck(ctx, stream, group, ids...).Err(); err != nil {
			t.Fatalf("xack %s: %v", group, err)
		}
	}
	for _, g := range []string{"fast", "slow"} {
		if err := rdb.XGroupCreate(ctx, stream, g, "0").Err(); err != nil {
			t.Fatal(err)
		}
	}
	ack("fast", read("fast", n)) // fast has handled everything
	given := read("slow", 600)   // slow has been given 600, and holds the first ten
	ack("slow", given[10:])
	housekeeping()
	if l := length(); l != n {
		t.Errorf("trimmed to %d entries of %d while a group still held the first ten pending", l, n)
	}

	ack("slow", given[:10])
	eventually(t, "the entries both groups handled to be trimmed", func() bool { return length() <= n-400 })
	rest, err := rdb.XRange(ctx, stream, "("+given[len(given)-1], "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(rest) != n-600 || entryEnvelope(t, rest[0]).ID != es[600].ID {
		t.Errorf("%d entries left past what the slow group has been given, want %d from the 601st event", len(rest), n-600)
	}
}
