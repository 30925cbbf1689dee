package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log/level"
	"go.opentelemetry.io/otel/trace"

	"github.com/mercato-dev/mercato/shared/requestid"
)

func TestLoggerWritesJSONWithRequestID(t *testing.T) {
	var buf bytes.Buffer
	logger := New(&buf, "user", "info")
	ctx := requestid.NewContext(context.Background(), "req-123")

	level.Info(WithRequest(ctx, logger)).Log("msg", "hello")
	level.Debug(logger).Log("msg", "filtered out")

	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 1 {
		t.Fatalf("want 1 line (debug filtered), got %d: %s", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal(lines[0], &rec); err != nil {
		t.Fatalf("not JSON: %v: %s", err, lines[0])
	}
	for k, want := range map[string]string{"service": "user", "request_id": "req-123", "msg": "hello", "level": "info"} {
		if rec[k] != want {
			t.Errorf("%s = %v, want %q", k, rec[k], want)
		}
	}
	if rec["ts"] == nil || rec["caller"] == nil {
		t.Errorf("ts and caller must be present: %v", rec)
	}
}

func TestWithRequestWithoutID(t *testing.T) {
	var buf bytes.Buffer
	logger := New(&buf, "user", "debug")
	WithRequest(context.Background(), logger).Log("msg", "x")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatal(err)
	}
	if _, ok := rec["request_id"]; ok {
		t.Errorf("no request id in ctx, yet logged one: %v", rec)
	}
}

// sqlStateErr is a driver error with a SQLSTATE, as lib/pq's *pq.Error.
type sqlStateErr string

func (e sqlStateErr) Error() string    { return "pq: " + string(e) }
func (e sqlStateErr) SQLState() string { return string(e) }

func TestForOutcome(t *testing.T) {
	errBusiness, errFailure := errors.New("not found"), errors.New("connection reset")
	business := func(err error) bool { return errors.Is(err, errBusiness) }
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	timedOut, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		want string
	}{
		{"success", context.Background(), nil, "debug"},
		{"business error", context.Background(), errBusiness, "info"},
		{"failure", context.Background(), errFailure, "error"},
		{"client gone", gone, fmt.Errorf("get user: %w", context.Canceled), "info"},
		{"client gone mid-statement", gone, sqlStateErr("57014"), "info"},
		{"failure as the client left", gone, errFailure, "error"},
		{"cancelled, the client still there", context.Background(), context.Canceled, "error"},
		{"the server's own deadline", timedOut, context.Canceled, "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			ForOutcome(tc.ctx, New(&buf, "user", "debug"), tc.err, business).Log("msg", "call")
			var rec map[string]any
			if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
				t.Fatalf("not JSON: %v: %s", err, buf.Bytes())
			}
			if rec["level"] != tc.want {
				t.Errorf("level = %v, want %s", rec["level"], tc.want)
			}
		})
	}
}

// Inside a span a line carries the trace and span ids, with or without a
// request id; outside one it carries neither.
func TestWithRequestInsideASpan(t *testing.T) {
	var buf bytes.Buffer
	logger := New(&buf, "order", "info")
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9, 1}, SpanID: trace.SpanID{0x00, 0xf0, 2}, TraceFlags: trace.FlagsSampled})
	level.Info(WithRequest(trace.ContextWithSpanContext(context.Background(), sc), logger)).Log("msg", "in a span")
	level.Info(WithRequest(context.Background(), logger)).Log("msg", "outside")

	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	var in, out map[string]any
	if len(lines) != 2 || json.Unmarshal(lines[0], &in) != nil || json.Unmarshal(lines[1], &out) != nil {
		t.Fatalf("want two JSON lines, got %s", buf.String())
	}
	if in["trace_id"] != sc.TraceID().String() || in["span_id"] != sc.SpanID().String() {
		t.Errorf("line inside the span: %v, want trace_id %s and span_id %s", in, sc.TraceID(), sc.SpanID())
	}
	if _, ok := out["trace_id"]; ok {
		t.Errorf("line outside any span has a trace id: %v", out)
	}
}

// A milestone's success is logged at info, where Log would say debug.
func TestLogMilestone(t *testing.T) {
	var buf bytes.Buffer
	m := Method{Logger: New(&buf, "order", "info"), Business: func(error) bool { return true }}
	m.Log(context.Background(), "GetOrder", time.Now(), nil, "order_id", "o-1")
	m.LogMilestone(context.Background(), "PlaceOrder", time.Now(), nil, "order_id", "o-2")
	if got := buf.String(); strings.Contains(got, "o-1") || !strings.Contains(got, `"order_id":"o-2"`) || !strings.Contains(got, `"level":"info"`) {
		t.Errorf("logged %s; want only the milestone, at info", got)
	}
}
