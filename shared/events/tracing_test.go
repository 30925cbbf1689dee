package events_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/logging"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// An event enqueued inside a trace is published in a span of that trace,
// and handled in a span under the publishing one, with the handler's
// context inside it: the trace crosses the stream. An event enqueued
// outside any trace starts a trace of its own where it is handled.
func TestTraceCrossesTheStream(t *testing.T) {
	db, rdb := newDB(t), testkit.Redis(t)
	stream, dead := names()
	recorder := tracetest.NewSpanRecorder()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))

	handled := make(chan trace.SpanContext, 2)
	relay := &events.Relay{DB: db, Redis: rdb, Stream: stream, PollInterval: 10 * time.Millisecond, Tracer: provider}
	c := fastConsumer(db, rdb, stream, dead, "traced", "t1", func(ctx context.Context, _ events.Tx, _ events.Envelope) error {
		handled <- trace.SpanContextFromContext(ctx)
		return nil
	})
	c.Tracer = provider
	start(t, relay.Run)
	start(t, c.Run)

	ctx, producer := provider.Tracer("test").Start(context.Background(), "producer")
	traced := newEvent(t, events.OrderCreated, 1)
	tx := db.MustBeginTx(ctx, nil)
	if err := events.Enqueue(ctx, tx, traced); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	producer.End()
	inHandler := received(t, handled)

	spans := map[string]sdktrace.ReadOnlySpan{}
	eventually(t, "the publish and process spans", func() bool {
		for _, s := range recorder.Ended() {
			spans[s.Name()] = s
		}
		return spans["publish order.created"] != nil && spans["process order.created"] != nil
	})
	publish, process := spans["publish order.created"], spans["process order.created"]
	if publish.Parent().SpanID() != producer.SpanContext().SpanID() || publish.SpanKind() != trace.SpanKindProducer {
		t.Errorf("publish span under %v (kind %v), want the producer's span", publish.Parent(), publish.SpanKind())
	}
	if process.Parent().SpanID() != publish.SpanContext().SpanID() || process.SpanKind() != trace.SpanKindConsumer {
		t.Errorf("process span under %v (kind %v), want the publish span", process.Parent(), process.SpanKind())
	}
	if process.SpanContext().TraceID() != producer.SpanContext().TraceID() || inHandler.SpanID() != process.SpanContext().SpanID() {
		t.Errorf("handler ran in %v, want the process span %v of the producer's trace", inHandler, process.SpanContext())
	}

	untraced := newEvent(t, events.OrderUpdated, 2)
	enqueue(t, db, untraced)
	inHandler = received(t, handled)
	if !inHandler.IsValid() || inHandler.TraceID() == producer.SpanContext().TraceID() {
		t.Errorf("an event from outside any trace was handled in %v, want a trace of its own", inHandler)
	}
}

// Without a tracer (tracing off) the producer's trace context still
// reaches the handler, so a service that exports spans downstream of one
// that does not keeps the trace whole.
func TestTraceContextPassesWithoutTracer(t *testing.T) {
	db, rdb := newDB(t), testkit.Redis(t)
	stream, dead := names()
	handled := make(chan trace.SpanContext, 1)
	start(t, (&events.Relay{DB: db, Redis: rdb, Stream: stream, PollInterval: 10 * time.Millisecond}).Run)
	c := fastConsumer(db, rdb, stream, dead, "untraced", "u1", func(ctx context.Context, _ events.Tx, _ events.Envelope) error {
		handled <- trace.SpanContextFromContext(ctx)
		return nil
	})
	c.Tracer = noop.NewTracerProvider()
	start(t, c.Run)

	recorder := tracetest.NewSpanRecorder()
	ctx, producer := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder)).Tracer("test").Start(context.Background(), "producer")
	tx := db.MustBeginTx(ctx, nil)
	if err := events.Enqueue(ctx, tx, newEvent(t, events.OrderCreated, 1)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	producer.End()
	if got := received(t, handled); got.TraceID() != producer.SpanContext().TraceID() {
		t.Errorf("handler's trace %v, want the producer's %v", got.TraceID(), producer.SpanContext().TraceID())
	}
}

// received is the span context a handler sent on ch, within testTimeout.
func received(t *testing.T, ch <-chan trace.SpanContext) trace.SpanContext {
	t.Helper()
	select {
	case sc := <-ch:
		return sc
	case <-time.After(testTimeout):
		t.Fatal("the event was never handled")
		return trace.SpanContext{}
	}
}

// The lines a consumer writes about an event's failed handling (a retry to
// come, a dead letter) carry the event's request id and the trace and span
// ids of the attempt's process span, so a search by the checkout's trace
// id finds why its saga stalled.
func TestConsumerFailureLinesCarryTheTrace(t *testing.T) {
	db, rdb := newDB(t), testkit.Redis(t)
	stream, dead := names()
	recorder := tracetest.NewSpanRecorder()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
	var logs testkit.LogBuffer
	var failures atomic.Int32
	c := fastConsumer(db, rdb, stream, dead, "traced-failures", "f1", func(_ context.Context, _ events.Tx, e events.Envelope) error {
		if e.Type == events.OrderCancelled {
			return events.Permanent(errors.New("never"))
		}
		if failures.Add(1) == 1 {
			return errors.New("not yet")
		}
		return nil
	})
	c.Tracer = provider
	c.Logger = logging.New(&logs, "test", "info")
	start(t, c.Run)

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	retried, deadOne := newEvent(t, events.OrderCreated, 1), newEvent(t, events.OrderCancelled, 2)
	for i, e := range []*events.Envelope{&retried, &deadOne} {
		e.RequestID = fmt.Sprintf("req-%d", i)
		e.TraceContext = map[string]string{"traceparent": "00-" + traceID + "-00f067aa0ba902b" + strconv.Itoa(i) + "-01"}
		publish(t, rdb, stream, *e)
	}

	lines := map[string]map[string]any{}
	eventually(t, "the retry and dead-letter lines", func() bool {
		for _, l := range strings.Split(logs.String(), "\n") {
			var line map[string]any
			if json.Unmarshal([]byte(l), &line) == nil {
				lines[fmt.Sprint(line["msg"])] = line
			}
		}
		return lines["event handler failed; will retry"] != nil && lines["event dead-lettered"] != nil
	})
	spans := map[string]bool{}
	for _, s := range recorder.Ended() {
		spans[s.SpanContext().SpanID().String()] = true
	}
	for msg, req := range map[string]string{"event handler failed; will retry": "req-0", "event dead-lettered": "req-1"} {
		line := lines[msg]
		if line["trace_id"] != traceID || !spans[fmt.Sprint(line["span_id"])] || line["request_id"] != req {
			t.Errorf("%q: %v; want trace_id %s, the span id of a process span and request_id %s", msg, line, traceID, req)
		}
	}
}
