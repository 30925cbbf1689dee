package discovery

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/kit/endpoint"
	"github.com/go-kit/kit/sd"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/mercato-dev/mercato/shared/tracing"
)

// traceparents is an instance that answers status and records the
// traceparent header of every request it gets.
type traceparents struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen []string
}

func newTraceparents(t *testing.T, status int) *traceparents {
	t.Helper()
	tp := &traceparents{}
	tp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tp.mu.Lock()
		tp.seen = append(tp.seen, r.Header.Get("traceparent"))
		tp.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(thingResponse{Server: r.Host})
	}))
	t.Cleanup(tp.srv.Close)
	return tp
}

func (tp *traceparents) headers() []string {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return append([]string(nil), tp.seen...)
}

func attr(s sdktrace.ReadOnlySpan, key attribute.Key) attribute.Value {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// A call inside a trace makes one client span per attempt, each sending its
// own span as the instance's parent: a GET answered 503 by one instance
// and retried on the other shows as attempts 1 and 2 under the caller's
// span, the first failed.
func TestAttemptSpans(t *testing.T) {
	unavailable, good := newTraceparents(t, http.StatusServiceUnavailable), newTraceparents(t, http.StatusOK)
	recorder := tracetest.NewSpanRecorder()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))

	c := NewClient(sd.FixedInstancer{unavailable.srv.Listener.Addr().String(), good.srv.Listener.Addr().String()},
		"things", testLogger(), Options{RequestVolumeThreshold: 1000}, NewHTTPClient())
	enc := func(_ context.Context, r *http.Request, _ any) error { r.URL.Path = "/thing/1"; return nil }
	dec := func(_ context.Context, resp *http.Response) (any, error) {
		if err := CheckResponse(resp); err != nil {
			return nil, err
		}
		var out thingResponse
		return out, json.NewDecoder(resp.Body).Decode(&out)
	}
	e := c.Endpoint(http.MethodGet, enc, dec, nil)

	// Round robin: of two calls, one starts at the instance answering 503.
	var parents []trace.SpanContext
	for range 2 {
		ctx, parent := provider.Tracer("test").Start(context.Background(), "caller")
		if _, err := e(ctx, struct{}{}); err != nil {
			t.Fatalf("call: %v", err)
		}
		parent.End()
		parents = append(parents, parent.SpanContext())
	}

	attempts := map[trace.SpanID][]sdktrace.ReadOnlySpan{}
	for _, s := range recorder.Ended() {
		if s.Name() == "GET things" {
			attempts[s.Parent().SpanID()] = append(attempts[s.Parent().SpanID()], s)
		}
	}
	var retried []sdktrace.ReadOnlySpan
	for _, p := range parents {
		switch n := len(attempts[p.SpanID()]); n {
		case 1:
		case 2:
			retried = attempts[p.SpanID()]
		default:
			t.Fatalf("a call made %d attempt spans, want 1 or 2: %v", n, attempts)
		}
	}
	if retried == nil {
		t.Fatal("no call shows two attempt spans, though one must have met the instance answering 503")
	}
	first, second := retried[0], retried[1]
	if attr(first, tracing.AttemptKey).AsInt64() != 1 || attr(second, tracing.AttemptKey).AsInt64() != 2 {
		t.Errorf("attempt numbers %v and %v, want 1 and 2", attr(first, tracing.AttemptKey), attr(second, tracing.AttemptKey))
	}
	if first.Status().Code.String() != "Error" || attr(first, "http.response.status_code").AsInt64() != 503 {
		t.Errorf("first attempt: status %v, code %v; want an error answered 503", first.Status(), attr(first, "http.response.status_code"))
	}
	if second.Status().Code.String() == "Error" || attr(second, "http.response.status_code").AsInt64() != 200 {
		t.Errorf("second attempt: status %v, code %v; want a success answered 200", second.Status(), attr(second, "http.response.status_code"))
	}
	if attr(first, tracing.PeerServiceKey).AsString() != "things" || attr(first, "url.path").AsString() != "/thing/1" {
		t.Errorf("attempt attributes %v", first.Attributes())
	}

	// Each instance saw the span of the attempt it served as its parent.
	sent := map[string]bool{}
	for _, h := range append(unavailable.headers(), good.headers()...) {
		sent[h] = true
	}
	for _, s := range []sdktrace.ReadOnlySpan{first, second} {
		want := "00-" + s.SpanContext().TraceID().String() + "-" + s.SpanContext().SpanID().String() + "-01"
		if !sent[want] {
			t.Errorf("no instance got traceparent %s; got %v", want, sent)
		}
	}
}

// An attempt the breaker refuses is a span too, saying why, so an open
// breaker shows in the trace of the calls it turned away.
func TestBreakerRejectionSpan(t *testing.T) {
	bad := newBackend(t, http.StatusServiceUnavailable)
	recorder := tracetest.NewSpanRecorder()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
	opts := Options{RequestVolumeThreshold: 2, ErrorPercentThreshold: 1, SleepWindow: time.Minute, MaxAttempts: 1}
	e := NewEndpoint(sd.FixedInstancer{bad.addr()}, "rejecting", thingFactory(http.MethodGet, "", nil), testLogger(), opts)
	ready(t, e, bad)

	eventually(t, 5*time.Second, "a call the breaker rejects", func() bool {
		ctx, parent := provider.Tracer("test").Start(context.Background(), "caller")
		_, _ = e(ctx, struct{}{})
		parent.End()
		for _, s := range recorder.Ended() {
			if attr(s, tracing.BreakerKey).AsString() == "circuit_open" {
				if s.Status().Code.String() != "Error" || s.Name() != "rejecting" {
					t.Errorf("rejected attempt: name %q, status %v", s.Name(), s.Status())
				}
				return true
			}
		}
		return false
	})
}

// An attempt at a request the gateway relays is named by the request's
// method, but only by one of HTTP's: net/http takes any token as a method,
// and a span name per made-up method is a name per request.
func TestAttemptSpanOfAMadeUpMethod(t *testing.T) {
	recorder := tracetest.NewSpanRecorder()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
	relay := func(string) (endpoint.Endpoint, io.Closer, error) {
		return func(context.Context, any) (any, error) { return struct{}{}, nil }, nil, nil
	}
	e := NewEndpoint(sd.FixedInstancer{"127.0.0.1:1"}, "things", relay, testLogger(), Options{})
	for _, method := range []string{http.MethodPatch, "X1"} {
		ctx, parent := provider.Tracer("test").Start(context.Background(), "caller")
		if _, err := e(ctx, httptest.NewRequest(method, "/thing/1", nil)); err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		parent.End()
	}
	var names []string
	for _, s := range recorder.Ended() {
		if s.Name() != "caller" {
			names = append(names, s.Name())
		}
	}
	if want := []string{"PATCH things", "_OTHER things"}; !slices.Equal(names, want) {
		t.Errorf("attempt spans %q, want %q", names, want)
	}
}
