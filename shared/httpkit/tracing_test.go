package httpkit

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/mercato-dev/mercato/shared/logging"
	"github.com/mercato-dev/mercato/shared/metrics"
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
