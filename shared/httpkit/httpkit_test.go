package httpkit

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mercato-dev/mercato/shared/metrics"
	"github.com/mercato-dev/mercato/shared/requestid"
)

type errBody struct {
	Error struct {
		Code    string         `json:"code"`
		Message string         `json:"message"`
		Details map[string]any `json:"details"`
	} `json:"error"`
}

func decodeErr(t *testing.T, rec *httptest.ResponseRecorder) errBody {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type = %q, want JSON", ct)
	}
	var b errBody
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, rec.Body)
	}
	return b
}

func TestDecodeJSON(t *testing.T) {
	type target struct {
		Name  string `json:"name"`
		Count int    `json:"count"`
	}
	tests := []struct {
		name, body, contentType string
		wantStatus              int
		wantCode                string
	}{
		{"ok", `{"name":"a","count":2}`, "application/json", 0, ""},
		{"no content type is accepted", `{"name":"a"}`, "", 0, ""},
		{"empty", ``, "application/json", 400, "empty_body"},
		{"syntax", `{"name":`, "application/json", 400, "malformed_json"},
		{"garbage", `{"name" "a"}`, "application/json", 400, "malformed_json"},
		{"wrong type", `{"count":"two"}`, "application/json", 400, "invalid_type"},
		{"unknown field", `{"nmae":"a"}`, "application/json", 400, "unknown_field"},
		{"two values", `{"name":"a"}{"name":"b"}`, "application/json", 400, "malformed_json"},
		{"not json", `name=a`, "application/x-www-form-urlencoded", 415, "unsupported_media_type"},
		{"too large", `{"name":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, "application/json", 413, "body_too_large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
			if tc.contentType != "" {
				r.Header.Set("Content-Type", tc.contentType)
			}
			var dst target
			err := DecodeJSON(r, &dst)
			if tc.wantStatus == 0 {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("want *Error, got %v", err)
			}
			if e.Status != tc.wantStatus || e.Code != tc.wantCode {
				t.Fatalf("got %d %s, want %d %s", e.Status, e.Code, tc.wantStatus, tc.wantCode)
			}
		})
	}
}

func TestDecodeOptionalJSON(t *testing.T) {
	type reason struct {
		Reason string `json:"reason"`
	}
	tests := []struct {
		name, body, contentType string
		want                    string
		wantStatus              int
		wantCode                string
	}{
		{"body", `{"reason":"late"}`, "application/json", "late", 0, ""},
		{"no body", ``, "", "kept", 0, ""},
		{"blank body", " \n\t", "application/json", "kept", 0, ""},
		{"malformed", `{`, "application/json", "", 400, "malformed_json"},
		{"unknown field", `{"why":"x"}`, "application/json", "", 400, "unknown_field"},
		{"not JSON", `reason=late`, "application/x-www-form-urlencoded", "", 415, "unsupported_media_type"},
		{"too large", `{"reason":"` + strings.Repeat("r", MaxBodyBytes) + `"}`, "application/json", "", 413, "body_too_large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
			if tc.contentType != "" {
				r.Header.Set("Content-Type", tc.contentType)
			}
			dst := reason{Reason: "kept"}
			err := DecodeOptionalJSON(r, &dst)
			if status, code := statusOf(t, err); status != tc.wantStatus || code != tc.wantCode {
				t.Fatalf("got %d %s (%v), want %d %s", status, code, err, tc.wantStatus, tc.wantCode)
			}
			if err == nil && dst.Reason != tc.want {
				t.Errorf("reason = %q, want %q", dst.Reason, tc.want)
			}
		})
	}
}

func TestReadBody(t *testing.T) {
	tests := []struct {
		name       string
		body       io.Reader
		want       string
		wantStatus int
		wantCode   string
	}{
		{"byte for byte", strings.NewReader(" {\"a\": 1}\n"), " {\"a\": 1}\n", 0, ""},
		{"empty", strings.NewReader(""), "", 0, ""},
		{"largest", strings.NewReader(strings.Repeat("x", MaxBodyBytes)), strings.Repeat("x", MaxBodyBytes), 0, ""},
		{"too large", strings.NewReader(strings.Repeat("x", MaxBodyBytes+1)), "", 413, "body_too_large"},
		{"unreadable", iotest.ErrReader(errors.New("connection reset")), "", 400, "unreadable_body"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body, err := ReadBody(httptest.NewRequest(http.MethodPost, "/", tc.body))
			if status, code := statusOf(t, err); status != tc.wantStatus || code != tc.wantCode {
				t.Fatalf("got %d %s (%v), want %d %s", status, code, err, tc.wantStatus, tc.wantCode)
			}
			if string(body) != tc.want {
				t.Errorf("body = %.40q, want %.40q", body, tc.want)
			}
		})
	}
}

var errThingNotFound = errors.New("thing not found")

type codedErr struct{}

func (codedErr) Error() string     { return "slow down" }
func (codedErr) StatusCode() int   { return 429 }
func (codedErr) ErrorCode() string { return "rate_limited" }

func TestErrorEncoder(t *testing.T) {
	enc := ErrorEncoder(log.NewNopLogger(), ErrorMapping{Err: errThingNotFound, Status: 404, Code: "not_found"})
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantCode   string
	}{
		{"mapped with errors.Is", fmt.Errorf("load: %w", errThingNotFound), 404, "not_found"},
		{"httpkit error", Invalid(map[string]string{"email": "required"}), 422, "validation_failed"},
		{"coded error", fmt.Errorf("wrapped: %w", codedErr{}), 429, "rate_limited"},
		{"unknown is 500 without internals", errors.New("pq: password authentication failed"), 500, "internal_error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			enc(context.Background(), tc.err, rec)
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d", rec.Code, tc.wantStatus)
			}
			b := decodeErr(t, rec)
			if b.Error.Code != tc.wantCode {
				t.Fatalf("code %q, want %q", b.Error.Code, tc.wantCode)
			}
			if strings.Contains(rec.Body.String(), "pq:") {
				t.Fatalf("internal error leaked: %s", rec.Body)
			}
		})
	}
}

func TestIsClientError(t *testing.T) {
	errUpstreamDown := errors.New("upstream down")
	mappings := []ErrorMapping{
		{Err: errThingNotFound, Status: 404, Code: "not_found"},
		{Err: errUpstreamDown, Status: 503, Code: "service_unavailable"},
	}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"mapped 4xx", fmt.Errorf("load: %w", errThingNotFound), true},
		{"mapped 5xx", fmt.Errorf("reserve: %w", errUpstreamDown), false},
		{"coded 4xx", fmt.Errorf("wrapped: %w", codedErr{}), true},
		{"coded 5xx", Unavailable("later"), false},
		{"coded wins over a mapping, as in ToError", fmt.Errorf("%w: %w", Internal(), errThingNotFound), false},
		{"unknown", errors.New("pq: connection refused"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsClientError(tc.err, mappings...); got != tc.want {
				t.Errorf("IsClientError(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestRetryAfterHeader(t *testing.T) {
	rec := httptest.NewRecorder()
	e := NewError(429, "rate_limited", "slow down")
	e.RetryAfter = 7
	WriteError(rec, e)
	if rec.Header().Get("Retry-After") != "7" || rec.Code != 429 {
		t.Fatalf("got %d Retry-After=%q", rec.Code, rec.Header().Get("Retry-After"))
	}
}

// delayedErr is a domain error that says when to retry.
type delayedErr struct{ wait time.Duration }

func (e delayedErr) Error() string             { return "throttled" }
func (e delayedErr) RetryAfter() time.Duration { return e.wait }

var errThrottled = errors.New("throttled")

func (e delayedErr) Is(target error) bool { return target == errThrottled }

// TestDelayedErrorRetryAfter: a mapped domain error with RetryAfter() gets
// the Retry-After header, in whole seconds rounded up and at least 1.
func TestDelayedErrorRetryAfter(t *testing.T) {
	m := ErrorMapping{Err: errThrottled, Status: 429, Code: "login_throttled"}
	for wait, want := range map[time.Duration]int{1500 * time.Millisecond: 2, time.Millisecond: 1, 8 * time.Second: 8} {
		e := ToError(context.Background(), log.NewNopLogger(), fmt.Errorf("login: %w", delayedErr{wait}), m)
		if e.Status != 429 || e.Code != "login_throttled" || e.RetryAfter != want {
			t.Errorf("wait %v: %d %s Retry-After %d, want 429 login_throttled %d", wait, e.Status, e.Code, e.RetryAfter, want)
		}
	}
}

func TestRouterRequestIDMetricsAndRecovery(t *testing.T) {
	reg := metrics.NewRegistry()
	m := metrics.NewHTTP(reg, "test")
	ready := map[string]Check{"db": func(context.Context) error { return errors.New("down") }}
	r := Router(log.NewNopLogger(), reg, m, ready)
	r.Methods("GET").Path("/things/{id}").HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, 200, map[string]string{"request_id": requestid.FromContext(r.Context())})
	})
	r.Methods("GET").Path("/boom").HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })
	h := Handler(log.NewNopLogger(), r)

	// A sane client id is echoed and reaches the handler.
	req := httptest.NewRequest("GET", "/things/42", nil)
	req.Header.Set(requestid.Header, "client-id-1")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Header().Get(requestid.Header) != "client-id-1" || !strings.Contains(rec.Body.String(), "client-id-1") {
		t.Fatalf("request id not echoed: %v %s", rec.Header(), rec.Body)
	}

	// An insane one is replaced.
	req = httptest.NewRequest("GET", "/things/42", nil)
	req.Header.Set(requestid.Header, "bad id with spaces")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if got := rec.Header().Get(requestid.Header); got == "" || got == "bad id with spaces" {
		t.Fatalf("bad request id kept: %q", got)
	}

	for path, want := range map[string]int{"/boom": 500, "/nope": 404, "/health": 200, "/ready": 503} {
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != want {
			t.Errorf("%s: status %d, want %d", path, rec.Code, want)
		}
		if path != "/health" && path != "/ready" {
			decodeErr(t, rec)
		}
		if rec.Header().Get(requestid.Header) == "" {
			t.Errorf("%s: no request id", path)
		}
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/health", nil))
	if rec.Code != 405 {
		t.Errorf("POST /health: %d, want 405", rec.Code)
	}

	// Metrics are labelled by route template, not raw path.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, mf := range mfs {
		if mf.GetName() != "http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["route"] == "/things/42" {
				t.Errorf("raw path used as route label")
			}
			if labels["route"] == "/things/{id}" && labels["code"] == "200" && labels["service"] == "test" {
				found = m.GetCounter().GetValue() == 2
			}
		}
	}
	if !found {
		t.Fatalf("http_requests_total{route=/things/{id},code=200} != 2")
	}
	if n := testutil.CollectAndCount(reg, "http_request_duration_seconds"); n == 0 {
		t.Fatal("no duration histogram")
	}
}

// TestMethodNotAllowedSaysWhatIsAllowed: a 405 names the methods the path
// is served with in Allow, as RFC 9110 requires of it, on a service's
// router and on an instance's admin port alike.
func TestMethodNotAllowedSaysWhatIsAllowed(t *testing.T) {
	reg := metrics.NewRegistry()
	r := Router(log.NewNopLogger(), reg, metrics.NewHTTP(reg, "test"), nil)
	ok := func(w http.ResponseWriter, _ *http.Request) { WriteJSON(w, 200, map[string]string{}) }
	r.Methods("GET").Path("/things/{id}").HandlerFunc(ok)
	r.Methods("PATCH", "DELETE").Path("/things/{id}").HandlerFunc(ok)
	r.Methods("POST").Path("/things").HandlerFunc(ok)
	r.Methods("POST").Path("/things/{id}/cancel").HandlerFunc(ok)
	for _, tc := range []struct {
		h            http.Handler
		method, path string
		allow        string
	}{
		{r, "PUT", "/things/42", "GET, PATCH, DELETE"},
		{r, "GET", "/things", "POST"},
		{r, "POST", "/things/42", "GET, PATCH, DELETE"}, // mux alone says 404: a later route takes POST
		{r, "DELETE", "/health", "GET"},
		{AdminRouter(reg, nil), "POST", "/metrics", "GET"},
	} {
		rec := httptest.NewRecorder()
		tc.h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		if rec.Code != 405 || rec.Header().Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d with Allow %q, want 405 with Allow %q", tc.method, tc.path, rec.Code, rec.Header().Get("Allow"), tc.allow)
		}
		decodeErr(t, rec)
	}
}

// A header with a control character is refused by net/http before any
// handler runs, with its own plain-text 400 and the connection closed: the
// one answer that is not JSON, documented as Go's behaviour in docs/api.md.
// This pins it, so a Go release that changes it shows up here and the page
// gets corrected.
func TestControlCharacterInHeaderIsGoPlainTextBadRequest(t *testing.T) {
	reached := make(chan struct{}, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached <- struct{}{} }))
	srv.Config = NewServer(srv.Config.Handler)
	srv.Start()
	defer srv.Close()
	for _, header := range []string{"X-A: a\x01b", "X\x01A: b", "Authorization: Bearer a\x7fb"} {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(conn, "GET /api/v1/users/me HTTP/1.1\r\nHost: x\r\n"+header+"\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%q: %v", header, err)
		}
		body, _ := io.ReadAll(resp.Body)
		conn.Close()
		if resp.StatusCode != http.StatusBadRequest || !resp.Close ||
			resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" || string(body) != "400 Bad Request" {
			t.Errorf("%q: %d %v %q, want Go's plain 400 Bad Request, connection closed", header, resp.StatusCode, resp.Header, body)
		}
	}
	select {
	case <-reached:
		t.Error("a request with a control character in a header reached the handler")
	default:
	}
}

// TestReadyNamesOnlyTheHungDependency: a dependency that hangs (its check
// runs to the end of /ready's 2 s) is the one /ready names; the others,
// which answer, are ok. Run one after another, in the map's random order,
// the checks after the hung one got a context already over and reported
// the deadline as their own failure: Redis "failing" whenever Consul or
// PostgreSQL hung. Three probes, so that the hung check is not last in
// every one of them.
func TestReadyNamesOnlyTheHungDependency(t *testing.T) {
	answers := func(ctx context.Context) error { return ctx.Err() }
	hangs := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	h := AdminRouter(metrics.NewRegistry(), map[string]Check{"consul": hangs, "db": answers, "redis": answers, "other": answers})
	for range 3 {
		begin := time.Now()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ready", nil))
		var body struct {
			Checks map[string]string `json:"checks"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(begin); rec.Code != http.StatusServiceUnavailable || body.Checks["consul"] == "ok" ||
			body.Checks["db"] != "ok" || body.Checks["redis"] != "ok" || body.Checks["other"] != "ok" || took > 3*time.Second {
			t.Fatalf("/ready with consul hung: %d %s after %s; want 503 naming consul alone", rec.Code, rec.Body, took.Round(100*time.Millisecond))
		}
	}
}
