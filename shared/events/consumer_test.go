package events_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/requestid"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// recorder is a handler that applies each event as a row in an "effects"
// table (so tests can see what committed) and remembers every call.
type recorder struct {
	mu       sync.Mutex
	calls    map[string]int // event id → handler calls
	requests map[string]string
	fail     func(e events.Envelope, call int) error // nil: always succeed
}

func newRecorder(t *testing.T, db *sqlx.DB) *recorder {
	t.Helper()
	if _, err := db.ExecContext(testCtx(t), `CREATE TABLE effects (event_id uuid, type text)`); err != nil {
		t.Fatal(err)
	}
	return &recorder{calls: map[string]int{}, requests: map[string]string{}}
}

func (r *recorder) handle(ctx context.Context, tx events.Tx, e events.Envelope) error {
	r.mu.Lock()
	r.calls[e.ID]++
	call := r.calls[e.ID]
	r.requests[e.ID] = requestid.FromContext(ctx)
	fail := r.fail
	r.mu.Unlock()
	if _, err := tx.ExecContext(ctx, `INSERT INTO effects (event_id, type) VALUES ($1, $2)`, e.ID, e.Type); err != nil {
		return err
	}
	if fail != nil {
		return fail(e, call) // after the insert: a failure must roll it back
	}
	return nil
}

func (r *recorder) callsFor(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[id]
}

func (r *recorder) totalCalls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.calls {
		n += c
	}
	return n
}

func effects(t *testing.T, db *sqlx.DB, id string) int {
	return count(t, db, `SELECT count(*) FROM effects WHERE event_id = $1`, id)
}

// fastConsumer returns a consumer tuned for tests: short block, idle time
// and claim interval, so retries and reclaims happen within a second.
func fastConsumer(db *sqlx.DB, rdb redis.Cmdable, stream, dead, group, name string, h events.HandlerFunc) *events.Consumer {
	return &events.Consumer{
		DB: db, Redis: rdb, Group: group, Name: name, Handler: h,
		Stream: stream, DeadLetterStream: dead,
		Block: 50 * time.Millisecond, MinIdle: 100 * time.Millisecond, ClaimInterval: 50 * time.Millisecond,
		MaxBackoff: 100 * time.Millisecond,
	}
}

func TestConsumerAppliesEachEventOnceDespiteDuplicateEntries(t *testing.T) {
	db, rdb := newDB(t), testkit.Redis(t)
	stream, dead := names()
	rec := newRecorder(t, db)

	a := newEvent(t, events.OrderCreated, 1)
	a.RequestID = "req-a"
	b := newEvent(t, events.OrderCreated, 2)
	// Published before the group exists (it must start from the beginning),
	// and a twice: what a relay does when it dies between XADD and commit.
	publish(t, rdb, stream, a)
	publish(t, rdb, stream, b)
	publish(t, rdb, stream, a)

	reg := prometheus.NewRegistry()
	c := fastConsumer(db, rdb, stream, dead, "notification", "n1", rec.handle)
	c.Metrics = events.NewMetrics(reg, "notification")
	start(t, c.Run)

	eventually(t, "all three entries to be read and acknowledged", func() bool {
		return entriesRead(t, rdb, stream, "notification") == 3 && pending(t, rdb, stream, "notification") == 0
	})
	for _, e := range []events.Envelope{a, b} {
		if n := rec.callsFor(e.ID); n != 1 {
			t.Errorf("handler called %d times for %s, want 1", n, e.ID)
		}
		if n := effects(t, db, e.ID); n != 1 {
			t.Errorf("%d effects committed for %s, want 1", n, e.ID)
		}
	}
	if n := count(t, db, `SELECT count(*) FROM inbox WHERE consumer = 'notification'`); n != 2 {
		t.Errorf("inbox has %d rows, want 2", n)
	}
	if got := rec.requests[a.ID]; got != "req-a" {
		t.Errorf("handler ctx request id %q, want req-a", got)
	}
	if v := metric(t, reg, "events_consumed_total", map[string]string{"group": "notification", "type": events.OrderCreated}); v != 2 {
		t.Errorf("events_consumed_total = %v, want 2", v)
	}
	if msgs := entries(t, rdb, dead); len(msgs) != 0 {
		t.Errorf("dead-letter stream has %d entries, want 0", len(msgs))
	}
}

func TestConsumerRetriesThenDeadLetters(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name      string
		failCalls int               // the handler fails this many times, then succeeds
		mark      func(error) error // how the handler marks its error; nil: not at all
		wantCalls int
		wantDead  bool
	}{
		{"succeeds on the third attempt", 2, nil, 3, false},
		{"fails every attempt", 1000, nil, 4, true}, // MaxAttempts 4
		{"panics every attempt", -1, nil, 4, true},
		{"permanent: dead-lettered at the first failure", 1000, events.Permanent, 1, true},
		{"transient: retried past MaxAttempts until it succeeds", 6, events.Transient, 7, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, rdb := newDB(t), testkit.Redis(t)
			stream, dead := names()
			rec := newRecorder(t, db)
			rec.fail = func(_ events.Envelope, call int) error {
				switch {
				case tt.failCalls < 0:
					panic("kaboom")
				case call <= tt.failCalls && tt.mark != nil:
					return tt.mark(fmt.Errorf("attempt %d: %w", call, errBoom))
				case call <= tt.failCalls:
					return errBoom
				}
				return nil
			}
			e := newEvent(t, events.PaymentProcessed, 1)
			publish(t, rdb, stream, e)

			reg := prometheus.NewRegistry()
			c := fastConsumer(db, rdb, stream, dead, "order", "o1", rec.handle)
			c.MaxAttempts = 4
			c.Metrics = events.NewMetrics(reg, "order")
			start(t, c.Run)

			eventually(t, "the entry to be acknowledged", func() bool {
				return entriesRead(t, rdb, stream, "order") == 1 && pending(t, rdb, stream, "order") == 0
			})
			time.Sleep(300 * time.Millisecond) // longer than MinIdle: no further attempts may follow

			if n := rec.callsFor(e.ID); n != tt.wantCalls {
				t.Errorf("handler called %d times, want %d", n, tt.wantCalls)
			}
			wantEffects, wantInbox := 1, 1
			if tt.wantDead {
				wantEffects, wantInbox = 0, 0
			}
			if n := effects(t, db, e.ID); n != wantEffects {
				t.Errorf("%d effects committed, want %d (failed attempts must roll back)", n, wantEffects)
			}
			if n := count(t, db, `SELECT count(*) FROM inbox WHERE event_id = $1`, e.ID); n != wantInbox {
				t.Errorf("%d inbox rows, want %d", n, wantInbox)
			}
			failures := tt.wantCalls - 1
			if tt.wantDead {
				failures = tt.wantCalls
			}
			labels := map[string]string{"group": "order", "type": events.PaymentProcessed}
			if v := metric(t, reg, "events_failed_total", labels); v != float64(failures) {
				t.Errorf("events_failed_total = %v, want %d", v, failures)
			}

			msgs := entries(t, rdb, dead)
			if !tt.wantDead {
				if len(msgs) != 0 {
					t.Errorf("dead-letter stream has %d entries, want 0", len(msgs))
				}
				return
			}
			if len(msgs) != 1 {
				t.Fatalf("dead-letter stream has %d entries, want 1", len(msgs))
			}
			v := msgs[0].Values
			wantErr := "boom"
			if tt.failCalls < 0 {
				wantErr = "handler panic: kaboom"
			}
			if v["id"] != e.ID || v["type"] != events.PaymentProcessed || v["group"] != "order" ||
				v["attempts"] != strconv.Itoa(tt.wantCalls) || v["stream"] != stream || !strings.Contains(v["error"].(string), wantErr) {
				t.Errorf("dead-letter entry %v", v)
			}
			if got := entryEnvelope(t, msgs[0]); got.ID != e.ID {
				t.Errorf("dead-letter envelope id %s, want %s", got.ID, e.ID)
			}
			if v := metric(t, reg, "events_dead_lettered_total", labels); v != 1 {
				t.Errorf("events_dead_lettered_total = %v, want 1", v)
			}
		})
	}
}

func TestConsumerDeadLettersMalformedEntries(t *testing.T) {
	tests := []struct {
		name    string
		values  []any
		wantErr string
	}{
		{"no envelope field", []any{"type", "order.created", "foo", "bar"}, `no "envelope" field`},
		{"envelope is not JSON", []any{"type", "order.created", "envelope", "{oops"}, "undecodable envelope"},
		{"id is not a UUID", []any{"type", "order.created", "envelope", `{"id":"7","type":"order.created"}`}, "not a UUID"},
		// uuid.Parse takes it, PostgreSQL's uuid type does not: the inbox
		// insert failed as if the database were down, so the entry was never
		// dead-lettered and starved the entries of its batch for good.
		{"id is a URN", []any{"type", "order.created", "envelope", `{"id":"urn:uuid:6f1c1f39-2d7c-4a53-9a4f-0a4c1f7f1c11","type":"order.created"}`}, "not a UUID"},
		{"no type anywhere", []any{"envelope", `{"id":"6f1c1f39-2d7c-4a53-9a4f-0a4c1f7f1c11"}`}, "has no type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, rdb := newDB(t), testkit.Redis(t)
			stream, dead := names()
			rec := newRecorder(t, db)
			if err := rdb.XAdd(testCtx(t), &redis.XAddArgs{Stream: stream, Values: tt.values}).Err(); err != nil {
				t.Fatal(err)
			}
			c := fastConsumer(db, rdb, stream, dead, "order", "o1", rec.handle)
			start(t, c.Run)

			eventually(t, "the entry to be dead-lettered", func() bool { return len(entries(t, rdb, dead)) == 1 })
			eventually(t, "the entry to be acknowledged", func() bool { return pending(t, rdb, stream, "order") == 0 })
			msg := entries(t, rdb, dead)[0]
			if errText, _ := msg.Values["error"].(string); !strings.Contains(errText, tt.wantErr) {
				t.Errorf("dead-letter error %q, want it to contain %q", errText, tt.wantErr)
			}
			if msg.Values["group"] != "order" || msg.Values["attempts"] != "1" {
				t.Errorf("dead-letter entry %v", msg.Values)
			}
			if n := rec.totalCalls(); n != 0 {
				t.Errorf("handler called %d times for a malformed entry", n)
			}
		})
	}
}

func TestConsumerReclaimsEntriesOfADeadMember(t *testing.T) {
	db, rdb := newDB(t), testkit.Redis(t)
	stream, dead := names()
	ctx := testCtx(t)
	rec := newRecorder(t, db)

	// A member reads three entries and dies before acknowledging them.
	if err := rdb.XGroupCreateMkStream(ctx, stream, "order", "0").Err(); err != nil {
		t.Fatal(err)
	}
	var want []events.Envelope
	for i := range 3 {
		e := newEvent(t, events.PaymentFailed, i)
		want = append(want, e)
		publish(t, rdb, stream, e)
	}
	read, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: "order", Consumer: "dead-member", Streams: []string{stream, ">"}, Count: 10, Block: -1,
	}).Result()
	if err != nil || len(read) != 1 || len(read[0].Messages) != 3 {
		t.Fatalf("dead member's read: %v, %v", read, err)
	}
	if n := pending(t, rdb, stream, "order"); n != 3 {
		t.Fatalf("%d pending before reclaim, want 3", n)
	}

	c := fastConsumer(db, rdb, stream, dead, "order", "survivor", rec.handle)
	c.Count = 2 // several XAUTOCLAIM pages
	start(t, c.Run)

	eventually(t, "the dead member's entries to be reclaimed and acknowledged", func() bool {
		return pending(t, rdb, stream, "order") == 0
	})
	for _, e := range want {
		if n := rec.callsFor(e.ID); n != 1 {
			t.Errorf("handler called %d times for %s, want 1", n, e.ID)
		}
		if n := effects(t, db, e.ID); n != 1 {
			t.Errorf("%d effects for %s, want 1", n, e.ID)
		}
	}
}

func TestConsumerTypeFilter(t *testing.T) {
	db, rdb := newDB(t), testkit.Redis(t)
	stream, dead := names()
	rec := newRecorder(t, db)

	wanted := []events.Envelope{newEvent(t, events.OrderCreated, 1), newEvent(t, events.PaymentFailed, 2)}
	others := []events.Envelope{newEvent(t, events.UserCreated, 3), newEvent(t, events.ProductUpdated, 4)}
	for _, e := range []events.Envelope{others[0], wanted[0], others[1], wanted[1]} {
		publish(t, rdb, stream, e)
	}

	c := fastConsumer(db, rdb, stream, dead, "notification", "n1", rec.handle)
	c.Types = []string{events.OrderCreated, events.PaymentFailed}
	start(t, c.Run)

	eventually(t, "all four entries to be acknowledged", func() bool {
		return entriesRead(t, rdb, stream, "notification") == 4 && pending(t, rdb, stream, "notification") == 0
	})
	for _, e := range wanted {
		if n := rec.callsFor(e.ID); n != 1 {
			t.Errorf("%s: handler called %d times, want 1", e.Type, n)
		}
	}
	for _, e := range others {
		if n := rec.callsFor(e.ID); n != 0 {
			t.Errorf("%s: handler called %d times, want 0", e.Type, n)
		}
	}
	if n := count(t, db, `SELECT count(*) FROM inbox`); n != 2 {
		t.Errorf("inbox has %d rows, want 2", n)
	}
}

func TestConsumerSurvivesRedisRestartAndLostStream(t *testing.T) {
	db := newDB(t)
	srv, rdb := privateRedis(t)
	stream, dead := names()
	rec := newRecorder(t, db)
	logs := &recordingLogger{}

	relay := &events.Relay{DB: db, Redis: rdb, Stream: stream, PollInterval: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
	c := fastConsumer(db, rdb, stream, dead, "notification", "n1", rec.handle)
	c.Logger = logs
	start(t, relay.Run)
	start(t, c.Run)

	// End to end: enqueue → relay → consumer.
	first := newEvent(t, events.UserCreated, 1)
	enqueue(t, db, first)
	eventually(t, "the first event to be handled", func() bool { return effects(t, db, first.ID) == 1 })

	// Redis goes away while events are enqueued, then comes back.
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	second := newEvent(t, events.UserUpdated, 2)
	enqueue(t, db, second)
	eventually(t, "the consumer to log the outage", func() bool {
		return logs.count("event consumer: notification/n1; retrying with backoff") == 1
	})
	time.Sleep(300 * time.Millisecond)
	if err := srv.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the event enqueued during the outage to be handled", func() bool { return effects(t, db, second.ID) == 1 })

	// The stream and its group vanish (e.g. a Redis without persistence
	// restarted): the consumer must recreate the group and read new events.
	if err := rdb.Del(testCtx(t), stream).Err(); err != nil {
		t.Fatal(err)
	}
	third := newEvent(t, events.UserUpdated, 3)
	enqueue(t, db, third)
	eventually(t, "the event published after the stream was lost to be handled", func() bool { return effects(t, db, third.ID) == 1 })

	for _, e := range []events.Envelope{first, second, third} {
		if n := rec.callsFor(e.ID); n != 1 {
			t.Errorf("handler called %d times for %s, want 1", n, e.Type)
		}
	}
	if n := logs.count("event consumer: notification/n1; retrying with backoff"); n < 1 || n > 2 {
		t.Errorf("consumer logged %d failure streaks, want 1 or 2 (outage, lost group)", n)
	}
}

// outageProxy forwards connections to the PostgreSQL server of dsn from a
// loopback port of its own, so that a test can take the database away
// (cut: live connections are broken, new ones are closed at once) and give
// it back (restore). url is dsn through the proxy.
type outageProxy struct {
	url string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]bool
}

func newOutageProxy(t *testing.T, dsn string) *outageProxy {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	p := &outageProxy{conns: map[net.Conn]bool{}}
	target := u.Host
	u.Host = l.Addr().String()
	p.url = u.String()
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return // the test ended
			}
			go p.forward(in, target)
		}
	}()
	return p
}

func (p *outageProxy) forward(in net.Conn, target string) {
	out, err := net.Dial("tcp", target)
	if err != nil {
		in.Close()
		return
	}
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		in.Close()
		out.Close()
		return
	}
	p.conns[in], p.conns[out] = true, true
	p.mu.Unlock()
	go func() { _, _ = io.Copy(out, in); out.Close() }()
	_, _ = io.Copy(in, out)
	in.Close()
}

func (p *outageProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *outageProxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// A database outage spends at most one of an event's attempts, the
// delivery that found the database down. Before, every XAUTOCLAIM during
// the outage counted a delivery (the handler never ran), and a handler
// failure while the database was down counted as the event's: after a
// second of outage, one more failure dead-lettered the event without its
// retries.
func TestConsumerOutageSpendsNoAttempts(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name string
		// fail is the handler's answer to its call-th call; cut ends the
		// database's sessions, as an outage does under a running handler.
		fail        func(call int, cut func()) error
		outageFirst bool // the database is down when the event is published
	}{
		{"down before the event, then one failure", func(call int, _ func()) error {
			if call == 1 {
				return errBoom
			}
			return nil
		}, true},
		{"goes down under the handler", func(call int, cut func()) error {
			switch call {
			case 1, 2:
				return errBoom
			case 3:
				cut()
				return errBoom // what a statement would return
			}
			return nil
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dsn := testkit.PostgresURL(t)
			proxy := newOutageProxy(t, dsn)
			db := sqlx.MustConnect("postgres", proxy.url)
			t.Cleanup(func() { db.Close() })
			if err := events.Migrate(testCtx(t), db); err != nil {
				t.Fatal(err)
			}
			rdb := testkit.Redis(t)
			stream, dead := names()
			rec := newRecorder(t, db)
			cut, restore := proxy.cut, proxy.restore
			rec.fail = func(_ events.Envelope, call int) error { return tt.fail(call, cut) }

			c := fastConsumer(db, rdb, stream, dead, "order", "o1", rec.handle)
			c.MaxAttempts = 3
			start(t, c.Run)
			if tt.outageFirst {
				cut()
			}
			e := newEvent(t, events.PaymentProcessed, 1)
			publish(t, rdb, stream, e)
			if !tt.outageFirst {
				eventually(t, "the handler's third call", func() bool { return rec.callsFor(e.ID) >= 3 })
			}
			time.Sleep(time.Second) // ten times MinIdle: ten claims' worth of outage
			restore()

			eventually(t, "the entry to be acknowledged", func() bool {
				return entriesRead(t, rdb, stream, "order") == 1 && pending(t, rdb, stream, "order") == 0
			})
			if msgs := entries(t, rdb, dead); len(msgs) != 0 {
				t.Fatalf("dead-lettered after the outage: %v (handler called %d times)", msgs[0].Values, rec.callsFor(e.ID))
			}
			check := sqlx.MustConnect("postgres", dsn)
			defer check.Close()
			if n := effects(t, check, e.ID); n != 1 {
				t.Errorf("%d effects committed, want 1", n)
			}
		})
	}
}
