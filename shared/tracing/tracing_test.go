package tracing_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

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

// New with an endpoint exports over OTLP/HTTP to /v1/traces, in protobuf,
// retrying while the collector is unavailable; Shutdown flushes what is
// queued. Without one nothing records.
func TestNewExportsToTheCollector(t *testing.T) {
	var posts atomic.Int64
	spans := make(chan string, 10)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "not an OTLP/HTTP protobuf export", http.StatusBadRequest)
			return
		}
		if posts.Add(1) == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(r.Body)
		for len(body) > 0 {
			num, typ, n := protowire.ConsumeTag(body)
			if n < 0 || num != 1 || typ != protowire.BytesType {
				t.Errorf("export request: field %d type %d, want resource_spans (1, bytes)", num, typ)
				return
			}
			msg, m := protowire.ConsumeBytes(body[n:])
			body = body[n+m:]
			var rs tracepb.ResourceSpans
			if err := proto.Unmarshal(msg, &rs); err != nil {
				t.Errorf("resource_spans: %v", err)
				return
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					spans <- s.GetName()
				}
			}
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
	close(spans)
	var got []string
	for s := range spans {
		got = append(got, s)
	}
	if len(got) != 1 || got[0] != "work" || posts.Load() != 2 {
		t.Errorf("collector got spans %q in %d posts; want [work], the second post after a 503", got, posts.Load())
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

// A collector that accepts connections and never answers holds up neither
// spans (the queue drops what does not fit) nor Shutdown past its context.
func TestHungCollectorBlocksNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	p, err := tracing.New(context.Background(), tracing.Config{Service: "thing", Endpoint: ln.Addr().String(), SampleRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	for range 5000 { // more than the queue holds
		_, span := p.Tracer(tracing.Scope).Start(context.Background(), "work")
		span.End()
	}
	if took := time.Since(begin); took > 10*time.Second { // a bound on a hang, not a speed: normally milliseconds
		t.Errorf("5000 spans took %v with a hung collector", took)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	begin = time.Now()
	_ = p.Shutdown(ctx)
	if took := time.Since(begin); took > 5*time.Second { // a hang's bound, ten times the context
		t.Errorf("Shutdown took %v with a 500ms context", took)
	}
}
