package events

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/mercato-dev/mercato/shared/defaults"
	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
	"github.com/mercato-dev/mercato/shared/tracing"
	"github.com/mercato-dev/mercato/shared/wait"
)

// Stream entry fields. The type is duplicated outside the envelope so a
// consumer can filter without decoding, and the id so the stream can be
// inspected (XRANGE) by event id.
const (
	fieldID       = "id"
	fieldType     = "type"
	fieldEnvelope = "envelope"
)

// Default stream names.
const (
	DefaultStream           = "events"
	DefaultDeadLetterStream = "events.dead"
)

// Relay publishes outbox rows to the stream and marks them published. Run
// one in every service instance that enqueues events: instances share the
// work, because each batch is claimed with FOR UPDATE SKIP LOCKED.
//
// Delivery is at least once: if the process dies or the database fails
// between XADD and commit, the rows are published again later. Consumers
// deduplicate by event id. Events from concurrent relays may interleave, so
// consumers must not rely on stream order across aggregates.
type Relay struct {
	DB    *sqlx.DB      // required: the service's database, holding the outbox
	Redis redis.Cmdable // required

	Stream    string // default DefaultStream
	BatchSize int    // rows per transaction; default 100
	// PollInterval is the wait when the outbox is drained: default 100ms,
	// or 1s with ListenURL, where it is only a fallback.
	PollInterval time.Duration
	// ListenURL, the database's URL, makes the relay LISTEN on the channel
	// the outbox's insert trigger notifies when a transaction adding events
	// commits, and publish them at once; a reconnect wakes it too, since
	// notifications may have been missed meanwhile, so PollInterval is only
	// the fallback for a connection that died unseen. Empty: the relay
	// polls.
	ListenURL string
	// ApplicationName is the application_name of DB's connections, unique
	// to the instance (postgres.PoolOptions.ApplicationName). With it the
	// relay wakes only for notifications that name this instance or none:
	// one commit wakes one relay, not every instance's. Rows an instance
	// left when it died are found by the other instances' fallback poll.
	// Empty: every notification wakes the relay.
	ApplicationName string
	MaxBackoff      time.Duration // longest wait between retries while Redis or Postgres is down; default 5s
	PublishTimeout  time.Duration // bound on one batch (select, XADDs, commit); default 10s
	BacklogInterval time.Duration // how often the backlog gauges are refreshed, the stream trimmed and old rows deleted; default 10s
	Retention       time.Duration // published rows older than this are deleted; default 72h, negative keeps them
	// InboxRetention is how long the inbox remembers a handled event, to
	// turn its redelivery into a no-op; default 30 days, negative keeps
	// them. It must outlast every redelivery: a reclaimed entry comes within
	// minutes, a row the relay published but could not mark comes again
	// when the relay next runs (after the service's outage, however long),
	// and a dead letter comes when an operator replays it.
	InboxRetention time.Duration

	Logger  log.Logger // default log.NewNopLogger()
	Metrics *Metrics   // nil records nothing
	// Tracer makes the span that publishes an event enqueued inside a
	// trace, continuing it; nil makes none, but the trace context still
	// reaches the envelope.
	Tracer trace.TracerProvider
}

// Run publishes until ctx is done, then returns nil. Failures (Redis or
// Postgres down) are logged once per streak and retried with backoff; nothing
// is marked published unless XADD succeeded.
func (r *Relay) Run(ctx context.Context) error {
	if r.DB == nil || r.Redis == nil {
		return errors.New("events: relay needs DB and Redis")
	}
	c := r.withDefaults()
	bo := backoff{min: min(c.PollInterval, wait.Poll), max: c.MaxBackoff}
	publishFailures := failureStreak{logger: c.Logger}
	wake := c.listen(ctx)

	// Housekeeping beside the publishing, not between its batches: deleting
	// a backlog of old rows takes up to PublishTimeout a round, and events
	// committed meanwhile waited for it.
	var housekeeping sync.WaitGroup
	defer housekeeping.Wait()
	housekeeping.Go(func() {
		failures := failureStreak{logger: c.Logger}
		round := func() {
			switch err := c.housekeep(ctx); {
			case err == nil:
				failures.ok("outbox relay: backlog count, stream trimming and clean-up work again")
			case ctx.Err() == nil:
				failures.fail("outbox relay: backlog count, stream trimming or clean-up failed", err)
			}
		}
		round()
		wait.Every(ctx, c.BacklogInterval, round)
	})

	for ctx.Err() == nil {
		n, err := c.publishBatch(ctx)
		if err != nil {
			publishFailures.fail("outbox relay: publish failed", err)
			wait.For(ctx, bo.next())
			continue
		}
		bo.reset()
		publishFailures.ok("outbox relay: publishing again")
		if n < c.BatchSize { // drained: wait for new rows; a full batch loops at once
			wait.ForOr(ctx, c.PollInterval, wake)
		}
	}
	return nil
}

// notifyChannel is the channel the trigger of migrations 00003 and 00004 notifies.
const notifyChannel = "outbox_insert"

// listen returns a channel that receives a value when the outbox may hold
// new rows: a commit notification arrived, or the listener (re)connected and
// may have missed some. Signals coalesce (one pending at most), so the
// listener is never held up. Without ListenURL it is nil: the relay polls.
// The listener closes when ctx is done.
func (r *Relay) listen(ctx context.Context) <-chan struct{} {
	if r.ListenURL == "" {
		return nil
	}
	wake := wait.NewSignal()
	l := pq.NewListener(r.ListenURL, r.PollInterval, r.MaxBackoff, func(ev pq.ListenerEventType, err error) {
		switch ev {
		case pq.ListenerEventConnected, pq.ListenerEventReconnected:
			wake.Notify()
		case pq.ListenerEventConnectionAttemptFailed, pq.ListenerEventDisconnected:
			r.Logger.Log("msg", "outbox relay: commit notifications lost, polling meanwhile", "err", err) //nolint:errcheck
		}
	})
	go func() {
		<-ctx.Done()
		l.Close() //nolint:errcheck // shutting down
	}()
	go func() {
		// Listen returns once connected; until then the relay polls.
		if err := l.Listen(notifyChannel); err != nil && ctx.Err() == nil {
			r.Logger.Log("msg", "outbox relay: LISTEN failed, polling only", "err", err) //nolint:errcheck
		}
	}()
	go func() {
		for n := range l.NotificationChannel() { // closed by Close
			// nil follows a reconnect, and notifications may have been missed.
			if n == nil || n.Extra == "" || r.ApplicationName == "" || n.Extra == r.ApplicationName {
				wake.Notify()
			}
		}
	}()
	return wake
}

func (r *Relay) withDefaults() Relay {
	c := *r
	c.Stream = cmp.Or(c.Stream, DefaultStream)
	c.BatchSize = cmp.Or(c.BatchSize, 100)
	c.PollInterval = cmp.Or(c.PollInterval, wait.PollEvery(c.ListenURL != ""))
	c.MaxBackoff = cmp.Or(c.MaxBackoff, 5*time.Second)
	c.PublishTimeout = cmp.Or(c.PublishTimeout, 10*time.Second)
	c.BacklogInterval = cmp.Or(c.BacklogInterval, 10*time.Second)
	c.Retention = cmp.Or(c.Retention, 72*time.Hour)
	c.InboxRetention = cmp.Or(c.InboxRetention, DefaultInboxRetention)
	c.Logger = defaults.Logger(c.Logger)
	if c.Tracer == nil {
		c.Tracer = noop.NewTracerProvider()
	}
	return c
}

type outboxRow struct {
	ID           string         `db:"id"`
	Type         string         `db:"type"`
	Payload      string         `db:"payload"`
	TraceContext sql.NullString `db:"trace_context"`
}

// publishBatch publishes up to BatchSize of the oldest unpublished rows that
// no other relay holds, reporting how many it published.
func (r *Relay) publishBatch(ctx context.Context) (int, error) {
	// A batch that has started is finished even if ctx is cancelled, so a
	// shutdown does not leave published-but-unmarked rows to be sent twice.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.PublishTimeout)
	defer cancel()

	tx, err := r.DB.BeginTxx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit

	var rows []outboxRow
	err = tx.SelectContext(ctx, &rows, `
		SELECT id, type, payload, trace_context FROM outbox
		WHERE published_at IS NULL
		ORDER BY created_at
		LIMIT $1
		FOR UPDATE SKIP LOCKED`, r.BatchSize)
	if err != nil {
		return 0, fmt.Errorf("select outbox: %w", err)
	}
	if len(rows) == 0 {
		return 0, nil
	}

	spans := make([]trace.Span, 0, len(rows))
	var failed error // ends the spans as failed when the batch fails
	defer func() {
		for _, span := range spans {
			tracing.End(span, failed)
		}
	}()
	pipe := r.Redis.Pipeline()
	for _, row := range rows {
		payload, span := r.traced(row)
		if span != nil {
			spans = append(spans, span)
		}
		// No MAXLEN: a cap would drop entries a lagging group has not
		// handled; housekeeping trims what every group is done with.
		pipe.XAdd(ctx, &redis.XAddArgs{
			Stream: r.Stream,
			Values: []any{fieldID, row.ID, fieldType, row.Type, fieldEnvelope, payload},
		})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		failed = fmt.Errorf("xadd to %s: %w", r.Stream, err)
		return 0, failed
	}

	ids := make([]string, len(rows))
	for i, row := range rows {
		ids[i] = row.ID
	}
	if _, err := tx.ExecContext(ctx,
		`UPDATE outbox SET published_at = now() WHERE id = ANY($1)`, pq.Array(ids)); err != nil {
		failed = fmt.Errorf("mark published: %w", err)
		return 0, failed
	}
	if err := tx.Commit(); err != nil {
		failed = fmt.Errorf("commit: %w", err)
		return 0, failed
	}
	for _, row := range rows {
		r.Metrics.published(row.Type)
	}
	return len(rows), nil
}

// traced returns the envelope to publish for row: for an event enqueued
// inside a trace, the stored one with the trace context of a "publish"
// span continuing the producer's trace, and that span, which the caller
// ends; otherwise the stored envelope as it is, and no span.
func (r *Relay) traced(row outboxRow) (string, trace.Span) {
	producer := tracing.FromJSON(context.Background(), row.TraceContext.String)
	if !trace.SpanContextFromContext(producer).IsValid() {
		return row.Payload, nil
	}
	var env Envelope
	if err := json.Unmarshal([]byte(row.Payload), &env); err != nil {
		return row.Payload, nil // the consumers dead-letter it; nothing to trace
	}
	ctx, span := r.Tracer.Tracer(tracing.Scope).Start(producer, "publish "+row.Type,
		trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(messagingAttributes(r.Stream, env)...))
	env.TraceContext = tracing.ToMap(ctx)
	payload, err := json.Marshal(env)
	if err != nil {
		return row.Payload, span
	}
	return string(payload), span
}

// messagingAttributes describe the event env on stream, for the spans that
// publish and consume it.
func messagingAttributes(stream string, env Envelope) []attribute.KeyValue {
	return []attribute.KeyValue{
		semconv.MessagingSystemKey.String("redis"),
		semconv.MessagingDestinationName(stream),
		semconv.MessagingMessageID(env.ID),
		attribute.String("mercato.event_type", env.Type),
		tracing.RequestIDKey.String(env.RequestID),
	}
}

// housekeep keeps the outbox, the inbox and the stream from growing without
// bound: it trims the stream entries every consumer group is done with,
// refreshes the backlog gauges and deletes published rows and handled
// events past their retention. Redis and PostgreSQL apart, so that one
// being down does not stop the other's.
func (r *Relay) housekeep(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.PublishTimeout)
	defer cancel()
	return errors.Join(r.trimStream(ctx), r.cleanDatabase(ctx))
}

// cleanDatabase refreshes the backlog gauges and deletes published rows and
// inbox rows past their retention.
func (r *Relay) cleanDatabase(ctx context.Context) error {
	// Both from the partial index on unpublished rows. created_at is
	// clock_timestamp() at insert, so it is compared with the clock too.
	var backlog struct {
		Rows      int     `db:"rows"`
		OldestAge float64 `db:"oldest_age"`
	}
	if err := r.DB.GetContext(ctx, &backlog, `
		SELECT count(*) AS rows,
		       COALESCE(GREATEST(EXTRACT(EPOCH FROM clock_timestamp() - min(created_at)), 0), 0)::float8 AS oldest_age
		FROM outbox WHERE published_at IS NULL`); err != nil {
		return fmt.Errorf("count backlog: %w", err)
	}
	r.Metrics.backlog(backlog.Rows, backlog.OldestAge)

	return errors.Join(
		r.deleteOlder(ctx, "outbox", "id", "published_at", r.Retention),
		r.deleteOlder(ctx, "inbox", "consumer, event_id", "processed_at", r.InboxRetention))
}

// DefaultInboxRetention is how long the inbox remembers a handled event
// unless told otherwise (Relay.InboxRetention, InboxJanitor).
const DefaultInboxRetention = 30 * 24 * time.Hour

// InboxJanitor deletes the inbox rows of events handled more than
// DefaultInboxRetention ago, every hour: the clean-up of a service that
// consumes events but runs no relay, whose housekeeping does it otherwise.
func InboxJanitor(db *sqlx.DB, logger log.Logger) *sharedpg.Janitor {
	return &sharedpg.Janitor{DB: db, Table: "inbox", Key: "consumer, event_id", Column: "processed_at",
		Retention: DefaultInboxRetention, Interval: time.Hour, Logger: logger}
}

// deleteOlder deletes the rows of table (its key, its time column) older
// than retention; a negative retention keeps them all.
func (r *Relay) deleteOlder(ctx context.Context, table, key, column string, retention time.Duration) error {
	if retention < 0 {
		return nil
	}
	_, err := sharedpg.DeleteOlder(ctx, r.DB, table, key, column, retention)
	return err
}
