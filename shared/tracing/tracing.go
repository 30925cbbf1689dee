// Package tracing is Mercato's distributed tracing: OpenTelemetry spans,
// W3C trace context on every hop (HTTP headers, event envelopes), exported
// over OTLP/HTTP to a collector (Jaeger in `make run`).
//
// One Provider per process, built by app.Start from the common flags
// (-otlp-endpoint, -trace-sample-ratio) and passed to what starts traces:
// the HTTP server middleware (httpkit.Trace), the outbox relay and the event
// consumers. Everything below them (outbound calls, database transactions,
// Redis commands) starts its spans with Start, from the span already in its
// context and that span's provider, so no package holds a tracer of its own
// and work outside any trace (a sweeper's tick) makes no span at all.
//
// Without an endpoint the Provider is OpenTelemetry's no-op: spans cost an
// allocation-free context lookup, and an incoming trace context is still
// passed on, so a service that does not export never breaks the traces of
// those that do.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Scope is the instrumentation scope of every span Mercato's code starts.
const Scope = "github.com/mercato-dev/mercato"

// Config says where a process's spans go.
type Config struct {
	Service string // service.name: the service, or "gateway"
	Version string // service.version
	// Endpoint is the OTLP/HTTP collector: "host:port" or a URL
	// ("http://jaeger:4318"); "/v1/traces" is added to a URL without a
	// path. Empty: nothing is exported and the Provider is a no-op.
	Endpoint string
	// SampleRatio is the share of new traces recorded, 0 to 1. A request or
	// event that arrives with a trace context follows its caller's
	// decision (parent-based sampling), so a trace is whole or absent.
	SampleRatio float64
}

// Provider is a process's tracer provider. Shutdown flushes what is still
// queued for export.
type Provider struct {
	trace.TracerProvider
	shutdown func(context.Context) error
}

// Disabled is the Provider of a process that exports nothing.
func Disabled() *Provider {
	return &Provider{TracerProvider: noop.NewTracerProvider(), shutdown: func(context.Context) error { return nil }}
}

// New returns the Provider cfg describes: spans batched in memory and
// exported in the background, so a collector that is slow or down never
// delays a request (a full queue drops spans instead), or Disabled when
// cfg.Endpoint is empty.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if cfg.Endpoint == "" {
		return Disabled(), nil
	}
	if cfg.SampleRatio < 0 || cfg.SampleRatio > 1 {
		return nil, fmt.Errorf("tracing: sample ratio %v is not between 0 and 1", cfg.SampleRatio)
	}
	endpoint, err := EndpointURL(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	exporter, err := otlptrace.New(ctx, newOTLPHTTP(endpoint))
	if err != nil {
		return nil, fmt.Errorf("tracing: exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(cfg.Service), semconv.ServiceVersion(cfg.Version)),
		resource.WithHost(), resource.WithProcessPID())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exporter),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
	)
	return &Provider{TracerProvider: tp, shutdown: tp.Shutdown}, nil
}

// EndpointURL is the OTLP/HTTP traces URL of endpoint (see Config.Endpoint).
func EndpointURL(endpoint string) (string, error) {
	if !strings.Contains(endpoint, "://") {
		endpoint = "http://" + endpoint
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("tracing: OTLP endpoint %q is not host:port nor an http(s) URL", endpoint)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	return u.String(), nil
}

// Exports reports whether tp records spans at all: false for the no-op
// provider of a process without an endpoint (Disabled).
func Exports(tp trace.TracerProvider) bool {
	if p, ok := tp.(*Provider); ok {
		tp = p.TracerProvider
	}
	_, off := tp.(noop.TracerProvider)
	return !off
}

// Shutdown exports the spans still queued, within ctx.
func (p *Provider) Shutdown(ctx context.Context) error { return p.shutdown(ctx) }

// Start starts a span named name as a child of the span in ctx, from that
// span's provider. With no span in ctx (tracing off, or work no request
// started) the span is a no-op: only requests and events start traces.
func Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	return trace.SpanFromContext(ctx).TracerProvider().Tracer(Scope).Start(ctx, name, opts...)
}

// End ends span, marking it failed with err when err is not nil.
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// Recording reports whether ctx holds a span that records: attributes that
// cost something to compute are worth it only then.
func Recording(ctx context.Context) bool { return trace.SpanFromContext(ctx).IsRecording() }

// RequestIDKey is the attribute holding the request id on the spans that
// start a service's part of a request (server spans, event consumers), so
// a trace can be found from the id a client was given.
const RequestIDKey = attribute.Key("mercato.request_id")
