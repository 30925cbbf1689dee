package app

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// returnsWithin runs f and fails t when it takes longer than limit, waiting
// on for it only after thaw (the server back), so that the test ends
// either way.
func returnsWithin(t *testing.T, what string, limit time.Duration, thaw func(), f func()) {
	t.Helper()
	done := make(chan struct{})
	start := time.Now()
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(limit):
		t.Errorf("%s with PostgreSQL hung: still waiting after %v", what, limit)
		thaw()
		<-done
		t.Logf("%s returned %v after PostgreSQL came back", what, time.Since(start).Round(100*time.Millisecond))
	}
}

// TestStartPostgresHung: a database that takes connections and never
// answers fails the start at its timeout, as one that refuses them does,
// rather than hanging it.
func TestStartPostgresHung(t *testing.T) {
	cfg := testConfig(t, testkit.PostgresURL(t), testkit.RedisAddr(t))
	thaw := testkit.FreezePostgres(t)
	returnsWithin(t, "Start", 5*time.Second, thaw, func() {
		in, err := Start(context.Background(), cfg, &bytes.Buffer{}, Options{Migrate: migrateThings, StartTimeout: time.Second})
		if err == nil {
			in.Close()
			t.Error("Start succeeded on a hung database")
		}
	})
}

// TestReadyPostgresHung: with the database hung, /ready answers 503 within
// its 2 s, so that whatever probes it takes the instance out, and 200 once
// the database is back, with no restart.
func TestReadyPostgresHung(t *testing.T) {
	in, err := Start(context.Background(), testConfig(t, testkit.PostgresURL(t), testkit.RedisAddr(t)), &bytes.Buffer{}, Options{Migrate: migrateThings})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	router := in.Router()
	ready := func() int {
		rec := httptest.NewRecorder()
		router.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ready", nil))
		return rec.Code
	}
	if code := ready(); code != http.StatusOK {
		t.Fatalf("/ready = %d before the freeze", code)
	}
	thaw := testkit.FreezePostgres(t)
	returnsWithin(t, "/ready", 4*time.Second, thaw, func() {
		if code := ready(); code != http.StatusServiceUnavailable {
			t.Errorf("/ready = %d with the database hung, want 503", code)
		}
	})
	thaw()
	deadline := time.Now().Add(10 * time.Second)
	for ready() != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("/ready is not 200 again 10s after the database came back")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestClosePostgresHung: the shutdown of an instance whose outbox relay is
// mid-batch on a hung database ends within the relay's bound on a batch
// (events.Relay.PublishTimeout, 10 s), instead of waiting for the database.
func TestClosePostgresHung(t *testing.T) {
	in, err := Start(context.Background(), testConfig(t, testkit.PostgresURL(t), testkit.RedisAddr(t)), &bytes.Buffer{},
		Options{Migrate: func(ctx context.Context, db *sqlx.DB) error { return events.Migrate(ctx, db) }})
	if err != nil {
		t.Fatal(err)
	}
	in.RelayOutbox()
	time.Sleep(300 * time.Millisecond) // the relay is polling
	thaw := testkit.FreezePostgres(t)
	time.Sleep(1500 * time.Millisecond) // and now waits on the database
	returnsWithin(t, "Close", 13*time.Second, thaw, func() { in.Close() })
}
