package tracing_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/mercato-dev/mercato/shared/testkit"
	"github.com/mercato-dev/mercato/shared/tracing"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func TestEndpointURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:4318":                 "http://127.0.0.1:4318/v1/traces",
		"http://jaeger:4318":             "http://jaeger:4318/v1/traces",
		"https://otel.example/":          "https://otel.example/v1/traces",
		"http://collector:4318/custom/p": "http://collector:4318/custom/p",
	} {
		if got, err := tracing.EndpointURL(in); err != nil || got != want {
			t.Errorf("tracing.EndpointURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"ftp://x:1", "http://", "::"} {
		if got, err := tracing.EndpointURL(bad); err == nil {
			t.Errorf("tracing.EndpointURL(%q) = %q, want an error", bad, got)
		}
	}
	if _, err := tracing.New(context.Background(), tracing.Config{Endpoint: "127.0.0.1:1", SampleRatio: 1.5}); err == nil {
		t.Error("a sample ratio above 1 was accepted")
	}
}

// New with an endpoint exports over OTLP/HTTP to /v1/traces; Shutdown
// flushes what is queued. Without one nothing records.
func TestNewExportsToTheCollector(t *testing.T) {
	var posts atomic.Int64
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/traces" && r.Header.Get("Content-Type") == "application/x-protobuf" {
			posts.Add(1)
		}
	}))
	defer collector.Close()
	p, err := tracing.New(context.Background(), tracing.Config{Service: "thing", Endpoint: collector.URL, SampleRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, span := p.Tracer(tracing.Scope).Start(context.Background(), "work")
	span.End()
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if posts.Load() == 0 {
		t.Error("no OTLP export reached the collector")
	}

	off, err := tracing.New(context.Background(), tracing.Config{Service: "thing"})
	if err != nil {
		t.Fatal(err)
	}
	if _, span := off.Tracer(tracing.Scope).Start(context.Background(), "work"); span.IsRecording() {
		t.Error("a provider without an endpoint records")
	}
}

func TestContextRoundTrips(t *testing.T) {
	if tracing.ToMap(context.Background()) != nil {
		t.Error("tracing.ToMap outside any trace is not nil")
	}
	if _, ok := tracing.ToJSON(context.Background()); ok {
		t.Error("tracing.ToJSON outside any trace says there is one")
	}
	provider := sdktrace.NewTracerProvider()
	ctx, span := provider.Tracer("test").Start(context.Background(), "producer")
	defer span.End()
	stored, ok := tracing.ToJSON(ctx)
	if !ok {
		t.Fatal("tracing.ToJSON inside a span found no trace context")
	}
	got := tracing.FromJSON(context.Background(), stored)
	if sc := trace.SpanContextFromContext(got); sc.TraceID() != span.SpanContext().TraceID() || sc.SpanID() != span.SpanContext().SpanID() || !sc.IsRemote() {
		t.Errorf("tracing.FromJSON(%s) = %v, want the producer's span, remote", stored, sc)
	}
	if tracing.FromJSON(context.Background(), "not json") != context.Background() {
		t.Error("tracing.FromJSON of garbage changed the context")
	}

	// Start continues the span in ctx with its provider, and makes nothing
	// outside one.
	_, child := tracing.Start(ctx, "child")
	if !child.IsRecording() || child.SpanContext().TraceID() != span.SpanContext().TraceID() {
		t.Errorf("Start under a span: recording %v, trace %v", child.IsRecording(), child.SpanContext().TraceID())
	}
	if _, orphan := tracing.Start(context.Background(), "orphan"); orphan.IsRecording() || orphan.SpanContext().IsValid() {
		t.Error("Start outside any trace made a span")
	}
}

// Redis commands sent inside a recording span are spans of their own (a
// miss is no failure), and commands outside any trace make none.
func TestRedisHook(t *testing.T) {
	rdb := testkit.Redis(t)
	rdb.AddHook(tracing.RedisHook())
	recorder := tracetest.NewSpanRecorder()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))

	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	ctx, parent := provider.Tracer("test").Start(context.Background(), "request")
	if err := rdb.Get(ctx, "tracing-test:missing").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET: %v", err)
	}
	if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Ping(ctx)
		p.Ping(ctx)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	parent.End()

	var names []string
	for _, s := range recorder.Ended() {
		if s.Name() == "request" {
			continue
		}
		names = append(names, s.Name())
		if s.Parent().SpanID() != parent.SpanContext().SpanID() || s.Status().Code.String() == "Error" {
			t.Errorf("span %s: parent %v, status %v; want a success under the request", s.Name(), s.Parent(), s.Status())
		}
	}
	if len(names) != 2 || names[0] != "redis get" || names[1] != "redis pipeline ping" {
		t.Errorf("spans %q, want the GET and the pipeline only (not the PING outside the trace)", names)
	}
}
