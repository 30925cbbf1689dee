package tracing

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Propagator is how trace context travels: W3C Trace Context (the
// traceparent and tracestate headers), in HTTP headers and, as a map of the
// same names, in event envelopes and the outbox.
func Propagator() propagation.TextMapPropagator { return propagation.TraceContext{} }

// ToMap returns the trace context of ctx as the W3C header names and values,
// to store or send beside a message; nil when ctx carries none.
func ToMap(ctx context.Context) map[string]string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return nil
	}
	m := propagation.MapCarrier{}
	Propagator().Inject(ctx, m)
	return m
}

// FromMap returns ctx carrying the remote trace context m holds (from
// ToMap); ctx unchanged when m holds none.
func FromMap(ctx context.Context, m map[string]string) context.Context {
	if len(m) == 0 {
		return ctx
	}
	return Propagator().Extract(ctx, propagation.MapCarrier(m))
}

// ToJSON is ToMap as a JSON object, to store in a column beside the work
// it traces (the outbox, a charge's webhook); ok is false when ctx carries
// no trace context, to store NULL.
func ToJSON(ctx context.Context) (_ string, ok bool) {
	m := ToMap(ctx)
	if m == nil {
		return "", false
	}
	b, _ := json.Marshal(m) // a map of strings always marshals
	return string(b), true
}

// FromJSON is FromMap of what ToJSON stored; ctx unchanged when it holds
// none, or nothing readable.
func FromJSON(ctx context.Context, stored string) context.Context {
	var m map[string]string
	if stored == "" || json.Unmarshal([]byte(stored), &m) != nil {
		return ctx
	}
	return FromMap(ctx, m)
}

// ClientRequest readies r, an outbound call made inside the span in ctx
// (one attempt of a discovery call, a gateway forward), for tracing: the
// trace context goes in its headers, so the instance continues the trace,
// and the span records the path.
func ClientRequest(ctx context.Context, r *http.Request) {
	Propagator().Inject(ctx, propagation.HeaderCarrier(r.Header))
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(semconv.URLPath(r.URL.Path))
	}
}

// ClientResponse records on the span in ctx the status an outbound call
// was answered with.
func ClientResponse(ctx context.Context, status int) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(semconv.HTTPResponseStatusCode(status))
	}
}

// Attempt starts the client span of one attempt at an upstream instance
// ("host:port"): named "<method> <upstream>", its number among the call's
// attempts recorded, so retries show as sibling spans.
func Attempt(ctx context.Context, method, upstream, instance string, attempt int) (context.Context, trace.Span) {
	name := upstream
	if method != "" {
		name = method + " " + upstream
	}
	ctx, span := Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient))
	if span.IsRecording() {
		span.SetAttributes(PeerServiceKey.String(upstream), AttemptKey.Int(attempt))
		if method != "" {
			span.SetAttributes(semconv.HTTPRequestMethodKey.String(method))
		}
		if host, port, err := net.SplitHostPort(instance); err == nil {
			span.SetAttributes(semconv.ServerAddress(host))
			if p, err := strconv.Atoi(port); err == nil {
				span.SetAttributes(semconv.ServerPort(p))
			}
		}
	}
	return ctx, span
}

// Attributes of Mercato's own spans.
const (
	// PeerServiceKey names the upstream service of a client span, which
	// Jaeger draws its dependency graph from.
	PeerServiceKey = attribute.Key("peer.service")
	// AttemptKey is an attempt's number within its call, from 1.
	AttemptKey = attribute.Key("mercato.attempt")
	// BreakerKey says why an instance's breaker refused an attempt
	// without sending it: "circuit_open" or "max_concurrency".
	BreakerKey = attribute.Key("mercato.breaker_rejected")
)
