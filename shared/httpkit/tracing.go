package httpkit

import (
	"fmt"
	"net/http"

	"github.com/gorilla/mux"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/codes"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/mercato-dev/mercato/shared/requestid"
	"github.com/mercato-dev/mercato/shared/tracing"
)

// Trace is router middleware (mux's Use, so the route is known) that serves
// every request inside a server span from tp named "<method> <route
// template>" (GET /api/v1/orders/{id}; never the raw path, whose ids would
// make every request a name of its own), holding the route, the status and
// the request id. It continues the caller's trace when the request carries
// a W3C traceparent, except when public: a port that faces the internet
// (the gateway's) starts a trace of its own and links to the caller's, so a
// client can neither force sampling nor graft its spans onto ours. /health,
// /ready and /metrics make no span.
//
// With a provider that exports nothing (tracing.Exports false) no span is
// made: the caller's trace context is only passed on, to the request's log
// lines and outbound calls, which costs a header lookup.
func Trace(tp trace.TracerProvider, public bool) mux.MiddlewareFunc {
	if !tracing.Exports(tp) {
		return passTraceContext(public)
	}
	var publicFn func(*http.Request) bool
	if public {
		publicFn = func(*http.Request) bool { return true }
	}
	traced := otelhttp.NewMiddleware("",
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(tracing.Propagator()),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()), // metrics are Prometheus's (Observe)
		otelhttp.WithPublicEndpointFn(publicFn),
		otelhttp.WithFilter(func(r *http.Request) bool { return !isProbe(RouteTemplate(r)) }),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return MethodLabel(r.Method) + " " + RouteTemplate(r) }),
	)
	return func(next http.Handler) http.Handler {
		return traced(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			span := trace.SpanFromContext(r.Context())
			if !span.IsRecording() {
				next.ServeHTTP(w, r)
				return
			}
			span.SetAttributes(semconv.HTTPRoute(RouteTemplate(r)),
				tracing.RequestIDKey.String(requestid.FromContext(r.Context())))
			rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
			defer func() {
				// otelhttp sets the status only once the handler returns; a
				// panic passes it by, on its way to Recover's 500.
				if p := recover(); p != nil {
					span.SetStatus(codes.Error, fmt.Sprint("panic: ", p))
					if !rec.wroteHeader {
						span.SetAttributes(semconv.HTTPResponseStatusCode(http.StatusInternalServerError))
					}
					if p == http.ErrAbortHandler {
						panic(p) // net/http knows it by identity
					}
					panic(spanPanic{value: p, span: span.SpanContext()})
				}
			}()
			next.ServeHTTP(rec, r)
		}))
	}
}

// passTraceContext is Trace without spans: the caller's trace context, if
// any, goes into the request's context, unless the port is public.
func passTraceContext(public bool) mux.MiddlewareFunc {
	return func(next http.Handler) http.Handler {
		if public {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("traceparent") != "" {
				r = r.WithContext(tracing.Propagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header)))
			}
			next.ServeHTTP(w, r)
		})
	}
}

// RouteTemplate is the template of the route r matched ("/api/v1/orders/{id}"),
// or "unmatched": what metrics are labelled and spans named with.
func RouteTemplate(r *http.Request) string {
	if cr := mux.CurrentRoute(r); cr != nil {
		if tpl, err := cr.GetPathTemplate(); err == nil {
			return tpl
		}
	}
	return "unmatched"
}

// isProbe: health checks, readiness checks and scrapes, which would drown
// the log and the traces.
func isProbe(route string) bool {
	return route == "/health" || route == "/ready" || route == "/metrics"
}

// spanPanic is a panic on its way from a traced handler to Recover, outside
// the router, with the span it ended, so Recover's line names the span.
type spanPanic struct {
	value any
	span  trace.SpanContext
}

func (p spanPanic) String() string { return fmt.Sprint(p.value) }
