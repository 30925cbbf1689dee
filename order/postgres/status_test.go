package postgres_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/mercato-dev/mercato/order"
	"github.com/mercato-dev/mercato/order/postgres"
	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// The live status stream, GET /orders/{id}/events, on a real database: the
// history trigger's notifications, the Watcher and the SSE transport.

type streamRig struct {
	repo    *postgres.Repository
	tokens  *auth.Tokens
	watcher *order.Watcher
	url     string // the server's base URL
}

// openMigrated connects to dsn, closed when the test ends, and brings it to
// the current schema.
func openMigrated(t *testing.T, dsn string) *sqlx.DB {
	t.Helper()
	db, err := sqlx.Connect("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := postgres.Schema.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	return db
}

// newStreamRig serves the stream of a fresh database, its listener and
// watcher stopped when the test ends. Another rig on the same dsn is
// another instance.
func newStreamRig(t *testing.T, dsn string, opts order.WatchOptions) *streamRig {
	t.Helper()
	return newStreamRigWith(t, dsn, opts, nil)
}

// streamKey signs the rigs' tokens.
var streamKey = []byte("a-test-secret-of-at-least-32-bytes!!")

// newStreamRigWith is newStreamRig whose tokens are looked up in denylist
// (nil: none).
func newStreamRigWith(t *testing.T, dsn string, opts order.WatchOptions, denylist *auth.Denylist) *streamRig {
	t.Helper()
	db := openMigrated(t, dsn)
	tokens, err := auth.NewTokens(streamKey, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if denylist != nil {
		tokens = tokens.WithDenylist(denylist)
	}
	listening := func() (n int) {
		if err := db.Get(&n, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query = $1`,
			"LISTEN "+pq.QuoteIdentifier(postgres.NotifyChannel)); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := listening() // another rig's listener, on the same database
	repo := postgres.New(db)
	w := order.NewWatcher(repo, nil, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = postgres.Listen(ctx, dsn, w, log.NewNopLogger()) }()
	r := mux.NewRouter()
	order.MakeEventsHandler(r, w, tokens, log.NewNopLogger(), order.StreamOptions{Heartbeat: 100 * time.Millisecond})
	srv := httptest.NewServer(r)
	t.Cleanup(func() { cancel(); <-done; srv.Close() })
	for deadline := time.Now().Add(10 * time.Second); listening() == before; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the listener did not LISTEN within 10s")
		}
	}
	return &streamRig{repo: repo, tokens: tokens, watcher: w, url: srv.URL}
}

func (rig *streamRig) token(t *testing.T, userID string, role auth.Role) string {
	t.Helper()
	tok, err := rig.tokens.Issue(auth.Identity{UserID: userID, Email: userID + "@example.com", Role: role})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type sseEvent struct {
	ID, Event, Data string
	Comment         string
}

type stream struct {
	resp   *http.Response
	events chan sseEvent
}

// open starts a stream; a status other than 200 comes back with no events
// and its body unread.
func (rig *streamRig) open(t *testing.T, path, token string, header ...string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, rig.url+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	s := &stream{resp: resp, events: make(chan sseEvent, 100)}
	if resp.StatusCode != http.StatusOK {
		// The error body is the caller's to read: a reader here would race
		// it for the bytes (the 429 test once decoded an empty body).
		close(s.events)
		t.Cleanup(func() { resp.Body.Close() })
		return s
	}
	go func() {
		defer close(s.events)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var e sseEvent
		for sc.Scan() {
			line := sc.Text()
			k, v, _ := strings.Cut(line, ": ")
			switch {
			case line == "":
				if e != (sseEvent{}) {
					s.events <- e
				}
				e = sseEvent{}
			case k == "":
				e.Comment = v
			case k == "id":
				e.ID = v
			case k == "event":
				e.Event = v
			case k == "data":
				e.Data = v
			case strings.HasPrefix(line, "retry: "):
				e.Comment = line
			}
		}
	}()
	return s
}

// next returns the next status event, skipping heartbeats; ok is false when
// the stream ended.
func (s *stream) next(t *testing.T) (order.StatusEvent, string, bool) {
	t.Helper()
	deadline := time.After(5 * time.Second) // heartbeats do not count
	for {
		select {
		case e, ok := <-s.events:
			if !ok {
				return order.StatusEvent{}, "", false
			}
			if e.Event != "status" {
				continue
			}
			var se order.StatusEvent
			if err := json.Unmarshal([]byte(e.Data), &se); err != nil {
				t.Fatalf("data %q: %v", e.Data, err)
			}
			return se, e.ID, true
		case <-deadline:
			t.Fatal("no event within 5s")
		}
	}
}

func (s *stream) want(t *testing.T, status order.Status, previous string) string {
	t.Helper()
	e, id, ok := s.next(t)
	if !ok {
		t.Fatalf("stream ended; want %s", status)
	}
	prev := ""
	if e.PreviousStatus != nil {
		prev = string(*e.PreviousStatus)
	}
	if e.Status != status || prev != previous {
		t.Fatalf("event %s: %s after %q, want %s after %q", id, e.Status, prev, status, previous)
	}
	return id
}

func move(t *testing.T, repo *postgres.Repository, id string, to order.Status, reason string) {
	t.Helper()
	if _, err := repo.Transition(context.Background(), nil, id, func(order.Order) (*order.Change, error) {
		return &order.Change{Status: to, Reason: reason}, nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestStatusStreamTransitionsAndReplay(t *testing.T) {
	rig := newStreamRig(t, testkit.PostgresURL(t), order.WatchOptions{})
	user := uuid.NewString()
	o := mustCreate(t, rig.repo, newOrder(user))
	path := "/api/v1/orders/" + o.ID + "/events"

	s := rig.open(t, path, rig.token(t, user, auth.RoleCustomer))
	if s.resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", s.resp.StatusCode)
	}
	for k, v := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"} {
		if got := s.resp.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	if first := <-s.events; first.Comment != "retry: 2000" {
		t.Errorf("first block %+v, want retry: 2000", first)
	}
	placed := s.want(t, order.StatusPending, "")
	move(t, rig.repo, o.ID, order.StatusConfirmed, "payment captured")
	confirmed := s.want(t, order.StatusConfirmed, "pending")
	move(t, rig.repo, o.ID, order.StatusCancelled, "cancelled by the customer")
	e, cancelled, _ := s.next(t)
	if e.Status != order.StatusCancelled || e.Reason == nil || *e.Reason != "cancelled by the customer" || e.OrderID != o.ID {
		t.Fatalf("cancellation event %+v", e)
	}
	// A final state keeps the stream open: heartbeats go on.
	deadline := time.After(2 * time.Second)
	for pinged := false; !pinged; {
		select {
		case ev, ok := <-s.events:
			if !ok {
				t.Fatal("the stream ended after a final state")
			}
			pinged = ev.Comment == "ping"
		case <-deadline:
			t.Fatal("no heartbeat")
		}
	}

	// Reconnecting after the first event replays exactly the two missed
	// rows, by header and by parameter; after the last, nothing.
	for _, r := range []*stream{
		rig.open(t, path, rig.token(t, user, auth.RoleCustomer), "Last-Event-ID", placed),
		rig.open(t, path+"?last_event_id="+placed, rig.token(t, user, auth.RoleCustomer)),
	} {
		if got := r.want(t, order.StatusConfirmed, "pending"); got != confirmed {
			t.Errorf("replayed id %s, want %s", got, confirmed)
		}
		if got := r.want(t, order.StatusCancelled, "confirmed"); got != cancelled {
			t.Errorf("replayed id %s, want %s", got, cancelled)
		}
	}
	r := rig.open(t, path, rig.token(t, user, auth.RoleCustomer), "Last-Event-ID", cancelled)
	select {
	case ev := <-r.events:
		if ev.Comment != "retry: 2000" {
			t.Fatalf("first block %+v", ev)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no retry line")
	}
	for range 2 { // two heartbeats and no event
		if ev := <-r.events; ev.Comment != "ping" {
			t.Fatalf("after the last id: %+v, want only heartbeats", ev)
		}
	}
}

func TestStatusStreamAcrossInstances(t *testing.T) {
	dsn := testkit.PostgresURL(t)
	a := newStreamRig(t, dsn, order.WatchOptions{})
	b := newStreamRig(t, dsn, order.WatchOptions{})
	user := uuid.NewString()
	o := mustCreate(t, a.repo, newOrder(user))
	s := a.open(t, "/api/v1/orders/"+o.ID+"/events", a.token(t, user, auth.RoleCustomer))
	s.want(t, order.StatusPending, "")
	move(t, b.repo, o.ID, order.StatusConfirmed, "payment captured") // committed through the other pool
	s.want(t, order.StatusConfirmed, "pending")
}

func TestStatusStreamAuthorization(t *testing.T) {
	rig := newStreamRig(t, testkit.PostgresURL(t), order.WatchOptions{})
	user := uuid.NewString()
	o := mustCreate(t, rig.repo, newOrder(user))
	path := "/api/v1/orders/" + o.ID + "/events"
	for _, tc := range []struct {
		name, path, token, lastID string
		want                      int
	}{
		{"owner", path, rig.token(t, user, auth.RoleCustomer), "", 200},
		{"admin", path, rig.token(t, uuid.NewString(), auth.RoleAdmin), "", 200},
		{"another user", path, rig.token(t, uuid.NewString(), auth.RoleCustomer), "", 404},
		{"no token", path, "", "", 401},
		{"bad token", path, "nonsense", "", 401},
		{"unknown order", "/api/v1/orders/" + uuid.NewString() + "/events", rig.token(t, user, auth.RoleCustomer), "", 404},
		{"not an id", "/api/v1/orders/nope/events", rig.token(t, user, auth.RoleCustomer), "", 404},
		{"bad Last-Event-ID", path, rig.token(t, user, auth.RoleCustomer), "x1", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := rig.open(t, tc.path, tc.token, "Last-Event-ID", tc.lastID)
			if s.resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", s.resp.StatusCode, tc.want)
			}
			if tc.want == 200 {
				s.want(t, order.StatusPending, "")
			} else if ct := s.resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("error Content-Type %q", ct)
			}
		})
	}
}

func TestStatusStreamLimits(t *testing.T) {
	// The idle timeout is long beside the sleeps below, so a slow
	// notification on a loaded machine cannot end a stream early.
	const idle = 1500 * time.Millisecond
	rig := newStreamRig(t, testkit.PostgresURL(t), order.WatchOptions{MaxPerUser: 2, IdleTimeout: idle})
	user := uuid.NewString()
	o := mustCreate(t, rig.repo, newOrder(user))
	path := "/api/v1/orders/" + o.ID + "/events"
	tok := rig.token(t, user, auth.RoleCustomer)

	first, second := rig.open(t, path, tok), rig.open(t, path, tok)
	first.want(t, order.StatusPending, "")
	second.want(t, order.StatusPending, "")
	third := rig.open(t, path, tok)
	var body struct{ Error struct{ Code string } }
	_ = json.NewDecoder(third.resp.Body).Decode(&body)
	if third.resp.StatusCode != http.StatusTooManyRequests || body.Error.Code != "too_many_streams" || third.resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third stream: %d %q Retry-After %q", third.resp.StatusCode, body.Error.Code, third.resp.Header.Get("Retry-After"))
	}
	if other := rig.open(t, path, rig.token(t, uuid.NewString(), auth.RoleAdmin)); other.resp.StatusCode != 200 {
		t.Fatalf("another user's stream: %d", other.resp.StatusCode)
	}

	// The idle timeout ends both (heartbeats do not count as activity), and
	// frees their places.
	start := time.Now()
	for _, s := range []*stream{first, second} {
		if _, _, ok := s.next(t); ok {
			t.Fatal("an event, want the end of the stream")
		}
	}
	if took := time.Since(start); took > 3*idle {
		t.Errorf("idle streams ended after %s", took)
	}
	time.Sleep(50 * time.Millisecond)
	again := rig.open(t, path, tok)
	again.want(t, order.StatusPending, "")

	// An event restarts the idle clock.
	time.Sleep(idle / 2)
	move(t, rig.repo, o.ID, order.StatusConfirmed, "")
	again.want(t, order.StatusConfirmed, "pending")
	time.Sleep(3 * idle / 4) // past the first idle end, before the restarted one
	for drained := false; !drained; {
		select {
		case _, ok := <-again.events:
			if !ok {
				t.Fatalf("the stream ended though an event came %s ago, less than the idle timeout %s", 3*idle/4, idle)
			}
		default:
			drained = true
		}
	}
}

func TestStatusStreamShutdown(t *testing.T) {
	rig := newStreamRig(t, testkit.PostgresURL(t), order.WatchOptions{})
	user := uuid.NewString()
	o := mustCreate(t, rig.repo, newOrder(user))
	path := "/api/v1/orders/" + o.ID + "/events"
	s := rig.open(t, path, rig.token(t, user, auth.RoleCustomer))
	s.want(t, order.StatusPending, "")
	rig.watcher.Close()
	if _, _, ok := s.next(t); ok {
		t.Fatal("an event after Close, want the end of the stream")
	}
	if after := rig.open(t, path, rig.token(t, user, auth.RoleCustomer)); after.resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a stream opened after Close: %d, want 503", after.resp.StatusCode)
	}
}

// TestListenReturnsOnCancelWhileTheDatabaseIsDown: the status listener
// starts while PostgreSQL cannot be reached (it restarted just after the
// migrations). The instance's shutdown waits for its background loops, so
// Listen must return once its context is done, not once the database is
// back.
func TestListenReturnsOnCancelWhileTheDatabaseIsDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now: every connection is refused
	w := order.NewWatcher(nil, nil, order.WatchOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- postgres.Listen(ctx, "postgres://order@"+addr+"/order?sslmode=disable", w, log.NewNopLogger())
	}()
	time.Sleep(200 * time.Millisecond) // Listen is waiting for its first connection
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Listen returned %v after cancel, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Listen did not return within 5s of its context ending while the database was down")
	}
}

// TestStatusStreamWokenWhenTheListenerConnects: an instance serves streams
// before its listener's first LISTEN is in place (at start-up, or for up to
// the listener's 30 s back-off after PostgreSQL comes back). A row committed
// in that gap notifies nobody here, so the first LISTEN must wake every
// stream, as a reconnection does, or the stream shows the change only at the
// order's next one (or never, after a final state).
func TestStatusStreamWokenWhenTheListenerConnects(t *testing.T) {
	dsn := testkit.PostgresURL(t)
	db := openMigrated(t, dsn)
	repo := postgres.New(db)
	w := order.NewWatcher(repo, nil, order.WatchOptions{})
	user := uuid.NewString()
	o := mustCreate(t, repo, newOrder(user))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })

	events, err := w.Watch(ctx, order.Caller{UserID: user}, o.ID, -1)
	if err != nil {
		t.Fatal(err)
	}
	if e := <-events; e.Status != order.StatusPending {
		t.Fatalf("first event %+v, want the current state, pending", e)
	}
	move(t, repo, o.ID, order.StatusConfirmed, "payment captured") // before any LISTEN: no notification
	go func() { defer close(done); _ = postgres.Listen(ctx, dsn, w, log.NewNopLogger()) }()
	select {
	case e, ok := <-events:
		if !ok || e.Status != order.StatusConfirmed {
			t.Fatalf("event %+v (open %v), want confirmed", e, ok)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream was not woken for the row committed before the listener's first LISTEN")
	}
}

// A stream lasts no longer than the token that opened it: it ends when the
// token expires, and, looked up with each heartbeat, when it is revoked (a
// logout), though the order is still there to watch. Before, a stolen
// token kept a stream open after its owner logged out, for as long as the
// order had news every ten minutes.
func TestStatusStreamEndsWithItsToken(t *testing.T) {
	denylist := auth.NewDenylist(testkit.Redis(t), log.NewNopLogger())
	rig := newStreamRigWith(t, testkit.PostgresURL(t), order.WatchOptions{}, denylist)
	user := uuid.NewString()
	o := mustCreate(t, rig.repo, newOrder(user))
	path := "/api/v1/orders/" + o.ID + "/events"
	ended := func(s *stream, within time.Duration) bool {
		t.Helper()
		for deadline := time.After(within); ; {
			select {
			case e, ok := <-s.events:
				if !ok {
					return true
				}
				if e.Comment != "ping" && e.Comment != "retry: 2000" && e.Event != "status" {
					t.Fatalf("unexpected %+v", e)
				}
			case <-deadline:
				return false
			}
		}
	}

	short, err := auth.NewTokens(streamKey, 1500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := short.Issue(auth.Identity{UserID: user, Email: user + "@example.com", Role: auth.RoleCustomer})
	if err != nil {
		t.Fatal(err)
	}
	expiring := rig.open(t, path, tok)
	if !ended(expiring, 5*time.Second) {
		t.Error("the stream outlived its token by 3.5 s")
	}

	tok = rig.token(t, user, auth.RoleCustomer)
	_, at, err := rig.tokens.Check(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	revoked := rig.open(t, path, tok)
	if ended(revoked, 300*time.Millisecond) {
		t.Fatal("the stream ended before its token was revoked")
	}
	if err := denylist.Revoke(context.Background(), at); err != nil {
		t.Fatal(err)
	}
	if !ended(revoked, 2*time.Second) {
		t.Error("the stream of a revoked token was still open 2 s after the logout")
	}
}
