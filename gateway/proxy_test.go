package gateway

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/httpkit"
	"github.com/mercato-dev/mercato/shared/requestid"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// rawUpstream is a fake product-service instance answering with h.
func rawUpstream(t *testing.T, h http.HandlerFunc) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return (&upstream{Server: srv}).hostPort()
}

// serve runs the gateway on a real loopback server, as in production, so
// that aborted answers abort the connection.
func (f fixture) serve(t *testing.T) string {
	srv := httptest.NewServer(f.handler)
	t.Cleanup(srv.Close)
	return srv.URL
}

// framing is how an upstream's answer tells where its body ends.
type framing struct {
	name       string
	withLength bool // Content-Length; else chunked
}

var framings = []framing{{"with Content-Length", true}, {"chunked", false}}

// frame declares a JSON answer of size bytes, framed as f says.
func (f framing) frame(w http.ResponseWriter, size int) {
	w.Header().Set("Content-Type", "application/json")
	if f.withLength {
		w.Header().Set("Content-Length", strconv.Itoa(size))
	}
}

// Answers pass whole whatever their size; the gateway once cut them at
// 10 MiB, dropped Content-Length and answered 200 with truncated JSON.
func TestLargeAnswerArrivesWhole(t *testing.T) {
	const size = 24 << 20 // well over the old 10 MiB cap
	payload := bytes.Repeat([]byte(`{"id":"0123456789abcdef"},`), size/26+1)[:size]
	want := sha256.Sum256(payload)
	for _, tc := range framings {
		t.Run(tc.name, func(t *testing.T) {
			up := rawUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
				tc.frame(w, size)
				// One Write of more than net/http's buffer is sent chunked
				// when no length is declared.
				_, _ = w.Write(payload)
			})
			f := newGatewayWith(t, gatewayOptions{rdb: testkit.Redis(t), limit: generous, timeout: 20 * time.Second}, up)
			resp, err := http.Get(f.serve(t) + "/api/v1/products")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("reading the answer after %d bytes: %v", len(body), err)
			}
			if resp.StatusCode != http.StatusOK || len(body) != size || sha256.Sum256(body) != want {
				t.Fatalf("got %d with %d bytes, want 200 with the upstream's %d", resp.StatusCode, len(body), size)
			}
			wantLength := int64(-1)
			if tc.withLength {
				wantLength = size
			}
			if resp.ContentLength != wantLength {
				t.Fatalf("Content-Length %d, want %d", resp.ContentLength, wantLength)
			}
		})
	}
}

// An answer that breaks off after its headers reaches the client as broken,
// never as a complete-looking answer, and the gateway says so in its log.
func TestAnswerBrokenOffMidwayAbortsTheClientsConnection(t *testing.T) {
	for _, tc := range framings {
		t.Run(tc.name, func(t *testing.T) {
			up := rawUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
				tc.frame(w, 100000)
				_, _ = w.Write(bytes.Repeat([]byte("x"), 50000))
				http.NewResponseController(w).Flush()
				panic(http.ErrAbortHandler) // the instance dies mid-answer
			})
			logs := &testkit.LogBuffer{}
			f := newGatewayWith(t, gatewayOptions{rdb: testkit.Redis(t), limit: generous, logger: logTo(logs)}, up)
			resp, err := http.Get(f.serve(t) + "/api/v1/products")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err == nil {
				t.Fatalf("the client read a complete-looking %d answer of %d bytes", resp.StatusCode, len(body))
			}
			waitForLog(t, logs, "forwarding aborted midway")
		})
	}
}

// Answers of unknown length (server-sent events, a long chunked list) are
// flushed as they arrive instead of held until the upstream is done.
func TestStreamedAnswerIsFlushed(t *testing.T) {
	release := make(chan struct{})
	up := rawUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: first\n\n")
		http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-time.After(5 * time.Second):
		}
		_, _ = io.WriteString(w, "data: last\n\n")
	})
	f := newGatewayWith(t, gatewayOptions{rdb: testkit.Redis(t), limit: generous, timeout: 10 * time.Second}, up)
	addr := f.serve(t) + "/api/v1/products"
	first := make(chan string, 1)
	go func() {
		defer close(first)
		resp, err := http.Get(addr)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		line, _ := bufio.NewReader(resp.Body).ReadString('\n')
		first <- line
	}()
	select {
	case line := <-first:
		if line != "data: first\n" {
			t.Fatalf("first line %q", line)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the first event was held back until the upstream finished")
	}
	close(release)
}

// End-to-end headers pass; hop-by-hop ones, those the upstream's Connection
// header names included, stay between gateway and instance; the request id
// is the gateway's alone.
func TestAnswerHeaders(t *testing.T) {
	up := rawUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Location", "/api/v1/products/p1")
		h.Set("ETag", `"v1"`)
		h.Set("Connection", "X-Instance-Secret")
		h.Set("X-Instance-Secret", "s")
		h.Set("Keep-Alive", "timeout=5")
		h.Set(requestid.Header, "upstream-made-this-up")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{}`)
	})
	f := newGateway(t, testkit.Redis(t), generous, up)
	rec := f.do(t, "GET", "/api/v1/products/p1", "", "", requestid.Header, "rid-7")
	h := rec.Header()
	if rec.Code != http.StatusCreated || h.Get("Location") != "/api/v1/products/p1" || h.Get("ETag") != `"v1"` {
		t.Fatalf("end-to-end headers lost: %d %v", rec.Code, h)
	}
	if h.Get("X-Instance-Secret") != "" || h.Get("Keep-Alive") != "" || h.Get("Connection") != "" {
		t.Fatalf("hop-by-hop headers passed on: %v", h)
	}
	if ids := h.Values(requestid.Header); len(ids) != 1 || ids[0] != "rid-7" {
		t.Fatalf("request id %q, want the gateway's alone", ids)
	}
}

// The query reaches the service as the client sent it, so that one that
// does not parse is the service's 400 malformed_query: ReverseProxy dropped
// the bad pairs, and ?status=pending;x listed every order, unfiltered.
func TestQueryForwardedAsSent(t *testing.T) {
	up := newUpstream(t, http.StatusOK)
	f := newGateway(t, testkit.Redis(t), generous, up.hostPort())
	token, err := f.tokens.Issue(auth.Identity{UserID: "u1", Role: auth.RoleCustomer})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, last, want string }{
		{"/api/v1/products?page=%zz", "", "page=%zz"},
		{"/api/v1/orders?status=pending;x", "", "status=pending;x"},
		{"/api/v1/products?a=1&b=%", "", "a=1&b=%"},
		// The stream's Last-Event-ID is appended to the query as sent, in
		// place of a last_event_id there: a reconnecting EventSource sends
		// the header with the id it got to, its URL's stays where it began.
		{"/api/v1/orders/o1/events?x=%zz", "7-0", "x=%zz&last_event_id=7-0"},
		{"/api/v1/orders/o1/events", "7-0", "last_event_id=7-0"},
		{"/api/v1/orders/o1/events?last_event_id=6-0", "7-0", "last_event_id=7-0"},
		{"/api/v1/orders/o1/events?last_event_id=&x=1", "7-0", "x=1&last_event_id=7-0"},
		{"/api/v1/orders/o1/events?last_event_id=6-0", "", "last_event_id=6-0"},
	} {
		rec := f.do(t, "GET", tc.path, token, "", "Last-Event-ID", tc.last)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", tc.path, rec.Code, rec.Body)
		}
		up.mu.Lock()
		got := up.requests[len(up.requests)-1].URL.RawQuery
		up.mu.Unlock()
		if got != tc.want {
			t.Errorf("%s: the service got ?%s, want ?%s", tc.path, got, tc.want)
		}
	}
}

// A request keeps its Idempotency-Key, and with it a retry after a 502-504,
// only on the routes whose service honours the key (Route.Idempotent).
// Elsewhere the key made the gateway send a stock adjustment, or a refresh
// token (reused, so the session was revoked), twice.
func TestIdempotencyKeyOnlyWhereHonoured(t *testing.T) {
	for _, tc := range []struct {
		path      string
		wantCalls int
		wantKey   string
	}{
		{"/api/v1/products/p1/stock", 1, ""},
		{"/api/v1/auth/refresh", 1, ""},
		{"/api/v1/orders", 2, "k1"},
		{"/api/v1/payments/p1/refunds", 2, "k1"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			var (
				mu   sync.Mutex
				keys []string
			)
			up := rawUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				keys = append(keys, r.Header.Get("Idempotency-Key"))
				first := len(keys) == 1
				mu.Unlock()
				if first { // restarting: another attempt may succeed
					httpkit.WriteError(w, httpkit.Unavailable("starting"))
					return
				}
				httpkit.WriteJSON(w, http.StatusOK, map[string]string{})
			})
			f := newGateway(t, testkit.Redis(t), generous, up)
			token, err := f.tokens.Issue(auth.Identity{UserID: "u1", Role: auth.RoleAdmin})
			if err != nil {
				t.Fatal(err)
			}
			f.do(t, "POST", tc.path, token, `{}`, "Idempotency-Key", "k1")
			mu.Lock()
			defer mu.Unlock()
			if len(keys) != tc.wantCalls || keys[0] != tc.wantKey {
				t.Fatalf("the service got %d calls with keys %q, want %d with %q", len(keys), keys, tc.wantCalls, tc.wantKey)
			}
		})
	}
}

// A 5xx that is the service's own answer (a Mercato error with a code of
// its own) reaches the client as it is, once: the payment service's 502
// payment_provider_error was the gateway's upstream_error, sent three times
// and counted against the instance. A failure of the instance is still the
// gateway's own error.
func TestServicesOwn5xxIsRelayed(t *testing.T) {
	for _, tc := range []struct {
		name     string
		answer   *httpkit.Error
		wantCode string
		wantSent int
		relayed  bool
	}{
		{"a domain error", httpkit.NewError(http.StatusBadGateway, "payment_provider_error", "the payment provider failed; retry later"), "payment_provider_error", 1, true},
		{"a bug", httpkit.Internal(), "upstream_error", 1, false},
		{"cannot serve now", httpkit.Unavailable("a server this request needs is unavailable"), "service_unavailable", 3, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				mu   sync.Mutex
				sent int
			)
			up := rawUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
				mu.Lock()
				sent++
				mu.Unlock()
				httpkit.WriteError(w, tc.answer)
			})
			f := newGateway(t, testkit.Redis(t), generous, up)
			token, err := f.tokens.Issue(auth.Identity{UserID: "a1", Role: auth.RoleAdmin})
			if err != nil {
				t.Fatal(err)
			}
			rec := f.do(t, "POST", "/api/v1/payments/p1/refunds", token, `{}`, "Idempotency-Key", "k1")
			mu.Lock()
			defer mu.Unlock()
			if code := errorCode(t, rec); code != tc.wantCode || sent != tc.wantSent {
				t.Fatalf("got %d %s after %d attempts, want %s after %d", rec.Code, code, sent, tc.wantCode, tc.wantSent)
			}
			if tc.relayed && (rec.Code != tc.answer.Status || !strings.Contains(rec.Body.String(), tc.answer.Message)) {
				t.Fatalf("relayed %d %s, want the service's answer", rec.Code, rec.Body)
			}
		})
	}
}

// A stream ends as streams do, when its client goes or when the gateway's
// shutdown begins (CloseStreams): the request is logged like any other, with
// no "aborted" warning, and a stream the gateway closes ends cleanly for its
// client. Before, every stream a client closed was an "aborted midway"
// warning and no request line, and an open stream held the gateway's
// graceful shutdown for its whole drain timeout, which then failed.
func TestStreamsEndWhenTheClientGoesOrTheGatewayStops(t *testing.T) {
	up := rawUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "retry: 2000\n\n")
		http.NewResponseController(w).Flush()
		<-r.Context().Done() // an order instance that is not shutting down
	})
	logs := &testkit.LogBuffer{}
	f := newGatewayWith(t, gatewayOptions{rdb: testkit.Redis(t), limit: generous, logger: logTo(logs)}, up)
	addr := f.serve(t)
	token, err := f.tokens.Issue(auth.Identity{UserID: "u1", Role: auth.RoleCustomer})
	if err != nil {
		t.Fatal(err)
	}
	open := func() *http.Response {
		t.Helper()
		req, err := http.NewRequest("GET", addr+"/api/v1/orders/o1/events", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if line, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || line != "retry: 2000\n" {
			t.Fatalf("stream: %d %q %v", resp.StatusCode, line, err)
		}
		return resp
	}

	open().Body.Close() // the browser tab closes
	waitForLog(t, logs, `msg="http request"`)

	resp := open()
	defer resp.Body.Close()
	ended := make(chan error, 1)
	go func() { _, err := io.ReadAll(resp.Body); ended <- err }()
	f.gateway.CloseStreams()
	select {
	case err := <-ended:
		if err != nil {
			t.Fatalf("the stream the gateway closed broke off: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream stayed open after CloseStreams")
	}
	waitForCount(t, logs, `msg="http request"`, 2)
	if strings.Contains(logs.String(), "aborted") {
		t.Fatalf("a stream's end was logged as an abort:\n%s", logs)
	}
}

// A stream the gateway's shutdown ends before its answer's headers came
// (CloseStreams while the instance is still opening it, or a stream opened
// after it, while the server still serves) is 503 with a Retry-After, as
// any answer of an instance that cannot serve now: its client reconnects,
// to another gateway. Before, it was 499 client_closed_request, a 4xx of a
// client that was still there, on which the storefront's watchOrder stops
// following the order for good.
func TestStreamsRefusedAtShutdownAreRetried(t *testing.T) {
	opening := make(chan struct{}, 1)
	up := rawUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		opening <- struct{}{}
		<-r.Context().Done() // slow to answer: the gateway's shutdown comes first
	})
	f := newGateway(t, testkit.Redis(t), generous, up)
	token, err := f.tokens.Issue(auth.Identity{UserID: "u1", Role: auth.RoleCustomer})
	if err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, rec *httptest.ResponseRecorder) {
		t.Helper()
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
			t.Fatalf("stream ended by the shutdown: %d %s (Retry-After %q), want 503 with a Retry-After",
				rec.Code, rec.Body, rec.Header().Get("Retry-After"))
		}
	}
	t.Run("while opening", func(t *testing.T) {
		done := make(chan *httptest.ResponseRecorder, 1)
		go func() { done <- f.do(t, "GET", "/api/v1/orders/o1/events", token, "") }()
		select {
		case <-opening:
		case <-time.After(5 * time.Second):
			t.Fatal("the stream did not reach the instance")
		}
		f.gateway.CloseStreams()
		select {
		case rec := <-done:
			check(t, rec)
		case <-time.After(5 * time.Second):
			t.Fatal("the stream stayed open after CloseStreams")
		}
	})
	t.Run("opened after", func(t *testing.T) {
		check(t, f.do(t, "GET", "/api/v1/orders/o1/events", token, ""))
	})
}

// A stream is counted under a route of its own, apart from the order
// service's other requests (route "/api/v1/orders/"): it stays open for as
// long as the client watches, so its duration says nothing of how fast the
// gateway answers, and the latency SLO (deploy/prometheus/alerts.yml: the
// share of requests slower than 500 ms) leaves it out by that route.
// Before, every stream a storefront opened counted as one slow order
// request.
func TestStreamsAreCountedUnderTheirOwnRoute(t *testing.T) {
	up := rawUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/events") {
			httpkit.WriteJSON(w, http.StatusOK, map[string]string{"id": "o1"})
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "retry: 2000\n\n")
		http.NewResponseController(w).Flush()
		time.Sleep(600 * time.Millisecond) // the client watches, then the instance ends it
	})
	f := newGateway(t, testkit.Redis(t), generous, up)
	token, err := f.tokens.Issue(auth.Identity{UserID: "u1", Role: auth.RoleCustomer})
	if err != nil {
		t.Fatal(err)
	}
	if rec := f.do(t, "GET", "/api/v1/orders/o1", token, ""); rec.Code != http.StatusOK {
		t.Fatalf("GET order: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(t, "GET", "/api/v1/orders/o1/events", token, ""); rec.Code != http.StatusOK || !strings.HasPrefix(rec.Body.String(), "retry: 2000") {
		t.Fatalf("stream: %d %q", rec.Code, rec.Body)
	}
	metrics := f.do(t, "GET", "/metrics", "", "").Body.String()
	for _, want := range []string{
		`http_request_duration_seconds_count{code="200",method="GET",route="/api/v1/orders/{id}/events",service="gateway"} 1`,
		`http_request_duration_seconds_count{code="200",method="GET",route="/api/v1/orders/",service="gateway"} 1`,
		`http_request_duration_seconds_bucket{code="200",method="GET",route="/api/v1/orders/",service="gateway",le="0.5"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s; the gateway's order series:\n%s", want, grepLines(metrics, `route="/api/v1/orders`))
		}
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && (!strings.Contains(l, "_bucket") || strings.Contains(l, `le="0.5"`)) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
