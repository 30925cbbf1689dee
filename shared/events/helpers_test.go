package events_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/localinfra"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// testTimeout bounds every wait in this package's tests.
const testTimeout = 20 * time.Second

// newDB returns a fresh database with the events schema.
func newDB(t *testing.T) *sqlx.DB {
	t.Helper()
	db := testkit.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := events.Migrate(ctx, db); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return db
}

// privateRedis starts a Redis server of the test's own, which it may stop
// and start, and a client of it that gives up quickly while it is down. The
// client logs in as the admin user: the test's own stream names are no
// service's.
func privateRedis(t *testing.T) (*localinfra.Redis, *redis.Client) {
	t.Helper()
	srv := testkit.NewRedis(t)
	o := testkit.RedisOptions(t, srv.Addr(), localinfra.RedisAdmin)
	rdb := redis.NewClient(&redis.Options{
		Addr: o.Addr, Username: o.Username, Password: o.Password, DialTimeout: 200 * time.Millisecond,
		ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: 1,
	})
	t.Cleanup(func() { rdb.Close() })
	return srv, rdb
}

// names gives a test its own stream and dead-letter stream on the shared
// Redis server.
func names() (stream, dead string) {
	id := uuid.NewString()
	return "events-" + id, "events.dead-" + id
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// start runs fn (a Relay's or Consumer's Run) until the test ends, then
// checks that it stopped promptly and cleanly.
func start(t *testing.T, run func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v after cancel, want nil", err)
				}
			case <-time.After(15 * time.Second):
				t.Errorf("Run did not return within 15s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// newEvent builds an envelope with a small payload.
func newEvent(t *testing.T, typ string, n int) events.Envelope {
	t.Helper()
	e, err := events.New(context.Background(), "test", typ, map[string]int{"n": n})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// enqueue commits events to the outbox in one transaction.
func enqueue(t *testing.T, db *sqlx.DB, es ...events.Envelope) {
	t.Helper()
	ctx := testCtx(t)
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }() // after Commit it only reports ErrTxDone
	for _, e := range es {
		if err := events.Enqueue(ctx, tx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func count(t *testing.T, db *sqlx.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.GetContext(testCtx(t), &n, query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func unpublished(t *testing.T, db *sqlx.DB) int {
	return count(t, db, `SELECT count(*) FROM outbox WHERE published_at IS NULL`)
}

func entries(t *testing.T, rdb redis.Cmdable, stream string) []redis.XMessage {
	t.Helper()
	msgs, err := rdb.XRange(testCtx(t), stream, "-", "+").Result()
	if err != nil {
		t.Fatalf("xrange %s: %v", stream, err)
	}
	return msgs
}

// entryEnvelope decodes the envelope field of a stream entry.
func entryEnvelope(t *testing.T, msg redis.XMessage) events.Envelope {
	t.Helper()
	raw, _ := msg.Values["envelope"].(string)
	var e events.Envelope
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		t.Fatalf("entry %s: %v (%q)", msg.ID, err, raw)
	}
	return e
}

// publish writes an envelope to the stream the way the Relay does, so
// consumer tests control exactly what is delivered.
func publish(t *testing.T, rdb redis.Cmdable, stream string, e events.Envelope) {
	t.Helper()
	raw, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	err = rdb.XAdd(testCtx(t), &redis.XAddArgs{
		Stream: stream,
		Values: []any{"id", e.ID, "type", e.Type, "envelope", string(raw)},
	}).Err()
	if err != nil {
		t.Fatal(err)
	}
}

// pending is the number of entries delivered to group and not acknowledged.
func pending(t *testing.T, rdb redis.Cmdable, stream, group string) int64 {
	t.Helper()
	p, err := rdb.XPending(testCtx(t), stream, group).Result()
	if err != nil {
		t.Fatalf("xpending: %v", err)
	}
	return p.Count
}

// entriesRead is how many stream entries group has been given so far.
func entriesRead(t *testing.T, rdb redis.Cmdable, stream, group string) int64 {
	t.Helper()
	groups, err := rdb.XInfoGroups(testCtx(t), stream).Result()
	if err != nil {
		t.Fatalf("xinfo groups: %v", err)
	}
	for _, g := range groups {
		if g.Name == group {
			return g.EntriesRead
		}
	}
	return 0
}

// metric returns the value of the counter or gauge name with the given
// labels (the constant service label aside), or 0 when absent.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// recordingLogger keeps the "msg" of every line, for checking how often
// something was logged.
type recordingLogger struct {
	mu   sync.Mutex
	msgs []string
}

func (l *recordingLogger) Log(keyvals ...any) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := 0; i+1 < len(keyvals); i += 2 {
		if keyvals[i] == "msg" {
			l.msgs = append(l.msgs, fmt.Sprint(keyvals[i+1]))
		}
	}
	return nil
}

func (l *recordingLogger) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if m == msg {
			n++
		}
	}
	return n
}
