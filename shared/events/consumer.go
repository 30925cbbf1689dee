package events

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/go-kit/log"
	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/mercato-dev/mercato/shared/defaults"
	"github.com/mercato-dev/mercato/shared/logging"
	"github.com/mercato-dev/mercato/shared/requestid"
	"github.com/mercato-dev/mercato/shared/tracing"
	"github.com/mercato-dev/mercato/shared/wait"
)

// Tx is the database transaction an event handler works in: the consumer's,
// which also holds the inbox row. Service code passes it through to its
// repository without looking inside, so naming it needs no SQL package;
// repositories run their statements on it (sqlx.GetContext and friends take
// it as it is) and hand it to Enqueue for the events the change reports.
type Tx interface {
	sqlx.ExtContext
}

// HandlerFunc applies one event. It must make its changes through tx: they
// commit together with the inbox row that marks the event as handled, which
// is what makes redelivery harmless. A returned error rolls everything back
// and leaves the event pending for another attempt.
type HandlerFunc func(ctx context.Context, tx Tx, e Envelope) error

// Consumer reads the stream as one member of a consumer group. Run one per
// service instance, all with the same Group (the consuming service) and each
// with its own Name; Redis spreads entries over the members.
//
// An entry whose handler fails stays pending and is retried when a member
// reclaims it (XAUTOCLAIM) after MinIdle; once it has been delivered
// MaxAttempts times it goes to the dead-letter stream with the error. A
// handler error marked Permanent dead-letters the entry at once, one marked
// Transient never does (errors.go). A database outage spends none of
// those deliveries but the one that found it: nothing is reclaimed while the
// database does not answer a ping, and a handler failure while it is down
// never dead-letters the entry.
// Entries held by a member that died are reclaimed the same way.
type Consumer struct {
	DB      *sqlx.DB      // required: the consuming service's database, holding the inbox
	Redis   redis.Cmdable // required
	Group   string        // required: the consuming service, e.g. "notification"
	Handler HandlerFunc   // required

	Name  string   // this instance's member name; default "<hostname>-<pid>"
	Types []string // handle only these types, acknowledging others untouched; empty handles all

	Stream           string        // default DefaultStream
	DeadLetterStream string        // default DefaultDeadLetterStream
	DeadLetterMaxLen int64         // approximate cap of the dead-letter stream; default 100,000
	Block            time.Duration // longest wait in XREADGROUP; default 2s
	Count            int64         // entries per read or claim; default 10
	MinIdle          time.Duration // pending this long, an entry is reclaimed; default 30s
	ClaimInterval    time.Duration // how often pending entries are reclaimed; default MinIdle/2
	MaxAttempts      int64         // deliveries before dead-lettering; default 5
	HandlerTimeout   time.Duration // bound on one handler call and its transaction; default 30s
	MaxBackoff       time.Duration // longest wait between retries while Redis or Postgres is down; default 5s
	BacklogInterval  time.Duration // how often the group's pending and lag gauges are refreshed (XINFO GROUPS); default 5s

	Logger  log.Logger // default log.NewNopLogger()
	Metrics *Metrics   // nil records nothing
	// Tracer makes the span each event is handled in, a child of the span
	// that published it (Envelope.TraceContext) or else a trace of its
	// own; nil makes none.
	Tracer trace.TracerProvider
}

// consumerRun is one Run's configuration (defaults applied) and state, kept
// apart from the caller's Consumer so Run never writes to it.
type consumerRun struct {
	Consumer
	wanted    map[string]bool
	groupOK   bool
	lastClaim time.Time
	bo        backoff
	failures  failureStreak
}

// Run consumes until ctx is done, then returns nil. It returns an error only
// for an invalid configuration; Redis and Postgres outages are logged once
// per streak and retried with backoff.
func (c *Consumer) Run(ctx context.Context) error {
	if c.DB == nil || c.Redis == nil || c.Group == "" || c.Handler == nil {
		return errors.New("events: consumer needs DB, Redis, Group and Handler")
	}
	r := c.newRun()
	stopWatch := r.watchBacklog(ctx)
	defer stopWatch()
	for ctx.Err() == nil {
		if err := r.step(ctx); err != nil {
			if ctx.Err() != nil {
				break
			}
			if redis.HasErrorPrefix(err, "NOGROUP") {
				// The stream or group vanished (Redis restarted without
				// persistence, or someone deleted it): create it again.
				r.groupOK = false
			}
			r.failures.fail("event consumer: "+r.Group+"/"+r.Name, err)
			wait.For(ctx, r.bo.next())
			continue
		}
		r.bo.reset()
		r.failures.ok("event consumer: " + r.Group + "/" + r.Name + " consuming again")
	}
	return nil
}

func (c *Consumer) newRun() *consumerRun {
	r := &consumerRun{Consumer: *c}
	r.Name = cmp.Or(r.Name, defaultName())
	r.Stream = cmp.Or(r.Stream, DefaultStream)
	r.DeadLetterStream = cmp.Or(r.DeadLetterStream, DefaultDeadLetterStream)
	r.DeadLetterMaxLen = cmp.Or(r.DeadLetterMaxLen, 100_000)
	r.Block = cmp.Or(r.Block, 2*time.Second)
	r.Count = cmp.Or(r.Count, 10)
	r.MinIdle = cmp.Or(r.MinIdle, 30*time.Second)
	r.ClaimInterval = cmp.Or(r.ClaimInterval, r.MinIdle/2)
	r.MaxAttempts = cmp.Or(r.MaxAttempts, 5)
	r.HandlerTimeout = cmp.Or(r.HandlerTimeout, 30*time.Second)
	r.MaxBackoff = cmp.Or(r.MaxBackoff, 5*time.Second)
	r.BacklogInterval = cmp.Or(r.BacklogInterval, 5*time.Second)
	r.Logger = defaults.Logger(r.Logger)
	if r.Tracer == nil {
		r.Tracer = noop.NewTracerProvider()
	}
	if len(r.Types) > 0 {
		r.wanted = make(map[string]bool, len(r.Types))
		for _, t := range r.Types {
			r.wanted[t] = true
		}
	}
	r.bo = backoff{min: 100 * time.Millisecond, max: r.MaxBackoff}
	r.failures = failureStreak{logger: r.Logger}
	return r
}

func defaultName() string {
	host, err := os.Hostname()
	if err != nil {
		host = "consumer"
	}
	return host + "-" + strconv.Itoa(os.Getpid())
}

// step does one round: make sure the group exists, reclaim stale pending
// entries when it is time, then read and handle new entries. An error means
// Redis or Postgres failed; the entries not yet handled stay pending.
func (r *consumerRun) step(ctx context.Context) error {
	if !r.groupOK {
		// From "0", not "$": events published before the group first
		// existed (or while the stream was being recreated) are not missed.
		err := r.Redis.XGroupCreateMkStream(ctx, r.Stream, r.Group, "0").Err()
		if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
			return fmt.Errorf("create group: %w", err)
		}
		r.groupOK = true
	}

	if time.Since(r.lastClaim) >= r.ClaimInterval {
		if err := r.reclaim(ctx); err != nil {
			return err
		}
		r.lastClaim = time.Now()
	}

	streams, err := r.Redis.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group:    r.Group,
		Consumer: r.Name,
		Streams:  []string{r.Stream, ">"},
		Count:    r.Count,
		Block:    r.Block, // finite, so reclaiming and shutdown are never starved
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("xreadgroup: %w", err)
	}
	for _, s := range streams {
		for _, msg := range s.Messages {
			if err := r.process(ctx, msg); err != nil {
				return err
			}
		}
	}
	return nil
}

// reclaim takes over entries that have been pending longer than MinIdle:
// those whose handler failed (this is how they are retried) and those held
// by a member that died.
func (r *consumerRun) reclaim(ctx context.Context) error {
	// Each entry XAUTOCLAIM hands over counts one more delivery toward
	// MaxAttempts. While the database is down none could be handled, and
	// claiming them would spend their attempts on the outage: one whose
	// handler then failed once would be dead-lettered without its retries.
	if err := r.databaseUp(ctx); err != nil {
		return err
	}
	start := "0-0"
	for {
		msgs, next, err := r.Redis.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream:   r.Stream,
			Group:    r.Group,
			Consumer: r.Name,
			MinIdle:  r.MinIdle,
			Start:    start,
			Count:    r.Count,
		}).Result()
		if err != nil {
			return fmt.Errorf("xautoclaim: %w", err)
		}
		for _, msg := range msgs {
			if err := r.process(ctx, msg); err != nil {
				return err
			}
		}
		if next == "0-0" || next == "" { // the whole pending list has been scanned
			return nil
		}
		start = next
	}
}

// process handles one entry. Handler failures are dealt with here (left
// pending or dead-lettered); the error returned means Redis or Postgres
// failed and the caller should back off.
func (r *consumerRun) process(ctx context.Context, msg redis.XMessage) error {
	if typ, _ := msg.Values[fieldType].(string); typ != "" && !r.wants(typ) {
		return r.ack(ctx, msg.ID)
	}
	env, err := decodeEntry(msg)
	if err != nil {
		// Retrying cannot fix an entry that does not decode.
		return r.deadLetter(ctx, r.Logger, msg, "", err, 1)
	}
	if !r.wants(env.Type) {
		return r.ack(ctx, msg.ID)
	}

	handled, span, herr, err := r.handle(ctx, env)
	switch {
	case err != nil:
		return err
	case herr != nil:
		if err := r.databaseUp(ctx); err != nil {
			// The database went away under the handler: the outage's
			// failure, not the event's, so it is not counted toward
			// dead-lettering. The entry stays pending.
			return fmt.Errorf("%w (the handler failed with: %v)", err, herr)
		}
		// The lines about it name the attempt's request, trace and span.
		logCtx := trace.ContextWithSpanContext(requestid.NewContext(ctx, env.RequestID), span)
		return r.handlerFailed(ctx, logging.WithRequest(logCtx, r.Logger), msg, env, herr)
	}
	if err := r.ack(ctx, msg.ID); err != nil {
		// Committed but not acknowledged: the redelivery will find the
		// inbox row and only acknowledge.
		return err
	}
	if handled {
		r.Metrics.consumed(r.Group, env.Type)
	}
	return nil
}

// databaseUp returns an error when the database does not answer a ping
// within a few seconds.
func (r *consumerRun) databaseUp(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := r.DB.PingContext(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	return nil
}

// handle runs the handler in a transaction together with the inbox insert.
// handled is false when the inbox shows the event was already applied;
// herr is the handler's failure, err a database failure; span is the
// context of the span it was handled in.
func (r *consumerRun) handle(ctx context.Context, env Envelope) (handled bool, sc trace.SpanContext, herr, err error) {
	hctx := ctx
	if env.RequestID != "" {
		hctx = requestid.NewContext(hctx, env.RequestID)
	}
	hctx, span := r.Tracer.Tracer(tracing.Scope).Start(tracing.FromMap(hctx, env.TraceContext), "process "+env.Type,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(append(messagingAttributes(r.Stream, env), semconv.MessagingConsumerGroupName(r.Group))...))
	sc = span.SpanContext()
	defer func() {
		if !handled && herr == nil && err == nil {
			span.SetAttributes(attribute.Bool("mercato.duplicate", true)) // the inbox had it
		}
		tracing.End(span, errors.Join(herr, err))
	}()
	hctx, cancel := context.WithTimeout(hctx, r.HandlerTimeout)
	defer cancel()

	tx, err := r.DB.BeginTxx(hctx, nil)
	if err != nil {
		return false, sc, nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit

	// A concurrent duplicate blocks here on the primary key until the first
	// transaction ends, then finds the row: exactly one of them applies it.
	res, err := tx.ExecContext(hctx,
		`INSERT INTO inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
		r.Group, env.ID)
	if err != nil {
		return false, sc, nil, fmt.Errorf("inbox insert: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return false, sc, nil, fmt.Errorf("inbox insert: %w", err)
	} else if n == 0 {
		return false, sc, nil, nil
	}

	if herr := callHandler(hctx, r.Handler, tx, env); herr != nil {
		return false, sc, herr, nil
	}
	if err := tx.Commit(); err != nil {
		return false, sc, nil, fmt.Errorf("commit: %w", err)
	}
	return true, sc, nil, nil
}

// callHandler turns a handler panic into an error, so one bad event is
// retried and dead-lettered instead of crashing every instance in turn.
func callHandler(ctx context.Context, h HandlerFunc, tx Tx, env Envelope) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panic: %v", p)
		}
	}()
	return h(ctx, tx, env)
}

// handlerFailed leaves the entry pending for a later attempt, or moves it to
// the dead-letter stream: at once for a Permanent error, once it has been
// delivered MaxAttempts times for any other but a Transient one.
func (r *consumerRun) handlerFailed(ctx context.Context, logger log.Logger, msg redis.XMessage, env Envelope, herr error) error {
	if ctx.Err() != nil {
		return ctx.Err() // shutting down: not the event's fault, do not count it
	}
	r.Metrics.failed(r.Group, env.Type)
	pending, err := r.Redis.XPendingExt(ctx, &redis.XPendingExtArgs{
		Stream: r.Stream, Group: r.Group, Start: msg.ID, End: msg.ID, Count: 1,
	}).Result()
	if err != nil {
		return fmt.Errorf("xpending: %w", err)
	}
	if len(pending) == 0 {
		return nil // acknowledged meanwhile by a member that reclaimed it
	}
	attempts := pending[0].RetryCount
	transient := IsTransient(herr)
	if IsPermanent(herr) || attempts >= r.MaxAttempts && !transient {
		return r.deadLetter(ctx, logger, msg, env.Type, herr, attempts)
	}
	logger.Log("level", "warn", "msg", "event handler failed; will retry",
		"group", r.Group, "type", env.Type, "event_id", env.ID, "attempt", attempts,
		"max_attempts", r.MaxAttempts, "transient", transient, "err", herr)
	return nil
}

// deadLetter copies the entry to the dead-letter stream with the reason and
// acknowledges it, atomically (MULTI), so it is neither lost nor duplicated.
func (r *consumerRun) deadLetter(ctx context.Context, logger log.Logger, msg redis.XMessage, typ string, reason error, attempts int64) error {
	values := []any{
		"error", reason.Error(),
		"group", r.Group,
		"consumer", r.Name,
		"stream", r.Stream,
		"entry_id", msg.ID,
		"attempts", attempts,
	}
	for _, f := range []string{fieldID, fieldType, fieldEnvelope} {
		if v, ok := msg.Values[f]; ok {
			values = append(values, f, v)
		}
	}
	if _, ok := msg.Values[fieldEnvelope]; !ok {
		raw, _ := json.Marshal(msg.Values) // keep whatever the entry held
		values = append(values, "fields", string(raw))
	}
	_, err := r.Redis.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.XAdd(ctx, &redis.XAddArgs{
			Stream: r.DeadLetterStream, MaxLen: r.DeadLetterMaxLen, Approx: true, Values: values,
		})
		p.XAck(ctx, r.Stream, r.Group, msg.ID)
		return nil
	})
	if err != nil {
		return fmt.Errorf("dead-letter %s: %w", msg.ID, err)
	}
	if typ == "" {
		typ = "unknown"
	}
	r.Metrics.deadLettered(r.Group, typ)
	logger.Log("level", "error", "msg", "event dead-lettered", "group", r.Group,
		"type", typ, "entry_id", msg.ID, "attempts", attempts, "err", reason)
	return nil
}

func (r *consumerRun) ack(ctx context.Context, id string) error {
	if err := r.Redis.XAck(ctx, r.Stream, r.Group, id).Err(); err != nil {
		return fmt.Errorf("xack %s: %w", id, err)
	}
	return nil
}

func (r *consumerRun) wants(typ string) bool {
	return r.wanted == nil || r.wanted[typ]
}

// decodeEntry reads the envelope a Relay wrote into a stream entry.
func decodeEntry(msg redis.XMessage) (Envelope, error) {
	raw, ok := msg.Values[fieldEnvelope].(string)
	if !ok {
		return Envelope{}, fmt.Errorf("events: entry %s has no %q field", msg.ID, fieldEnvelope)
	}
	var env Envelope
	if err := json.Unmarshal([]byte(raw), &env); err != nil {
		return Envelope{}, fmt.Errorf("events: entry %s: undecodable envelope: %w", msg.ID, err)
	}
	if err := env.validate(); err != nil {
		return Envelope{}, fmt.Errorf("events: entry %s: %w", msg.ID, err)
	}
	return env, nil
}
