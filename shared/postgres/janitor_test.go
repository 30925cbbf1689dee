package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/mercato-dev/mercato/shared/postgres"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// TestJanitorDeletesOnlyOldRows: the rows past retention go, in as many
// batches as it takes, and the others stay.
func TestJanitorDeletesOnlyOldRows(t *testing.T) {
	ctx := context.Background()
	db := testkit.Postgres(t)
	db.MustExec(`CREATE TABLE kept_things (a INT, b INT, at TIMESTAMPTZ NOT NULL, PRIMARY KEY (a, b))`)
	// More old rows than one DELETE takes, and a few recent ones.
	db.MustExec(`INSERT INTO kept_things SELECT i, 0, now() - interval '2 hours' FROM generate_series(1, 12001) i`)
	db.MustExec(`INSERT INTO kept_things SELECT i, 1, now() - interval '50 minutes' FROM generate_series(1, 7) i`)

	j := &postgres.Janitor{DB: db, Table: "kept_things", Key: "a, b", Column: "at", Retention: time.Hour, Interval: time.Hour}
	n, err := j.Clean(ctx)
	if err != nil || n != 12001 {
		t.Fatalf("Clean = %d, %v; want the 12001 rows older than an hour", n, err)
	}
	var left int
	if err := db.Get(&left, `SELECT count(*) FROM kept_things WHERE b = 1`); err != nil || left != 7 {
		t.Errorf("%d recent rows left (%v), want all 7", left, err)
	}
	if n, err := j.Clean(ctx); err != nil || n != 0 {
		t.Errorf("a second Clean = %d, %v; want 0", n, err)
	}
}

// TestJanitorRun: Run cleans at once, stops with its context, and refuses to
// run without what it needs.
func TestJanitorRun(t *testing.T) {
	db := testkit.Postgres(t)
	db.MustExec(`CREATE TABLE kept_things (id INT PRIMARY KEY, at TIMESTAMPTZ NOT NULL)`)
	db.MustExec(`INSERT INTO kept_things VALUES (1, now() - interval '2 days')`)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- (&postgres.Janitor{DB: db, Table: "kept_things", Key: "id", Column: "at", Retention: 24 * time.Hour, Interval: time.Hour}).Run(ctx)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for left := 1; left > 0; {
		if err := db.Get(&left, `SELECT count(*) FROM kept_things`); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not delete the old row within 10 s; it should at once")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel = %v, want nil", err)
	}
	if err := (&postgres.Janitor{DB: db, Table: "kept_things", Key: "id", Column: "at", Interval: time.Hour}).Run(ctx); err == nil {
		t.Error("Run without a Retention = nil, want a configuration error")
	}
}
