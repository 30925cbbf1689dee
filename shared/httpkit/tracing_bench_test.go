package httpkit

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-kit/log"
	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/mercato-dev/mercato/shared/metrics"
)

// BenchmarkTraceOverhead is the cost tracing adds to one request through a
// service's router (request id, recovery, metrics, the request's log line
// to io.Discard), per request. Its cases:
//
//   - untraced: the router without Trace, as before tracing existed;
//   - no-exporter: Trace with the no-op provider, a process without
//     -otlp-endpoint, for a request with a caller's traceparent (passed on
//     to the log line) and one without;
//   - sampled: Trace with a recording SDK provider that exports nowhere,
//     the cost of making the span itself.
//
// Run it with:
//
//	go test -run '^$' -bench BenchmarkTraceOverhead -benchmem ./shared/httpkit/
func BenchmarkTraceOverhead(b *testing.B) {
	for _, c := range []struct {
		name     string
		outer    []mux.MiddlewareFunc
		noCaller bool
	}{
		{"untraced", nil, false},
		{"no-exporter", []mux.MiddlewareFunc{Trace(noop.NewTracerProvider(), false)}, false},
		{"no-exporter-no-caller-trace", []mux.MiddlewareFunc{Trace(noop.NewTracerProvider(), false)}, true},
		{"sampled", []mux.MiddlewareFunc{Trace(sdktrace.NewTracerProvider(), false)}, false},
	} {
		b.Run(c.name, func(b *testing.B) {
			reg := prometheus.NewRegistry()
			logger := log.NewJSONLogger(io.Discard)
			router := Router(logger, reg, metrics.NewHTTP(reg, "bench"), nil, c.outer...)
			router.Methods(http.MethodGet).Path("/things/{id}").HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(http.StatusNoContent)
			})
			h := Handler(logger, router)
			r := httptest.NewRequest(http.MethodGet, "/things/42", nil)
			if !c.noCaller {
				r.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
			}
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(httptest.NewRecorder(), r)
			}
		})
	}
}
