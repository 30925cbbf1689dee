package events_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// replayDeadLetter is the script docs/monitoring.md (EventsDeadLettered)
// gives for replaying a dead letter: its event, as the relay published it,
// goes back on the stream as a new entry. It is read from the page, so the
// test proves what an operator is told to run.
func replayDeadLetter(t *testing.T) string {
	t.Helper()
	return testkit.FromDocs(t, "docs/monitoring.md",
		`(?m)^redis-cli .* EVAL "(.+)" 2 events\.dead events <dead-letter id>$`, "EVAL replaying a dead letter")
}

// TestReplayedDeadLetterIsAppliedOnce: the runbook's replay of a dead
// letter is handled by the group that gave up on it, once its cause is
// fixed, and skipped by a group that had applied it (its inbox).
func TestReplayedDeadLetterIsAppliedOnce(t *testing.T) {
	rdb := testkit.Redis(t)
	stream, dead := names()
	db := newDB(t)
	var fixed atomic.Bool
	var applied, other atomic.Int32
	failing := &events.Consumer{DB: db, Redis: rdb, Group: "failing", Name: "a", Stream: stream, DeadLetterStream: dead,
		Block: 50 * time.Millisecond, Handler: func(context.Context, events.Tx, events.Envelope) error {
			if !fixed.Load() {
				return events.Permanent(errors.New("a bug"))
			}
			applied.Add(1)
			return nil
		}}
	healthy := &events.Consumer{DB: db, Redis: rdb, Group: "healthy", Name: "b", Stream: stream, DeadLetterStream: dead,
		Block: 50 * time.Millisecond, Handler: func(context.Context, events.Tx, events.Envelope) error {
			other.Add(1)
			return nil
		}}
	start(t, failing.Run)
	start(t, healthy.Run)
	e := newEvent(t, "thing.happened", 1)
	publish(t, rdb, stream, e)
	eventually(t, "the dead letter", func() bool { return len(entries(t, rdb, dead)) == 1 && other.Load() == 1 })

	fixed.Store(true)
	letter := entries(t, rdb, dead)[0]
	if err := rdb.Eval(testCtx(t), replayDeadLetter(t), []string{dead, stream}, letter.ID).Err(); err != nil {
		t.Fatalf("the runbook's replay: %v", err)
	}
	eventually(t, "the replay applied", func() bool { return applied.Load() == 1 })
	eventually(t, "both groups done", func() bool {
		return pending(t, rdb, stream, "failing") == 0 && pending(t, rdb, stream, "healthy") == 0 &&
			entriesRead(t, rdb, stream, "healthy") == 2
	})
	time.Sleep(200 * time.Millisecond)
	if a, o := applied.Load(), other.Load(); a != 1 || o != 1 {
		t.Errorf("applied %d times by the failing group, %d by the healthy one; want 1 and 1", a, o)
	}
	if n := inbox(t, db, e.ID); n != 2 {
		t.Errorf("%d inbox rows for the event, want 2", n)
	}
	if n := len(entries(t, rdb, dead)); n != 1 {
		t.Errorf("%d dead letters, want the 1 replayed", n)
	}
}

func inbox(t *testing.T, db *sqlx.DB, id string) int {
	return count(t, db, `SELECT count(*) FROM inbox WHERE event_id = $1`, id)
}

// TestRepublishedOutboxRowsAreSkippedByTheInbox: after a Redis host crash,
// architecture.md has the operator mark the outbox rows of the minute
// before it unpublished; the relay publishes them again and a consumer that
// had applied them skips them.
func TestRepublishedOutboxRowsAreSkippedByTheInbox(t *testing.T) {
	rdb := testkit.Redis(t)
	stream, dead := names()
	db := newDB(t)
	var applied atomic.Int32
	start(t, (&events.Relay{DB: db, Redis: rdb, Stream: stream, PollInterval: 20 * time.Millisecond}).Run)
	start(t, (&events.Consumer{DB: db, Redis: rdb, Group: "g", Name: "a", Stream: stream, DeadLetterStream: dead,
		Block: 50 * time.Millisecond, Handler: func(context.Context, events.Tx, events.Envelope) error {
			applied.Add(1)
			return nil
		}}).Run)
	crash := time.Now()
	enqueue(t, db, newEvent(t, "thing.happened", 1), newEvent(t, "thing.happened", 2))
	eventually(t, "applied", func() bool { return applied.Load() == 2 && unpublished(t, db) == 0 })

	if _, err := db.ExecContext(testCtx(t), `UPDATE outbox SET published_at = NULL WHERE published_at > $1::timestamptz - interval '1 minute'`, crash); err != nil {
		t.Fatalf("the runbook's statement: %v", err)
	}
	eventually(t, "republished", func() bool { return len(entries(t, rdb, stream)) == 4 && unpublished(t, db) == 0 })
	eventually(t, "handled", func() bool { return entriesRead(t, rdb, stream, "g") == 4 && pending(t, rdb, stream, "g") == 0 })
	if n := applied.Load(); n != 2 {
		t.Errorf("applied %d times, want 2", n)
	}
}
