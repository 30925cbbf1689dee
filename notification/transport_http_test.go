package notification_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/mercato-dev/mercato/notification"
	"github.com/mercato-dev/mercato/notification/postgres"
	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/httpkit"
	"github.com/mercato-dev/mercato/shared/metrics"
	"github.com/mercato-dev/mercato/shared/testkit"
)

const secret = "0123456789abcdef0123456789abcdef"

// stack is the notification service's HTTP API: real router, endpoints and
// service on a fresh, migrated database.
type stack struct {
	srv    *httptest.Server
	db     *sqlx.DB
	store  *postgres.Store
	tokens *auth.Tokens
}

func newStack(t testing.TB) *stack {
	t.Helper()
	db := testkit.Postgres(t)
	if err := postgres.Schema.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.NewTokens([]byte(secret), 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	store := postgres.New(db)
	logger := log.NewNopLogger()
	reg := metrics.NewRegistry()
	svc := notification.NewService(store)
	svc = notification.LoggingMiddleware(logger)(svc)
	svc = notification.InstrumentingMiddleware(notification.NewMetrics(reg))(svc)
	router := httpkit.Router(logger, reg, metrics.NewHTTP(reg, "notification"), nil)
	notification.MakeHTTPHandler(router, notification.MakeServerEndpoints(svc, tokens), logger)
	srv := httptest.NewServer(httpkit.Handler(logger, router))
	t.Cleanup(srv.Close)
	return &stack{srv: srv, db: db, store: store, tokens: tokens}
}

// userToken signs in a new customer.
func (s *stack) userToken(t testing.TB) (string, string) {
	t.Helper()
	id := uuid.NewString()
	tok, err := s.tokens.Issue(auth.Identity{UserID: id, Email: id[:8] + "@example.com", Role: auth.RoleCustomer})
	if err != nil {
		t.Fatal(err)
	}
	return id, tok
}

type response struct {
	status int
	body   map[string]any
	raw    string
}

func (s *stack) call(t *testing.T, method, path, token string, body any, contentType ...string) response {
	t.Helper()
	req := testkit.NewRequest(t, method, s.srv.URL+"/api/v1"+path, token, body)
	if req.Body != nil && len(contentType) > 0 {
		req.Header.Set("Content-Type", contentType[0])
	}
	r := testkit.Do(t, req)
	return response{status: r.Status, raw: r.Body, body: r.Object(t)}
}

func want(t *testing.T, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
}

// record logs the notifications of e as the event consumer would.
func (s *stack) record(t *testing.T, e events.Envelope) {
	t.Helper()
	h := notification.NewEventHandler(s.store, []notification.Channel{notification.ChannelEmail, notification.ChannelSMS})
	inTx(t, s.db, func(tx *sqlx.Tx) error { return h.Handle(context.Background(), tx, e) })
}

func TestHTTPNotifications(t *testing.T) {
	s := newStack(t)
	ada, adaToken := s.userToken(t)
	bob, bobToken := s.userToken(t)

	r := s.call(t, "GET", "/notifications", adaToken, nil)
	want(t, r, http.StatusOK)
	if r.raw != `{"items":[],"page":1,"page_size":20,"total":0}`+"\n" {
		t.Errorf("empty list: %s", r.raw)
	}

	s.record(t, event(t, events.UserCreated, map[string]any{"user_id": ada}))
	time.Sleep(5 * time.Millisecond) // distinct created_at, for the order
	s.record(t, event(t, events.OrderUpdated, map[string]any{"order_id": uuid.NewString(), "order_number": "MRC-1", "user_id": ada, "status": "shipped"}))
	s.record(t, event(t, events.UserCreated, map[string]any{"user_id": bob}))

	r = s.call(t, "GET", "/notifications?page_size=2", adaToken, nil)
	want(t, r, http.StatusOK)
	items := r.body["items"].([]any)
	if r.body["total"] != float64(3) || r.body["page_size"] != float64(2) || len(items) != 2 {
		t.Fatalf("page 1: %s", r.raw)
	}
	first := items[0].(map[string]any)
	if first["template"] != "order_shipped" || first["event_type"] != "order.updated" || first["status"] != "pending" {
		t.Errorf("newest first: %v", first)
	}
	for _, k := range []string{"id", "channel", "created_at"} {
		if first[k] == nil {
			t.Errorf("item lacks %s: %v", k, first)
		}
	}
	// Internals stay internal.
	for _, k := range []string{"user_id", "recipient", "error", "attempts", "provider_id", "details"} {
		if _, ok := first[k]; ok {
			t.Errorf("item shows %s: %v", k, first)
		}
	}
	r = s.call(t, "GET", "/notifications?page=2&page_size=2", adaToken, nil)
	want(t, r, http.StatusOK)
	if items := r.body["items"].([]any); len(items) != 1 || items[0].(map[string]any)["template"] != "welcome" {
		t.Errorf("page 2: %s", r.raw)
	}
	r = s.call(t, "GET", "/notifications", bobToken, nil)
	want(t, r, http.StatusOK)
	if r.body["total"] != float64(1) {
		t.Errorf("Bob sees %s", r.raw)
	}
}

func TestHTTPPreferencesAndPushToken(t *testing.T) {
	s := newStack(t)
	ada, token := s.userToken(t)

	r := s.call(t, "GET", "/notifications/preferences", token, nil)
	want(t, r, http.StatusOK)
	if r.raw != `{"preferences":{"email":true,"sms":true,"push":true}}`+"\n" {
		t.Errorf("defaults: %s", r.raw)
	}
	r = s.call(t, "PUT", "/notifications/preferences", token, map[string]any{"email": false, "sms": true, "push": false})
	want(t, r, http.StatusOK)
	p := r.body["preferences"].(map[string]any)
	if p["email"] != false || p["sms"] != true || p["push"] != false || p["updated_at"] == nil {
		t.Errorf("PUT: %s", r.raw)
	}
	r = s.call(t, "GET", "/notifications/preferences", token, nil)
	if p := r.body["preferences"].(map[string]any); p["email"] != false || p["push"] != false {
		t.Errorf("GET after PUT: %s", r.raw)
	}

	want(t, s.call(t, "PUT", "/notifications/push-token", token, map[string]any{"token": " device-1 "}), http.StatusNoContent)
	want(t, s.call(t, "PUT", "/notifications/push-token", token, map[string]any{"token": "device-2"}), http.StatusNoContent)
	if got, err := s.store.PushToken(context.Background(), ada); err != nil || got != "device-2" {
		t.Errorf("stored token %q, %v", got, err)
	}
	want(t, s.call(t, "DELETE", "/notifications/push-token", token, nil), http.StatusNoContent)
	r = s.call(t, "DELETE", "/notifications/push-token", token, nil)
	want(t, r, http.StatusNotFound)
	if code := r.body["error"].(map[string]any)["code"]; code != "not_found" {
		t.Errorf("second delete: %s", r.raw)
	}
}

func TestHTTPBadInput(t *testing.T) {
	s := newStack(t)
	ada, token := s.userToken(t)
	if _, err := s.store.SavePreferences(context.Background(), ada, notification.Preferences{Email: true, SMS: false, Push: true}); err != nil {
		t.Fatal(err)
	}
	serviceToken, err := s.tokens.ServiceToken("order")
	if err != nil {
		t.Fatal(err)
	}
	expired, err := auth.NewTokens([]byte(secret), time.Nanosecond)
	if err != nil {
		t.Fatal(err)
	}
	stale, _ := expired.Issue(auth.Identity{UserID: ada, Role: auth.RoleCustomer})

	tests := []struct {
		name         string
		method, path string
		token        string
		body         any
		contentType  string
		status       int
		code         string
		field        string
	}{
		{"no token", "GET", "/notifications", "", nil, "", 401, "unauthenticated", ""},
		{"expired token", "GET", "/notifications", stale, nil, "", 401, "token_expired", ""},
		{"service token", "GET", "/notifications", serviceToken, nil, "", 403, "forbidden", ""},
		{"page zero", "GET", "/notifications?page=0", token, nil, "", 422, "validation_failed", "page"},
		{"page not a number", "GET", "/notifications?page=two", token, nil, "", 422, "validation_failed", "page"},
		{"page size too big", "GET", "/notifications?page_size=101", token, nil, "", 422, "validation_failed", "page_size"},
		{"wrong method", "POST", "/notifications", token, `{}`, "", 405, "method_not_allowed", ""},
		{"unknown route", "GET", "/notifications/nope", token, nil, "", 404, "not_found", ""},
		{"malformed JSON", "PUT", "/notifications/preferences", token, `{"email":`, "", 400, "malformed_json", ""},
		{"empty body", "PUT", "/notifications/preferences", token, ``, "", 400, "empty_body", ""},
		{"not an object", "PUT", "/notifications/preferences", token, `[true]`, "", 400, "invalid_type", ""},
		{"wrong type", "PUT", "/notifications/preferences", token, `{"email":"no","sms":true,"push":true}`, "", 400, "invalid_type", "email"},
		{"unknown field", "PUT", "/notifications/preferences", token, `{"email":true,"sms":true,"push":true,"fax":true}`, "", 400, "unknown_field", "fax"},
		{"missing channels", "PUT", "/notifications/preferences", token, `{"email":false}`, "", 422, "validation_failed", "push"},
		{"null channel", "PUT", "/notifications/preferences", token, `{"email":false,"sms":null,"push":true}`, "", 422, "validation_failed", "sms"},
		{"not JSON", "PUT", "/notifications/preferences", token, `{"email":false,"sms":false,"push":false}`, "text/plain", 415, "unsupported_media_type", ""},
		{"empty push token", "PUT", "/notifications/push-token", token, `{"token":"  "}`, "", 422, "validation_failed", "token"},
		{"push token too long", "PUT", "/notifications/push-token", token, `{"token":"` + strings.Repeat("x", 4097) + `"}`, "", 422, "validation_failed", "token"},
		{"NUL in push token", "PUT", "/notifications/push-token", token, `{"token":"a\u0000b"}`, "", 422, "validation_failed", "token"},
		{"push token as number", "PUT", "/notifications/push-token", token, `{"token":5}`, "", 400, "invalid_type", "token"},
		{"no push token to delete", "DELETE", "/notifications/push-token", token, nil, "", 404, "not_found", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ct []string
			if tc.contentType != "" {
				ct = []string{tc.contentType}
			}
			r := s.call(t, tc.method, tc.path, tc.token, tc.body, ct...)
			want(t, r, tc.status)
			e, _ := r.body["error"].(map[string]any)
			if e == nil || e["code"] != tc.code || e["message"] == "" {
				t.Fatalf("error body %s, want code %s", r.raw, tc.code)
			}
			if tc.field != "" {
				if d, _ := e["details"].(map[string]any); d[tc.field] == nil {
					t.Errorf("details do not name %s: %s", tc.field, r.raw)
				}
			}
		})
	}
	// Nothing was written by any of them.
	p, err := s.store.Preferences(context.Background(), ada)
	if err != nil || !p.Email || p.SMS || !p.Push {
		t.Errorf("preferences after bad requests: %+v, %v", p, err)
	}
	if tok, _ := s.store.PushToken(context.Background(), ada); tok != "" {
		t.Errorf("push token %q stored by a bad request", tok)
	}
}
