package postgres_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	neturl "net/url"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jmoiron/sqlx"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/mercato-dev/mercato/shared/postgres"
	"github.com/mercato-dev/mercato/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

var migrations = fstest.MapFS{
	"00001_things.sql": {Data: []byte(`-- +goose Up
CREATE TABLE things (
    id    INT PRIMARY KEY,
    name  TEXT NOT NULL UNIQUE CONSTRAINT things_name_short CHECK (length(name) < 10),
    owner INT REFERENCES things(id)
);
-- +goose Down
DROP TABLE things;
`)},
}

func TestOpenAndMigrateConcurrently(t *testing.T) {
	ctx := context.Background()
	url := testkit.PostgresURL(t)
	// Instances starting together: the advisory lock serialises them and
	// each ends with the schema in place.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := postgres.Open(ctx, url, postgres.PoolOptions{MaxOpen: 2})
			if err != nil {
				errs <- err
				return
			}
			defer db.Close()
			errs <- postgres.Migrate(ctx, db, migrations, "things_schema_version")
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	db, err := postgres.Open(ctx, url, postgres.PoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var applied int
	if err := db.Get(&applied, `SELECT count(*) FROM things_schema_version WHERE version_id = 1`); err != nil || applied != 1 {
		t.Fatalf("migration 1 applied %d times (%v), want once", applied, err)
	}
}

func TestOpenFailsClearly(t *testing.T) {
	_, err := postgres.Open(context.Background(), "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=1", postgres.PoolOptions{})
	if err == nil {
		t.Fatal("Open of an unreachable server succeeded")
	}
}

func TestErrorClassificationAndInTx(t *testing.T) {
	ctx := context.Background()
	db := testkit.Postgres(t)
	if err := postgres.Migrate(ctx, db, migrations, "things_schema_version"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO things (id, name) VALUES (1, 'a')`); err != nil {
		t.Fatal(err)
	}

	_, err := db.Exec(`INSERT INTO things (id, name) VALUES (2, 'a')`)
	if !postgres.IsUniqueViolation(err) || !postgres.IsUniqueViolation(err, "things_name_key") || postgres.IsUniqueViolation(err, "other") {
		t.Errorf("unique violation not classified: %v", err)
	}
	_, err = db.Exec(`INSERT INTO things (id, name, owner) VALUES (3, 'b', 99)`)
	if !postgres.IsForeignKeyViolation(err) || postgres.IsUniqueViolation(err) {
		t.Errorf("foreign key violation not classified: %v", err)
	}
	_, err = db.Exec(`INSERT INTO things (id, name) VALUES (4, 'far too long a name')`)
	if !postgres.IsCheckViolation(err, "things_name_short") {
		t.Errorf("check violation not classified: %v", err)
	}
	if postgres.IsUniqueViolation(errors.New("unique")) {
		t.Error("a plain error classified as a violation")
	}

	// InTx rolls back on error and commits on success.
	boom := errors.New("boom")
	err = postgres.InTx(ctx, db, func(tx *sqlx.Tx) error {
		if _, err := tx.Exec(`INSERT INTO things (id, name) VALUES (5, 'rolled')`); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx returned %v", err)
	}
	if err := postgres.InTx(ctx, db, func(tx *sqlx.Tx) error {
		_, err := tx.Exec(`INSERT INTO things (id, name) VALUES (6, 'kept')`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var names []string
	if err := db.Select(&names, `SELECT name FROM things ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	if len(names) != 2 || names[0] != "a" || names[1] != "kept" {
		t.Fatalf("rows after InTx: %v", names)
	}

	// A context that ends after fn, before the commit: database/sql rolls
	// the transaction back, and InTx says so (it once reported success).
	cctx, cancel := context.WithCancel(ctx)
	err = postgres.InTx(cctx, db, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(cctx, `INSERT INTO things (id, name) VALUES (7, 'gone')`); err != nil {
			return err
		}
		cancel() // the client went away
		for tx.QueryRowContext(context.Background(), `SELECT 1`).Err() == nil {
			time.Sleep(time.Millisecond) // until database/sql has rolled it back
		}
		return nil
	})
	var n int
	if qerr := db.Get(&n, `SELECT count(*) FROM things WHERE id = 7`); qerr != nil {
		t.Fatal(qerr)
	}
	if err == nil || n != 0 {
		t.Fatalf("InTx of a transaction rolled back at its commit: %v, %d rows stored", err, n)
	}
}

// thingStore stands for a repository: InTx names its span after the method
// that called it.
type thingStore struct{ db *sqlx.DB }

func (s *thingStore) Touch(ctx context.Context, fail error) error {
	return postgres.InTx(ctx, s.db, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, `SELECT 1`); err != nil {
			return err
		}
		return fail
	})
}

func TestInTxSpan(t *testing.T) {
	store := &thingStore{db: testkit.Postgres(t)}
	recorder := tracetest.NewSpanRecorder()
	ctx, parent := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder)).Tracer("test").Start(context.Background(), "request")
	if err := store.Touch(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := store.Touch(ctx, errors.New("boom")); err == nil {
		t.Fatal("the failing transaction succeeded")
	}
	if err := store.Touch(context.Background(), nil); err != nil { // outside any trace: no span
		t.Fatal(err)
	}
	parent.End()
	var txs []sdktrace.ReadOnlySpan
	for _, s := range recorder.Ended() {
		if s.Name() != "request" {
			txs = append(txs, s)
		}
	}
	if len(txs) != 2 {
		t.Fatalf("%d transaction spans, want 2", len(txs))
	}
	for i, s := range txs {
		if s.Name() != "tx thingStore.Touch" || s.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("span %q under %v, want \"tx thingStore.Touch\" under the request", s.Name(), s.Parent())
		}
		if failed := s.Status().Code.String() == "Error"; failed != (i == 1) {
			t.Errorf("transaction %d: status %v", i, s.Status())
		}
	}
}

// PoolOptions.ApplicationName names every connection of the pool, whether
// the URL is a postgres:// URL or key=value pairs, and whatever the URL said.
func TestOpenSetsApplicationName(t *testing.T) {
	ctx := context.Background()
	url := testkit.PostgresURL(t)
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	password, _ := u.User.Password()
	dsn := fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=%s", u.Hostname(), u.Port(),
		u.User.Username(), password, strings.TrimPrefix(u.Path, "/"), cmp.Or(u.Query().Get("sslmode"), "prefer"))
	q := u.Query()
	q.Set("application_name", "psql")
	u.RawQuery = q.Encode()
	for _, c := range []struct{ what, url, name string }{
		{"a URL", url, "order-1a2b3c4d"},
		{"a URL naming another", u.String(), "order-5e6f7a8b"},
		{"key=value pairs", dsn, `it's a \ name`},
	} {
		db, err := postgres.Open(ctx, c.url, postgres.PoolOptions{ApplicationName: c.name})
		if err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		var got string
		err = db.GetContext(ctx, &got, "SHOW application_name")
		db.Close()
		if err != nil || got != c.name {
			t.Errorf("%s: application_name %q (%v), want %q", c.what, got, err, c.name)
		}
	}
}

// TestCallEndsWithContext: a call whose context ends returns by then,
// plus a moment for the server's answer: with PostgreSQL's own error
// (57014, query_canceled, by which a client that left is told from a
// failure) from a server that answers, and at all from one that hangs,
// which lib/pq alone waited on for as long as it hung. The pool works on
// once the server is back.
func TestCallEndsWithContext(t *testing.T) {
	db, err := postgres.Open(context.Background(), testkit.PostgresURL(t), postgres.PoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := postgres.Migrate(context.Background(), db, migrations, "things_schema_version"); err != nil {
		t.Fatal(err)
	}
	call := func(timeout time.Duration) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		start := time.Now()
		_, err := db.ExecContext(ctx, `SELECT pg_sleep(5)`)
		return time.Since(start), err
	}

	var state interface{ SQLState() string }
	if took, err := call(200 * time.Millisecond); !errors.As(err, &state) || state.SQLState() != "57014" || took > time.Second {
		t.Errorf("a statement past its context's end: %v after %v, want 57014 within 1s", err, took)
	}

	if err := db.Ping(); err != nil { // an open connection in the pool
		t.Fatal(err)
	}
	thaw := testkit.FreezePostgres(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// BEGIN on the open connection first: lib/pq leaves it unwatched.
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		if tx, err := db.BeginTx(ctx, nil); err == nil || time.Since(start) > 2*time.Second {
			t.Errorf("BEGIN on a hung server: %v after %v, want an error within 2s", err, time.Since(start))
			if tx != nil {
				_ = tx.Rollback()
			}
		}
		if took, err := call(200 * time.Millisecond); err == nil || took > 2*time.Second {
			t.Errorf("a statement on a hung server: %v after %v, want an error within 2s", err, took)
		}
	}()
	select {
	case <-done:
	case <-time.After(6 * time.Second):
		t.Error("calls on a hung server: still waiting after 6s")
		thaw()
		<-done
	}
	thaw()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, `INSERT INTO things (id, name) VALUES (1, 'back')`); err != nil {
		t.Errorf("the pool once the server is back: %v", err)
	}
}
