package httpkit

import (
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"go.opentelemetry.io/otel/trace"

	"github.com/mercato-dev/mercato/shared/logging"
	"github.com/mercato-dev/mercato/shared/metrics"
	"github.com/mercato-dev/mercato/shared/requestid"
)

// RequestID takes the client's X-Request-ID when it is sane, or makes one,
// puts it in the request context and echoes it on the response.
func RequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(requestid.Header)
		if !requestid.Valid(id) {
			id = requestid.New()
		}
		w.Header().Set(requestid.Header, id)
		next.ServeHTTP(w, r.WithContext(requestid.NewContext(r.Context(), id)))
	})
}

// Recover turns a panic into a logged 500 JSON error instead of a dropped
// connection.
func Recover(logger log.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if p := recover(); p != nil {
					if p == http.ErrAbortHandler {
						panic(p)
					}
					ctx := r.Context()
					if sp, ok := p.(spanPanic); ok {
						ctx, p = trace.ContextWithSpanContext(ctx, sp.span), sp.value
					}
					level.Error(logging.WithRequest(ctx, logger)).Log("msg", "panic", "panic", p, "stack", string(debug.Stack()))
					WriteError(w, Internal())
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// Observe logs one line per request and records http_requests_total and
// http_request_duration_seconds, labelled with the route template (never the
// raw path, which would explode the label space), and
// http_requests_in_flight while a request other than a probe (/health,
// /ready, /metrics) is being served: a scrape would otherwise always count
// itself.
func Observe(logger log.Logger, m *metrics.HTTP) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			route := RouteTemplate(r) // mux has matched the route before its middleware runs
			if !isProbe(route) {
				m.InFlight.Add(1)
				defer m.InFlight.Add(-1)
			}
			begin := time.Now()
			rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
			// Deferred, so that a request whose handler panics is counted
			// and logged too, on its way to Recover (outside the router),
			// as the 500 Recover answers when nothing was written yet.
			served := false
			defer func() {
				if !served && !rec.wroteHeader {
					rec.status = http.StatusInternalServerError
				}
				elapsed := time.Since(begin)
				code, method := strconv.Itoa(rec.status), MethodLabel(r.Method)
				m.Requests.With("method", method, "route", route, "code", code).Add(1)
				m.Duration.With("method", method, "route", route, "code", code).Observe(elapsed.Seconds())
				if route == "/health" || route == "/metrics" {
					return // probes and scrapes would drown the log
				}
				level.Info(logging.WithRequest(r.Context(), logger)).Log("msg", "http request",
					"method", r.Method, "route", route, "path", r.URL.Path, "status", rec.status,
					"duration_ms", float64(elapsed.Microseconds())/1000, "remote", r.RemoteAddr)
			}()
			next.ServeHTTP(rec, r)
			served = true
		})
	}
}

// MethodLabel is method as metrics label it and spans are named with: one
// of HTTP's methods, or "_OTHER" (OpenTelemetry's name) for any other.
// net/http serves whatever token a client sends as its method, and a label
// or span name taken from it as it is would give a client that makes one
// up per request a series per request.
func MethodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return method
	}
	return "_OTHER"
}

type statusRecorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wroteHeader = true
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
