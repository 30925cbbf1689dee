package httpkit

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/mercato-dev/mercato/shared/logging"
	"github.com/mercato-dev/mercato/shared/metrics"
	"github.com/mercato-dev/mercato/shared/tracing"
)

const (
	callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpan  = "00f067aa0ba902b7"
)

// serveTraced serves one request through a router with Trace and returns
// the spans it ended and the request's log line.
func serveTraced(t *testing.T, public bool, r *http.Request) ([]sdktrace.ReadOnlySpan, map[string]any) {
	t.Helper()
	recorder := tracetest.NewSpanRecorder()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
	var logs bytes.Buffer
	logger := logging.New(&logs, "test", "info")
	reg := prometheus.NewRegistry()
	router := Router(logger, reg, metrics.NewHTTP(reg, "test"), nil, Trace(provider, public))
	router.Methods(http.MethodGet).Path("/things/{id}").HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	})
	Handler(log.NewNopLogger(), router).ServeHTTP(httptest.NewRecorder(), r)
	var line map[string]any
	if first, _, _ := strings.Cut(logs.String(), "\n"); first != "" {
		if err := json.Unmarshal([]byte(first), &line); err != nil {
			t.Fatalf("log line %q: %v", first, err)
		}
	}
	return recorder.Ended(), line
}

func TestTraceNamesSpansByRouteAndContinuesTheCaller(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/things/42", nil)
	r.Header.Set("traceparent", "00-"+callerTrace+"-"+callerSpan+"-01")
	r.Header.Set("X-Request-ID", "req-1")
	spans, line := serveTraced(t, false, r)
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	s := spans[0]
	if s.Name() != "GET /things/{id}" {
		t.Errorf("span name %q, want the route template", s.Name())
	}
	if s.SpanContext().TraceID().String() != callerTrace || s.Parent().SpanID().String() != callerSpan {
		t.Errorf("span %v under %v, want the caller's trace and span as parent", s.SpanContext(), s.Parent())
	}
	got := map[string]string{}
	for _, kv := range s.Attributes() {
		got[string(kv.Key)] = kv.Value.String()
	}
	if got["http.route"] != "/things/{id}" || got["http.response.status_code"] != "418" || got["mercato.request_id"] != "req-1" {
		t.Errorf("attributes %v", got)
	}
	// The request's log line is written inside the span and names it.
	if line["trace_id"] != callerTrace || line["span_id"] != s.SpanContext().SpanID().String() || line["request_id"] != "req-1" {
		t.Errorf("log line %v, want trace_id %s, span_id %s and the request id", line, callerTrace, s.SpanContext().SpanID())
	}
}

func TestTracePublicLinksTheCaller(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/things/42", nil)
	r.Header.Set("traceparent", "00-"+callerTrace+"-"+callerSpan+"-01")
	spans, _ := serveTraced(t, true, r)
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	s := spans[0]
	if s.SpanContext().TraceID().String() == callerTrace || s.Parent().IsValid() {
		t.Errorf("public span %v continues the client's trace (parent %v); want a trace of its own", s.SpanContext(), s.Parent())
	}
	if links := s.Links(); len(links) != 1 || links[0].SpanContext.TraceID().String() != callerTrace {
		t.Errorf("links %v, want one to the client's span", links)
	}
}

func TestTraceSkipsProbesAndNamesUnmatched(t *testing.T) {
	if spans, _ := serveTraced(t, false, httptest.NewRequest(http.MethodGet, "/health", nil)); len(spans) != 0 {
		t.Errorf("/health made %d spans, want none", len(spans))
	}
	spans, _ := serveTraced(t, false, httptest.NewRequest(http.MethodGet, "/no/such/42", nil))
	if len(spans) != 1 || spans[0].Name() != "GET unmatched" {
		t.Errorf("an unmatched path made %v, want one span \"GET unmatched\", never the raw path", spans)
	}
	// Nor a method a client made up: one name for them all.
	spans, _ = serveTraced(t, false, httptest.NewRequest("X1", "/no/such/42", nil))
	if len(spans) != 1 || spans[0].Name() != "_OTHER unmatched" {
		t.Errorf("a made-up method made %v, want one span \"_OTHER unmatched\"", spans)
	}
}

// Without an exporter no span is made, but the caller's trace context
// reaches the handler and the log line (the public port's does not).
func TestTraceWithoutExporterPassesTheContext(t *testing.T) {
	for _, public := range []bool{false, true} {
		var logs bytes.Buffer
		reg := prometheus.NewRegistry()
		router := Router(logging.New(&logs, "test", "info"), reg, metrics.NewHTTP(reg, "test"), nil, Trace(noop.NewTracerProvider(), public))
		var got trace.SpanContext
		router.Methods(http.MethodGet).Path("/things/{id}").HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got = trace.SpanContextFromContext(r.Context())
		})
		r := httptest.NewRequest(http.MethodGet, "/things/42", nil)
		r.Header.Set("traceparent", "00-"+callerTrace+"-"+callerSpan+"-01")
		router.ServeHTTP(httptest.NewRecorder(), r)
		continued := got.TraceID().String() == callerTrace && got.SpanID().String() == callerSpan
		if continued == public || strings.Contains(logs.String(), callerTrace) == public {
			t.Errorf("public %v: handler saw %v, log %s", public, got, logs.String())
		}
	}
}

// A handler that panics is answered 500 by Recover, outside the router: its
// span must say so, as every other 5xx's does, and hold the status.
func TestTraceMarksAPanicFailed(t *testing.T) {
	recorder := tracetest.NewSpanRecorder()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
	reg := prometheus.NewRegistry()
	router := Router(log.NewNopLogger(), reg, metrics.NewHTTP(reg, "test"), nil, Trace(provider, false))
	router.Methods(http.MethodGet).Path("/things/{id}").HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("boom")
	})
	w := httptest.NewRecorder()
	var logs bytes.Buffer
	Handler(logging.New(&logs, "test", "info"), router).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/things/42", nil))
	if w.Code != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", w.Code)
	}
	spans := recorder.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans ended, want 1", len(spans))
	}
	s := spans[0]
	status := ""
	for _, kv := range s.Attributes() {
		if kv.Key == "http.response.status_code" {
			status = kv.Value.String()
		}
	}
	if s.Status().Code != codes.Error || status != "500" {
		t.Errorf("span of a panic: status %v, http.response.status_code %q; want Error and 500", s.Status(), status)
	}
	// Recover's line, with the stack, is found by the trace id too.
	var line map[string]any
	if err := json.Unmarshal(logs.Bytes(), &line); err != nil || line["msg"] != "panic" {
		t.Fatalf("Recover's log %q (%v), want its panic line", logs.String(), err)
	}
	if line["trace_id"] != s.SpanContext().TraceID().String() || line["span_id"] != s.SpanContext().SpanID().String() {
		t.Errorf("panic line trace_id %v span_id %v, want the request's span %v", line["trace_id"], line["span_id"], s.SpanContext())
	}
}

// With -trace-sample-ratio 0 a client's sampled traceparent cannot force a
// trace at the public port; an internal port follows its caller.
func TestTracePublicIgnoresTheClientsSampling(t *testing.T) {
	p, err := tracing.New(context.Background(), tracing.Config{Service: "test", Endpoint: "127.0.0.1:1", SampleRatio: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background()) //nolint:errcheck
	for _, public := range []bool{true, false} {
		reg := prometheus.NewRegistry()
		router := Router(log.NewNopLogger(), reg, metrics.NewHTTP(reg, "test"), nil, Trace(p, public))
		var recording bool
		router.Methods(http.MethodGet).Path("/things/{id}").HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			recording = trace.SpanFromContext(r.Context()).IsRecording()
		})
		r := httptest.NewRequest(http.MethodGet, "/things/42", nil)
		r.Header.Set("traceparent", "00-"+callerTrace+"-"+callerSpan+"-01")
		router.ServeHTTP(httptest.NewRecorder(), r)
		if recording == public {
			t.Errorf("public %v: span recording %v with ratio 0 and a client's sampled traceparent", public, recording)
		}
	}
}
