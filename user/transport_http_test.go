package user_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/httpkit"
	"github.com/mercato-dev/mercato/shared/metrics"
	"github.com/mercato-dev/mercato/shared/testkit"
	"github.com/mercato-dev/mercato/user"
	"github.com/mercato-dev/mercato/user/postgres"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const secret = "0123456789abcdef0123456789abcdef"

// stack is the whole user service over HTTP: real router, endpoints and
// service on a fresh, migrated PostgreSQL database.
type stack struct {
	srv    *httptest.Server
	hits   *atomic.Int64 // requests served
	reg    *prometheus.Registry
	db     *sqlx.DB
	repo   user.Repository
	opts   user.Options
	svc    user.Service
	tokens *auth.Tokens
}

func newStack(t testing.TB) *stack {
	t.Helper()
	db := testkit.Postgres(t)
	if err := postgres.Schema.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	return newStackOn(t, db)
}

// newStackOn serves the service on db, which may be shared with another
// stack (several instances of one service).
func newStackOn(t testing.TB, db *sqlx.DB) *stack {
	t.Helper()
	tokens, err := auth.NewTokens([]byte(secret), 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	repo, opts := postgres.New(db), user.Options{BcryptCost: bcrypt.MinCost}
	svc, err := user.NewService(repo, tokens, opts)
	if err != nil {
		t.Fatal(err)
	}
	logger := log.NewNopLogger()
	reg := metrics.NewRegistry()
	svc = user.LoggingMiddleware(logger)(svc)
	svc = user.InstrumentingMiddleware(user.NewMetrics(reg))(svc)
	router := httpkit.Router(logger, reg, metrics.NewHTTP(reg, "user"), nil)
	user.MakeHTTPHandler(router, user.MakeServerEndpoints(svc, tokens), logger)
	hits := new(atomic.Int64)
	handler := httpkit.Handler(logger, router)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return &stack{srv: srv, hits: hits, reg: reg, db: db, repo: repo, opts: opts, svc: svc, tokens: tokens}
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// call sends body (a string is sent as is, anything else as JSON) with the
// bearer token, if any.
func (s *stack) call(t *testing.T, method, path, token string, body any) response {
	t.Helper()
	r := testkit.Call(t, method, s.srv.URL+"/api/v1"+path, token, body)
	return response{status: r.Status, header: r.Header, raw: r.Body, body: r.Object(t)}
}

func (s *stack) register(t *testing.T, email string) string {
	t.Helper()
	r := s.call(t, "POST", "/auth/register", "", map[string]any{
		"email": email, "password": "password123", "first_name": "Ada", "last_name": "Lovelace"})
	if r.status != http.StatusCreated {
		t.Fatalf("register %s: %d %s", email, r.status, r.raw)
	}
	return r.body["user"].(map[string]any)["id"].(string)
}

func (s *stack) login(t *testing.T, email, password string) (access, refresh string) {
	t.Helper()
	r := s.call(t, "POST", "/auth/login", "", map[string]any{"email": email, "password": password})
	if r.status != http.StatusOK {
		t.Fatalf("login %s: %d %s", email, r.status, r.raw)
	}
	return r.body["access_token"].(string), r.body["refresh_token"].(string)
}

func (s *stack) admin(t *testing.T) string {
	t.Helper()
	if err := user.EnsureAdmin(context.Background(), s.repo, s.opts, "root@example.com", "admin-password"); err != nil {
		t.Fatal(err)
	}
	access, _ := s.login(t, "root@example.com", "admin-password")
	return access
}

func want(t *testing.T, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
}

func TestHTTPHappyPaths(t *testing.T) {
	s := newStack(t)

	// Register: 201 {"user": {...}}, no password anywhere.
	r := s.call(t, "POST", "/auth/register", "", map[string]any{
		"email": " Ada@Example.com", "password": "password123", "first_name": "Ada", "last_name": "Lovelace", "phone": "+44 20"})
	want(t, r, http.StatusCreated)
	u := r.body["user"].(map[string]any)
	for k, v := range map[string]any{"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace",
		"phone": "+44 20", "role": "customer", "is_active": true, "is_verified": false} {
		if u[k] != v {
			t.Errorf("user.%s = %v, want %v", k, u[k], v)
		}
	}
	if strings.Contains(r.raw, "password") {
		t.Errorf("register response mentions the password: %s", r.raw)
	}
	if _, err := time.Parse(time.RFC3339, u["created_at"].(string)); err != nil {
		t.Errorf("created_at: %v", err)
	}
	adaID := u["id"].(string)

	// Login: the token pair, never cached.
	r = s.call(t, "POST", "/auth/login", "", map[string]any{"email": "ada@example.com", "password": "password123"})
	want(t, r, http.StatusOK)
	if r.body["token_type"] != "Bearer" || r.body["expires_in"] != float64(900) || r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("login response: %s, Cache-Control %q", r.raw, r.header.Get("Cache-Control"))
	}
	access, refresh := r.body["access_token"].(string), r.body["refresh_token"].(string)

	// Profile.
	r = s.call(t, "GET", "/users/me", access, nil)
	want(t, r, http.StatusOK)
	if r.body["user"].(map[string]any)["id"] != adaID {
		t.Errorf("GET /users/me: %s", r.raw)
	}
	r = s.call(t, "PATCH", "/users/me", access, map[string]any{"first_name": "Augusta", "phone": ""})
	want(t, r, http.StatusOK)
	if me := r.body["user"].(map[string]any); me["first_name"] != "Augusta" || me["phone"] != nil || me["last_name"] != "Lovelace" {
		t.Errorf("PATCH /users/me: %s", r.raw)
	}

	// Addresses: an empty list is [], not null.
	r = s.call(t, "GET", "/users/me/addresses", access, nil)
	want(t, r, http.StatusOK)
	if !strings.Contains(r.raw, `"items":[]`) {
		t.Errorf("no addresses: %s", r.raw)
	}
	addr := map[string]any{"type": "shipping", "street": "1 Main St", "city": "London", "state": "LDN",
		"zip_code": "N1", "country": "UK", "is_default": true}
	r = s.call(t, "POST", "/users/me/addresses", access, addr)
	want(t, r, http.StatusCreated)
	a1 := r.body["address"].(map[string]any)["id"].(string)
	if loc := r.header.Get("Location"); loc != "/api/v1/users/me/addresses/"+a1 {
		t.Errorf("Location = %q", loc)
	}
	r = s.call(t, "POST", "/users/me/addresses", access, addr)
	want(t, r, http.StatusCreated)
	a2 := r.body["address"].(map[string]any)["id"].(string)
	r = s.call(t, "GET", "/users/me/addresses", access, nil)
	want(t, r, http.StatusOK)
	items := r.body["items"].([]any)
	if len(items) != 2 || items[0].(map[string]any)["is_default"] != false || items[1].(map[string]any)["is_default"] != true {
		t.Errorf("addresses after second default: %s", r.raw)
	}
	r = s.call(t, "PATCH", "/users/me/addresses/"+a1, access, map[string]any{"city": "Paris", "is_default": true})
	want(t, r, http.StatusOK)
	if got := r.body["address"].(map[string]any); got["city"] != "Paris" || got["is_default"] != true || got["street"] != "1 Main St" {
		t.Errorf("PATCH address: %s", r.raw)
	}
	r = s.call(t, "DELETE", "/users/me/addresses/"+a2, access, nil)
	want(t, r, http.StatusNoContent)
	if r.raw != "" {
		t.Errorf("204 with a body: %q", r.raw)
	}
	r = s.call(t, "GET", "/users/me/addresses", access, nil)
	if items := r.body["items"].([]any); len(items) != 1 {
		t.Errorf("addresses after delete: %s", r.raw)
	}

	// Refresh rotates; the old token stops working.
	r = s.call(t, "POST", "/auth/refresh", "", map[string]any{"refresh_token": refresh})
	want(t, r, http.StatusOK)
	refresh2 := r.body["refresh_token"].(string)
	if refresh2 == refresh {
		t.Error("refresh token not rotated")
	}

	// Internal lookup: the user themself, and an admin.
	r = s.call(t, "GET", "/internal/users/"+adaID, access, nil)
	want(t, r, http.StatusOK)
	adminToken := s.admin(t)
	r = s.call(t, "GET", "/internal/users/"+adaID, adminToken, nil)
	want(t, r, http.StatusOK)
	if r.body["user"].(map[string]any)["email"] != "ada@example.com" {
		t.Errorf("GET /internal/users/{id}: %s", r.raw)
	}
	r = s.call(t, "GET", "/internal/users/"+uuid.NewString(), adminToken, nil)
	want(t, r, http.StatusNotFound)
	// Another service (notification, for contact data) on its own behalf.
	serviceToken, err := s.tokens.ServiceToken("notification")
	if err != nil {
		t.Fatal(err)
	}
	r = s.call(t, "GET", "/internal/users/"+adaID, serviceToken, nil)
	want(t, r, http.StatusOK)

	// The admin's user list.
	s.register(t, "bob@example.com")
	r = s.call(t, "GET", "/users?page=1&page_size=2", adminToken, nil)
	want(t, r, http.StatusOK)
	if r.body["page"] != float64(1) || r.body["page_size"] != float64(2) || r.body["total"] != float64(3) || len(r.body["items"].([]any)) != 2 {
		t.Errorf("GET /users: %s", r.raw)
	}
	r = s.call(t, "GET", "/users?page=9", adminToken, nil)
	want(t, r, http.StatusOK)
	if !strings.Contains(r.raw, `"items":[]`) || r.body["total"] != float64(3) {
		t.Errorf("GET /users past the end: %s", r.raw)
	}
	r = s.call(t, "GET", "/users", adminToken, nil)
	want(t, r, http.StatusOK)
	if r.body["page"] != float64(1) || r.body["page_size"] != float64(20) || len(r.body["items"].([]any)) != 3 {
		t.Errorf("GET /users with defaults: %s", r.raw)
	}

	// Logout ends the session.
	r = s.call(t, "POST", "/auth/logout", access, map[string]any{"refresh_token": refresh2})
	want(t, r, http.StatusNoContent)
	r = s.call(t, "POST", "/auth/refresh", "", map[string]any{"refresh_token": refresh2})
	want(t, r, http.StatusUnauthorized)
}

func TestHTTPRefreshReuse(t *testing.T) {
	s := newStack(t)
	s.register(t, "ada@example.com")
	_, first := s.login(t, "ada@example.com", "password123")
	r := s.call(t, "POST", "/auth/refresh", "", map[string]any{"refresh_token": first})
	want(t, r, http.StatusOK)
	second := r.body["refresh_token"].(string)

	r = s.call(t, "POST", "/auth/refresh", "", map[string]any{"refresh_token": first})
	want(t, r, http.StatusUnauthorized)
	if code := errorCode(r); code != "refresh_token_reused" {
		t.Errorf("reuse: code %q", code)
	}
	r = s.call(t, "POST", "/auth/refresh", "", map[string]any{"refresh_token": second})
	want(t, r, http.StatusUnauthorized)
}

func errorCode(r response) string {
	e, _ := r.body["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// rowCounts counts every table a request could write to.
func (s *stack) rowCounts(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, table := range []string{"users", "user_addresses", "refresh_tokens", "outbox"} {
		var n int
		if err := s.db.Get(&n, "SELECT count(*) FROM "+table); err != nil {
			t.Fatal(err)
		}
		out[table] = n
	}
	var revoked int
	if err := s.db.Get(&revoked, "SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NOT NULL"); err != nil {
		t.Fatal(err)
	}
	out["revoked"] = revoked
	var changed int
	if err := s.db.Get(&changed, "SELECT count(*) FROM users WHERE updated_at <> created_at"); err != nil {
		t.Fatal(err)
	}
	out["users updated"] = changed
	return out
}

func TestHTTPBadInput(t *testing.T) {
	s := newStack(t)
	adaID := s.register(t, "ada@example.com")
	ada, adaRefresh := s.login(t, "ada@example.com", "password123")
	s.register(t, "bob@example.com")
	bob, _ := s.login(t, "bob@example.com", "password123")
	admin := s.admin(t)

	r := s.call(t, "POST", "/users/me/addresses", bob, map[string]any{"type": "billing", "street": "s", "city": "c",
		"state": "st", "zip_code": "z", "country": "co"})
	want(t, r, http.StatusCreated)
	bobsAddress := r.body["address"].(map[string]any)["id"].(string)
	r = s.call(t, "POST", "/users/me/addresses", ada, map[string]any{"type": "billing", "street": "s", "city": "c",
		"state": "st", "zip_code": "z", "country": "co"})
	want(t, r, http.StatusCreated)
	adasAddress := r.body["address"].(map[string]any)["id"].(string)

	expired := signedToken(t, jwt.MapClaims{"iss": "mercato", "sub": adaID, "role": "customer",
		"exp": time.Now().Add(-time.Minute).Unix()})
	forged := signedTokenWith(t, []byte("another-key-another-key-another-k"), jwt.MapClaims{"iss": "mercato", "sub": adaID,
		"role": "admin", "exp": time.Now().Add(time.Minute).Unix()})

	validRegistration := `{"email":"new@example.com","password":"password123","first_name":"N","last_name":"U"}`
	huge := `{"email":"new@example.com","password":"password123","first_name":"N","last_name":"U","phone":"` + strings.Repeat("1", 1<<20) + `"}`

	tests := []struct {
		name         string
		method, path string
		token        string
		body         any
		contentType  string
		status       int
		code         string
		field        string // a field the error details must name
	}{
		{"malformed JSON", "POST", "/auth/register", "", `{"email":`, "", 400, "malformed_json", ""},
		{"not an object", "POST", "/auth/register", "", `[1,2]`, "", 400, "invalid_type", ""},
		{"two values", "POST", "/auth/register", "", validRegistration + validRegistration, "", 400, "malformed_json", ""},
		{"empty body", "POST", "/auth/register", "", ``, "", 400, "empty_body", ""},
		{"wrong type", "POST", "/auth/register", "", `{"email":5,"password":"password123","first_name":"N","last_name":"U"}`, "", 400, "invalid_type", "email"},
		{"unknown field", "POST", "/auth/register", "", `{"email":"new@example.com","password":"password123","first_name":"N","last_name":"U","role":"admin"}`, "", 400, "unknown_field", "role"},
		{"missing fields", "POST", "/auth/register", "", `{}`, "", 422, "validation_failed", "first_name"},
		{"bad email", "POST", "/auth/register", "", `{"email":"Ada <new@example.com>","password":"password123","first_name":"N","last_name":"U"}`, "", 422, "validation_failed", "email"},
		// Each reads as ada@example.com, a different account impersonating hers.
		{"zero-width space in email", "POST", "/auth/register", "", `{"email":"ada\u200b@example.com","password":"password123","first_name":"N","last_name":"U"}`, "", 422, "validation_failed", "email"},
		{"soft hyphen in email", "POST", "/auth/register", "", `{"email":"a\u00adda@example.com","password":"password123","first_name":"N","last_name":"U"}`, "", 422, "validation_failed", "email"},
		{"bidi override in email", "POST", "/auth/register", "", `{"email":"\u202emoc.elpmaxe@ada","password":"password123","first_name":"N","last_name":"U"}`, "", 422, "validation_failed", "email"},
		{"C1 control in email", "POST", "/auth/register", "", `{"email":"ada\u0085@example.com","password":"password123","first_name":"N","last_name":"U"}`, "", 422, "validation_failed", "email"},
		{"short password", "POST", "/auth/register", "", `{"email":"new@example.com","password":"short","first_name":"N","last_name":"U"}`, "", 422, "validation_failed", "password"},
		{"password over 72 bytes", "POST", "/auth/register", "", `{"email":"new@example.com","password":"` + strings.Repeat("p", 73) + `","first_name":"N","last_name":"U"}`, "", 422, "validation_failed", "password"},
		{"long name", "POST", "/auth/register", "", `{"email":"new@example.com","password":"password123","first_name":"` + strings.Repeat("é", 101) + `","last_name":"U"}`, "", 422, "validation_failed", "first_name"},
		{"long phone", "POST", "/auth/register", "", `{"email":"new@example.com","password":"password123","first_name":"N","last_name":"U","phone":"` + strings.Repeat("1", 21) + `"}`, "", 422, "validation_failed", "phone"},
		{"NUL in a name", "POST", "/auth/register", "", `{"email":"new@example.com","password":"password123","first_name":"a\u0000b","last_name":"U"}`, "", 422, "validation_failed", "first_name"},
		{"oversized body", "POST", "/auth/register", "", huge, "", 413, "body_too_large", ""},
		{"not JSON", "POST", "/auth/register", "", validRegistration, "text/plain", 415, "unsupported_media_type", ""},
		{"duplicate email", "POST", "/auth/register", "", `{"email":"ADA@example.com","password":"password123","first_name":"N","last_name":"U"}`, "", 409, "email_taken", ""},

		{"wrong password", "POST", "/auth/login", "", `{"email":"ada@example.com","password":"password124"}`, "", 401, "invalid_credentials", ""},
		{"unknown email", "POST", "/auth/login", "", `{"email":"nobody@example.com","password":"password123"}`, "", 401, "invalid_credentials", ""},
		// No account can have such an email: an unknown one, as any other.
		{"zero-width space in login email", "POST", "/auth/login", "", `{"email":"ada\u200b@example.com","password":"password123"}`, "", 401, "invalid_credentials", ""},
		{"login without password", "POST", "/auth/login", "", `{"email":"ada@example.com"}`, "", 422, "validation_failed", "password"},
		{"unknown refresh token", "POST", "/auth/refresh", "", `{"refresh_token":"nope"}`, "", 401, "invalid_refresh_token", ""},
		{"refresh without token", "POST", "/auth/refresh", "", `{}`, "", 422, "validation_failed", "refresh_token"},
		{"refresh token as number", "POST", "/auth/refresh", "", `{"refresh_token":1}`, "", 400, "invalid_type", "refresh_token"},
		{"logout without bearer", "POST", "/auth/logout", "", `{"refresh_token":"` + adaRefresh + `"}`, "", 401, "unauthenticated", ""},
		{"logout of another user's session", "POST", "/auth/logout", bob, `{"refresh_token":"` + adaRefresh + `"}`, "", 401, "invalid_refresh_token", ""},

		{"no token", "GET", "/users/me", "", nil, "", 401, "unauthenticated", ""},
		{"garbage token", "GET", "/users/me", "garbage", nil, "", 401, "unauthenticated", ""},
		{"expired token", "GET", "/users/me", expired, nil, "", 401, "token_expired", ""},
		{"token signed with another key", "GET", "/users", forged, nil, "", 401, "unauthenticated", ""},
		{"empty profile patch", "PATCH", "/users/me", ada, `{}`, "", 422, "validation_failed", "body"},
		{"blank first name", "PATCH", "/users/me", ada, `{"first_name":"  "}`, "", 422, "validation_failed", "first_name"},
		{"email is not patchable", "PATCH", "/users/me", ada, `{"email":"x@example.com"}`, "", 400, "unknown_field", "email"},
		{"profile patch without token", "PATCH", "/users/me", "", `{"first_name":"X"}`, "", 401, "unauthenticated", ""},

		{"address type enum", "POST", "/users/me/addresses", ada, `{"type":"home","street":"s","city":"c","state":"st","zip_code":"z","country":"co"}`, "", 422, "validation_failed", "type"},
		{"address missing street", "POST", "/users/me/addresses", ada, `{"type":"billing","city":"c","state":"st","zip_code":"z","country":"co"}`, "", 422, "validation_failed", "street"},
		{"address long zip", "POST", "/users/me/addresses", ada, `{"type":"billing","street":"s","city":"c","state":"st","zip_code":"` + strings.Repeat("9", 21) + `","country":"co"}`, "", 422, "validation_failed", "zip_code"},
		{"address is_default as string", "POST", "/users/me/addresses", ada, `{"type":"billing","street":"s","city":"c","state":"st","zip_code":"z","country":"co","is_default":"yes"}`, "", 400, "invalid_type", "is_default"},
		{"address with user_id", "POST", "/users/me/addresses", ada, `{"user_id":"` + adaID + `","type":"billing","street":"s","city":"c","state":"st","zip_code":"z","country":"co"}`, "", 400, "unknown_field", "user_id"},
		{"address without token", "POST", "/users/me/addresses", "", `{"type":"billing","street":"s","city":"c","state":"st","zip_code":"z","country":"co"}`, "", 401, "unauthenticated", ""},
		{"patch another user's address", "PATCH", "/users/me/addresses/" + bobsAddress, ada, `{"city":"x"}`, "", 404, "not_found", ""},
		{"delete another user's address", "DELETE", "/users/me/addresses/" + bobsAddress, ada, nil, "", 404, "not_found", ""},
		{"patch unknown address", "PATCH", "/users/me/addresses/" + uuid.NewString(), ada, `{"city":"x"}`, "", 404, "not_found", ""},
		{"patch address, invalid UUID", "PATCH", "/users/me/addresses/not-a-uuid", ada, `{"city":"x"}`, "", 404, "not_found", ""},
		{"patch address, UUID-shaped garbage", "PATCH", "/users/me/addresses/zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", ada, `{"city":"x"}`, "", 404, "not_found", ""},
		{"delete address, invalid UUID", "DELETE", "/users/me/addresses/123", ada, nil, "", 404, "not_found", ""},
		{"empty address patch", "PATCH", "/users/me/addresses/" + adasAddress, ada, `{}`, "", 422, "validation_failed", "body"},
		{"address patch, bad type", "PATCH", "/users/me/addresses/" + adasAddress, ada, `{"type":"work"}`, "", 422, "validation_failed", "type"},

		{"customer lists users", "GET", "/users", ada, nil, "", 403, "forbidden", ""},
		{"page 0", "GET", "/users?page=0", admin, nil, "", 422, "validation_failed", "page"},
		{"page_size 101", "GET", "/users?page_size=101", admin, nil, "", 422, "validation_failed", "page_size"},
		{"page_size 0", "GET", "/users?page_size=0", admin, nil, "", 422, "validation_failed", "page_size"},
		{"page not a number", "GET", "/users?page=abc", admin, nil, "", 422, "validation_failed", "page"},
		{"customer reads another user", "GET", "/internal/users/" + uuid.NewString(), ada, nil, "", 403, "forbidden", ""},
		{"internal user, invalid UUID", "GET", "/internal/users/nope", admin, nil, "", 404, "not_found", ""},
		{"internal user without token", "GET", "/internal/users/" + adaID, "", nil, "", 401, "unauthenticated", ""},

		{"method not allowed", "PUT", "/users/me", ada, `{}`, "", 405, "method_not_allowed", ""},
		{"no such route", "GET", "/users/me/nothing", ada, nil, "", 404, "not_found", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := s.rowCounts(t)
			r := s.callRaw(t, tc.method, tc.path, tc.token, tc.body, tc.contentType)
			if r.status != tc.status {
				t.Errorf("status %d, want %d: %.300s", r.status, tc.status, r.raw)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			if code := errorCode(r); code != tc.code {
				t.Errorf("error.code %q, want %q: %.300s", code, tc.code, r.raw)
			}
			if tc.field != "" {
				errBody, _ := r.body["error"].(map[string]any) // none when the request was wrongly taken
				details, _ := errBody["details"].(map[string]any)
				if _, ok := details[tc.field]; !ok {
					t.Errorf("error details %v do not name %q", details, tc.field)
				}
			}
			if after := s.rowCounts(t); !equalCounts(before, after) {
				t.Errorf("rejected request wrote: before %v, after %v", before, after)
			}
		})
	}

	// Nothing above may have harmed Ada's session or Bob's address.
	r = s.call(t, "POST", "/auth/refresh", "", map[string]any{"refresh_token": adaRefresh})
	want(t, r, http.StatusOK)
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// callRaw is call with an explicit Content-Type ("" means JSON).
func (s *stack) callRaw(t *testing.T, method, path, token string, body any, contentType string) response {
	t.Helper()
	if contentType == "" {
		return s.call(t, method, path, token, body)
	}
	r := testkit.Call(t, method, s.srv.URL+"/api/v1"+path, token, body, "Content-Type", contentType)
	return response{status: r.Status, header: r.Header, raw: r.Body, body: r.Object(t)}
}

func signedToken(t *testing.T, claims jwt.MapClaims) string {
	return signedTokenWith(t, []byte(secret), claims)
}

func signedTokenWith(t *testing.T, key []byte, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestMalformedIDsAreNotFound calls the service directly on PostgreSQL,
// behind the transport's own check: an id that is no UUID must be "not
// found", never PostgreSQL's invalid-input error (a 500).
func TestMalformedIDsAreNotFound(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	adaID := s.register(t, "ada@example.com")
	city := "x"
	for _, id := range []string{"", "nope", "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", "1; DROP TABLE users"} {
		calls := map[string]error{}
		_, calls["GetUser"] = s.svc.GetUser(ctx, id)
		_, calls["GetProfile"] = s.svc.GetProfile(ctx, id)
		_, calls["ListAddresses"] = s.svc.ListAddresses(ctx, id)
		_, calls["UpdateAddress"] = s.svc.UpdateAddress(ctx, adaID, id, user.AddressUpdate{City: &city})
		calls["DeleteAddress"] = s.svc.DeleteAddress(ctx, adaID, id)
		for method, err := range calls {
			if !errors.Is(err, user.ErrNotFound) {
				t.Errorf("%s(%q): err = %v, want ErrNotFound", method, id, err)
			}
		}
	}
}

// TestEnsureAdminConcurrently is two instances bootstrapping the same admin
// at the same moment: both succeed, and there is one admin.
func TestEnsureAdminConcurrently(t *testing.T) {
	s := newStack(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			errs <- user.EnsureAdmin(context.Background(), s.repo, s.opts, "root@example.com", "admin-password")
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Errorf("EnsureAdmin: %v", err)
		}
	}
	var admins int
	if err := s.db.Get(&admins, `SELECT count(*) FROM users WHERE role = 'admin' AND email = 'root@example.com'`); err != nil {
		t.Fatal(err)
	}
	if admins != 1 {
		t.Errorf("%d admins", admins)
	}
	s.login(t, "root@example.com", "admin-password")
}

// TestHTTPDatabaseOutOfConnectionsIs503: a PostgreSQL that refuses a new
// connection because its slots are taken (SQLSTATE 53300, "sorry, too many
// clients already" at max_connections, as several instances' pools under
// load can) cannot serve now: 503 with Retry-After, as for a server
// restarting, not 500. A database's CONNECTION LIMIT refuses with the same
// SQLSTATE, and the service's role may set it on the database it owns.
func TestHTTPDatabaseOutOfConnectionsIs503(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	var dbName string
	if err := s.db.GetContext(ctx, &dbName, `SELECT current_database()`); err != nil {
		t.Fatal(err)
	}
	// One connection held, none idle in the pool: the next query must open one.
	held, err := s.db.Connx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { held.Close() })
	if _, err := held.ExecContext(ctx, `ALTER DATABASE `+dbName+` CONNECTION LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	s.db.SetMaxIdleConns(0) // closes the idle ones
	s.db.SetMaxIdleConns(2)
	var state interface{ SQLState() string }
	if err := s.db.PingContext(ctx); !errors.As(err, &state) || state.SQLState() != "53300" {
		t.Fatalf("a second connection: %v, want SQLSTATE 53300", err)
	}

	r := s.call(t, "POST", "/auth/register", "", map[string]any{
		"email": "full@example.com", "password": "password123", "first_name": "Ada", "last_name": "Lovelace"})
	if r.status != http.StatusServiceUnavailable || errorCode(r) != "service_unavailable" || r.header.Get("Retry-After") == "" {
		t.Fatalf("database out of connections: %d Retry-After %q %s; want 503 service_unavailable with Retry-After",
			r.status, r.header.Get("Retry-After"), r.raw)
	}
}

// TestHTTPClientGoneIsNot5xx: a client that hangs up while its request waits
// on the database (here on a row lock; the gateway does it when its attempt
// times out) is no failure of the service. It is recorded as 499, as the
// gateway records it, not as a 500 or 503 that pages someone: the service
// is fine and nobody reads the answer.
func TestHTTPClientGoneIsNot5xx(t *testing.T) {
	s := newStack(t)
	id := s.register(t, "gone@example.com")
	token, _ := s.login(t, "gone@example.com", "password123")
	lock := s.db.MustBegin()
	defer lock.Rollback() //nolint:errcheck // the lock's only
	lock.MustExec(`SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, id)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req := testkit.NewRequest(t, "PATCH", s.srv.URL+"/api/v1/users/me", token, map[string]any{"first_name": "Grace"})
	if resp, err := http.DefaultClient.Do(req.WithContext(ctx)); err == nil {
		resp.Body.Close()
		t.Fatalf("PATCH /users/me answered %d through the row lock", resp.StatusCode)
	}
	var codes []string
	for deadline := time.Now().Add(10 * time.Second); len(codes) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the abandoned PATCH was never recorded in http_requests_total")
		}
		codes = requestCodes(t, s.reg, "PATCH")
	}
	if fmt.Sprint(codes) != "[499]" {
		t.Errorf("the PATCH whose client hung up was recorded as %v, want [499]", codes)
	}
}

// requestCodes lists the codes http_requests_total holds for method.
func requestCodes(t *testing.T, reg *prometheus.Registry, method string) []string {
	t.Helper()
	var codes []string
	for _, s := range testkit.Series(t, reg, "http_requests_total") {
		if s.Labels["method"] == method {
			codes = append(codes, s.Labels["code"])
		}
	}
	return codes
}
