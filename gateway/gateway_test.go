package gateway

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/kit/sd"
	"github.com/go-kit/log"
	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/httpkit"
	"github.com/mercato-dev/mercato/shared/metrics"
	"github.com/mercato-dev/mercato/shared/requestid"
	"github.com/mercato-dev/mercato/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

var secret = []byte(strings.Repeat("s", 32))

// upstream is a fake user-service instance recording what reached it.
type upstream struct {
	*httptest.Server
	mu       sync.Mutex
	requests []*http.Request
	bodies   []string
	status   int
}

func newUpstream(t testing.TB, status int) *upstream {
	u := &upstream{status: status}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.requests = append(u.requests, r)
		u.bodies = append(u.bodies, string(body))
		u.mu.Unlock()
		httpkit.WriteJSON(w, u.status, map[string]string{"served_by": u.URL, "path": r.URL.Path})
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.requests)
}

func (u *upstream) hostPort() string {
	p, _ := url.Parse(u.URL)
	return p.Host
}

type fixture struct {
	handler http.Handler
	tokens  *auth.Tokens
	gateway *Gateway
}

func newGateway(t testing.TB, rdb *redis.Client, limit redis_rate.Limit, instances ...string) fixture {
	t.Helper()
	return newGatewayWith(t, gatewayOptions{rdb: rdb, limit: limit}, instances...)
}

// gatewayOptions are newGatewayWith's settings; zero values take
// newGateway's: a logger that discards, 2 s upstream timeout.
type gatewayOptions struct {
	rdb          *redis.Client
	limit        redis_rate.Limit
	webhookLimit redis_rate.Limit // limit when zero
	logger       log.Logger
	timeout      time.Duration
	denylist     bool           // tokens checked against the denylist in rdb
	trusted      []netip.Prefix // Config.TrustedProxies
}

func newGatewayWith(t testing.TB, o gatewayOptions, instances ...string) fixture {
	t.Helper()
	tokens, err := auth.NewTokens(secret, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	logger := o.logger
	if logger == nil {
		logger = log.NewNopLogger()
	}
	if o.denylist {
		tokens = tokens.WithVerifiedCache(100).WithDenylist(auth.NewDenylist(o.rdb, logger))
	}
	if o.timeout == 0 {
		o.timeout = 2 * time.Second
	}
	rdb, limit := o.rdb, o.limit
	reg := metrics.NewRegistry()
	router := httpkit.Router(logger, reg, metrics.NewHTTP(reg, "gateway"), nil)
	g := New(router, Config{
		RateLimit:        limit,
		WebhookRateLimit: o.webhookLimit,
		Upstream:         discovery.Options{Timeout: o.timeout},
		Client:           NewHTTPClient(o.timeout),
		// A copy per upstream: go-kit's endpointer sorts the slice it is given.
		Instancer:      func(string) sd.Instancer { return sd.FixedInstancer(slices.Clone(instances)) },
		TrustedProxies: o.trusted,
	}, tokens, rdb, reg, logger)
	return fixture{handler: httpkit.Handler(logger, g.FromClient(router)), tokens: tokens, gateway: g} // as cmd/gateway serves it
}

func (f fixture) do(t *testing.T, method, path, token, body string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	return f.doFrom(t, "", method, path, token, body, header...)
}

// doFrom is do from the client address remote ("host:port"; httptest's
// 192.0.2.1:1234 when empty).
func (f fixture) doFrom(t *testing.T, remote, method, path, token, body string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if remote != "" {
		r.RemoteAddr = remote
	}
	r.Header.Set("Content-Type", "application/json")
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, r)
	return rec
}

// newClientAddr is a client address ("host:port", in IPv6's documentation
// prefix) that no other test has used, nor an earlier round of
// go test -count=N: the tests share one Redis, and the allowances on it
// outlive them.
func newClientAddr() string {
	ip := [16]byte{0x20, 0x01, 0x0d, 0xb8}
	_, _ = rand.Read(ip[4:]) // never fails (crypto/rand)
	return netip.AddrPortFrom(netip.AddrFrom16(ip), 1000).String()
}

func errorCode(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var b struct {
		Error struct{ Code string } `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil || b.Error.Code == "" {
		t.Fatalf("want a JSON error body, got %d %q", rec.Code, rec.Body)
	}
	return b.Error.Code
}

var generous = redis_rate.PerSecond(10000)

func TestRoutingAndAuth(t *testing.T) {
	up := newUpstream(t, http.StatusOK)
	f := newGateway(t, testkit.Redis(t), generous, up.hostPort())
	customer, _ := f.tokens.Issue(auth.Identity{UserID: "u1", Role: auth.RoleCustomer})
	expiredTokens, _ := auth.NewTokens(secret, time.Nanosecond)
	expired, _ := expiredTokens.Issue(auth.Identity{UserID: "u1", Role: auth.RoleCustomer})
	time.Sleep(10 * time.Millisecond)

	tests := []struct {
		name, method, path, token string
		wantStatus                int
		wantCode                  string // error code, when an error
		reachesUpstream           bool
	}{
		{"public register", "POST", "/api/v1/auth/register", "", 200, "", true},
		{"public login", "POST", "/api/v1/auth/login", "", 200, "", true},
		{"logout needs a user", "POST", "/api/v1/auth/logout", "", 401, "unauthenticated", false},
		{"profile needs a user", "GET", "/api/v1/users/me", "", 401, "unauthenticated", false},
		{"profile with token", "GET", "/api/v1/users/me", customer, 200, "", true},
		{"bad token", "GET", "/api/v1/users/me", "garbage", 401, "unauthenticated", false},
		{"bad token on a public route", "POST", "/api/v1/auth/login", "garbage", 401, "unauthenticated", false},
		{"expired token", "GET", "/api/v1/users/me", expired, 401, "token_expired", false},
		{"unknown route", "GET", "/api/v1/nothing", customer, 404, "not_found", false},
		{"internal routes are not exposed", "GET", "/internal/users/u1", customer, 404, "not_found", false},
		{"prefix needs a segment boundary", "GET", "/api/v1/usersX", customer, 404, "not_found", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := up.count()
			rec := f.do(t, tc.method, tc.path, tc.token, `{}`)
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.wantStatus, rec.Body)
			}
			if tc.wantCode != "" && errorCode(t, rec) != tc.wantCode {
				t.Fatalf("code %s, want %s", errorCode(t, rec), tc.wantCode)
			}
			if reached := up.count() > before; reached != tc.reachesUpstream {
				t.Fatalf("reached upstream = %v, want %v", reached, tc.reachesUpstream)
			}
			if rec.Header().Get(requestid.Header) == "" {
				t.Fatal("no X-Request-ID on the response")
			}
		})
	}
}

// A path that is not clean (an empty, "." or ".." segment, plain or
// %-encoded) is answered as an unknown path is, 404 not_found, logged and
// counted as unmatched, and never forwarded: the service's router would
// clean it into a route the gateway did not authorise. Before, mux answered
// 301 to the cleaned path with an empty body, before any middleware ran.
func TestUncleanPathsAreNotFound(t *testing.T) {
	up := newUpstream(t, http.StatusOK)
	logs := &testkit.LogBuffer{}
	f := newGatewayWith(t, gatewayOptions{rdb: testkit.Redis(t), limit: generous, logger: logTo(logs)}, up.hostPort())
	customer, _ := f.tokens.Issue(auth.Identity{UserID: "u1", Role: auth.RoleCustomer})
	unknown := f.do(t, "GET", "/api/v1/nothing", "", "")

	unclean := []struct{ method, path string }{
		{"GET", "/api/v1//products"},
		{"GET", "/api/v1/./products"},
		{"GET", "/api/v1/products/../users/me"},         // a public prefix, then a user's route
		{"GET", "/api/v1/products/%2e%2e/users/me"},     // the same, encoded
		{"GET", "/api/v1/products/x%2F..%2F..%2Fusers"}, // encoded slashes
		{"GET", "/api/v1/products//"},
		{"GET", "/api/v1/products/."},
		{"POST", "/api/v1/auth/login/../register"}, // a 301 turned this POST into a GET
		{"POST", "/api/v1//auth/login"},
		{"GET", "//"},
		{"GET", "/./docs"},
		{"GET", "/docs/../docs/init.js"},
	}
	counts := map[string]int{"GET": 1} // the unknown path's
	for _, tc := range unclean {
		counts[tc.method]++
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			before := up.count()
			rec := f.do(t, tc.method, tc.path, customer, `{}`)
			if rec.Code != http.StatusNotFound || errorCode(t, rec) != "not_found" {
				t.Fatalf("got %d %v %q, want 404 not_found", rec.Code, rec.Header(), rec.Body)
			}
			if up.count() != before {
				t.Fatalf("forwarded as %s", up.requests[len(up.requests)-1].URL.Path)
			}
			// The answer of any unknown path: same body, same headers.
			if rec.Body.String() != unknown.Body.String() || len(rec.Header()) != len(unknown.Header()) {
				t.Errorf("answer %v %q, want an unknown path's %v %q", rec.Header(), rec.Body, unknown.Header(), unknown.Body)
			}
			// Logged with the request id as any request, the route unmatched.
			id := rec.Header().Get(requestid.Header)
			waitForLog(t, logs, "request_id="+id+` msg="http request" method=`+tc.method+" route=unmatched")
		})
	}
	metrics := f.do(t, "GET", "/metrics", "", "").Body.String()
	for method, n := range counts {
		want := fmt.Sprintf(`http_requests_total{code="404",method="%s",route="unmatched",service="gateway"} %d`, method, n)
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// Clean paths are served as before, a trailing slash included.
	for _, p := range []string{"/api/v1/products", "/api/v1/products/", "/api/v1/products/p1", "/", "/docs", "/docs/"} {
		if rec := f.do(t, "GET", p, "", ""); rec.Code != http.StatusOK {
			t.Errorf("GET %s: %d %s", p, rec.Code, rec.Body)
		}
	}
	if got := up.requests[len(up.requests)-1].URL.Path; got != "/api/v1/products/p1" {
		t.Errorf("forwarded %s, want /api/v1/products/p1", got)
	}
}

func TestForwardsRequestFaithfully(t *testing.T) {
	up := newUpstream(t, http.StatusCreated)
	f := newGateway(t, testkit.Redis(t), generous, up.hostPort())
	rec := f.do(t, "POST", "/api/v1/auth/register?x=1", "", `{"email":"a@b.c"}`,
		requestid.Header, "rid-42", "Idempotency-Key", "k1", "Cookie", "secret=1", "Mercato-Signature", "t=1,v1=ab")
	if rec.Code != http.StatusCreated || rec.Header().Get(requestid.Header) != "rid-42" {
		t.Fatalf("got %d, request id %q", rec.Code, rec.Header().Get(requestid.Header))
	}
	r := up.requests[0]
	if r.URL.Path != "/api/v1/auth/register" || r.URL.RawQuery != "x=1" || up.bodies[0] != `{"email":"a@b.c"}` {
		t.Fatalf("forwarded %s %s?%s %q", r.Method, r.URL.Path, r.URL.RawQuery, up.bodies[0])
	}
	if r.Header.Get(requestid.Header) != "rid-42" || r.Header.Get("Mercato-Signature") != "t=1,v1=ab" {
		t.Fatalf("headers not forwarded: %v", r.Header)
	}
	if r.Header.Get("Idempotency-Key") != "" {
		t.Fatal("an Idempotency-Key the route does not honour must stay at the gateway (TestIdempotencyKeyOnlyWhereHonoured)")
	}
	if r.Header.Get("Cookie") != "" {
		t.Fatal("cookies must stay at the gateway")
	}
	if r.Header.Get("X-Forwarded-For") == "" {
		t.Fatal("X-Forwarded-For missing")
	}
}

// Behind a trusted load balancer the access log names the client, as
// fromClient determines it, on every kind of answer: forwarded, served by the
// gateway, unmatched. Before, it named the balancer (httpkit.Observe logs
// the request's RemoteAddr, and fromClient ran only inside the handlers).
func TestAccessLogNamesTheClientBehindATrustedProxy(t *testing.T) {
	up := newUpstream(t, http.StatusOK)
	logs := &testkit.LogBuffer{}
	f := newGatewayWith(t, gatewayOptions{rdb: testkit.Redis(t), limit: generous, logger: logTo(logs),
		trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/16")}}, up.hostPort())
	const balancer, client = "10.0.3.7:41000", "198.51.100.7"
	for _, p := range []string{"/api/v1/products", "/docs", "/api/v1/nothing", "/api/v1//products"} {
		rec := f.doFrom(t, balancer, "GET", p, "", "", "X-Forwarded-For", "203.0.113.1, "+client)
		if got, want := accessLog(t, logs, rec), "remote="+client+":41000"; !strings.HasSuffix(got, want) {
			t.Errorf("GET %s through the balancer logged %q, want it to end %s", p, got, want)
		}
	}
	// A client that is not behind the balancer is its own address, whatever it claims.
	rec := f.doFrom(t, "192.0.2.9:5000", "GET", "/api/v1/products", "", "", "X-Forwarded-For", client)
	if got := accessLog(t, logs, rec); !strings.HasSuffix(got, "remote=192.0.2.9:5000") {
		t.Errorf("a direct client logged %q, want remote=192.0.2.9:5000", got)
	}
}

// accessLog is the access log line of the request rec answered.
func accessLog(t *testing.T, logs *testkit.LogBuffer, rec *httptest.ResponseRecorder) string {
	t.Helper()
	prefix := "request_id=" + rec.Header().Get(requestid.Header) + ` msg="http request"`
	waitForLog(t, logs, prefix)
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, prefix) {
			return line
		}
	}
	return ""
}

// The scheme the client used reaches the service as X-Forwarded-Proto: a
// trusted balancer's (TLS ends there), when it is http or https, else the
// gateway's own connection's. Before, it was always the gateway's: http.
func TestForwardedProto(t *testing.T) {
	up := newUpstream(t, http.StatusOK)
	f := newGatewayWith(t, gatewayOptions{rdb: testkit.Redis(t), limit: generous,
		trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/16")}}, up.hostPort())
	const balancer = "10.0.3.7:41000"
	for _, tc := range []struct {
		name, remote string
		header       []string
		want         string
	}{
		{"balancer says https", balancer, []string{"X-Forwarded-For", "198.51.100.7", "X-Forwarded-Proto", "https"}, "https"},
		{"balancer says http", balancer, []string{"X-Forwarded-For", "198.51.100.7", "X-Forwarded-Proto", "http"}, "http"},
		{"balancer, no X-Forwarded-For", balancer, []string{"X-Forwarded-Proto", "https"}, "https"},
		{"balancer says nothing", balancer, []string{"X-Forwarded-For", "198.51.100.7"}, "http"},
		{"balancer says something else", balancer, []string{"X-Forwarded-For", "198.51.100.7", "X-Forwarded-Proto", "ftp"}, "http"},
		{"balancer says two things", balancer, []string{"X-Forwarded-For", "198.51.100.7", "X-Forwarded-Proto", "https, http"}, "http"},
		{"a direct client claims https", "192.0.2.9:5000", []string{"X-Forwarded-Proto", "https"}, "http"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if rec := f.doFrom(t, tc.remote, "GET", "/api/v1/products", "", "", tc.header...); rec.Code != http.StatusOK {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
			up.mu.Lock()
			got := up.requests[len(up.requests)-1].Header.Values("X-Forwarded-Proto")
			up.mu.Unlock()
			if len(got) != 1 || got[0] != tc.want {
				t.Errorf("the service got X-Forwarded-Proto %q, want %s", got, tc.want)
			}
		})
	}
}

func TestRoundRobinAndFailures(t *testing.T) {
	a, b := newUpstream(t, http.StatusOK), newUpstream(t, http.StatusOK)
	f := newGateway(t, testkit.Redis(t), generous, a.hostPort(), b.hostPort())
	for i := 0; i < 10; i++ {
		if rec := f.do(t, "POST", "/api/v1/auth/login", "", `{}`); rec.Code != 200 {
			t.Fatalf("request %d: %d", i, rec.Code)
		}
	}
	if a.count() != 5 || b.count() != 5 {
		t.Fatalf("spread %d/%d, want 5/5", a.count(), b.count())
	}

	t.Run("no instance is 503", func(t *testing.T) {
		f := newGateway(t, testkit.Redis(t), generous)
		rec := f.do(t, "POST", "/api/v1/auth/login", "", `{}`)
		if rec.Code != http.StatusServiceUnavailable || errorCode(t, rec) != "service_unavailable" {
			t.Fatalf("got %d %s", rec.Code, rec.Body)
		}
		if rec.Header().Get("Retry-After") != "2" {
			t.Errorf("Retry-After %q, want 2", rec.Header().Get("Retry-After"))
		}
	})
	t.Run("an instance's 500 is a 502", func(t *testing.T) {
		bad := newUpstream(t, http.StatusInternalServerError)
		f := newGateway(t, testkit.Redis(t), generous, bad.hostPort())
		rec := f.do(t, "POST", "/api/v1/auth/login", "", `{}`)
		if rec.Code != http.StatusBadGateway || errorCode(t, rec) != "upstream_error" {
			t.Fatalf("got %d %s", rec.Code, rec.Body)
		}
	})
	t.Run("an instance's 503 stays a 503", func(t *testing.T) {
		busy := newUpstream(t, http.StatusServiceUnavailable)
		f := newGateway(t, testkit.Redis(t), generous, busy.hostPort())
		rec := f.do(t, "POST", "/api/v1/auth/login", "", `{}`)
		if rec.Code != http.StatusServiceUnavailable || errorCode(t, rec) != "service_unavailable" {
			t.Fatalf("got %d %s", rec.Code, rec.Body)
		}
		// The chaos suite's PostgreSQL restart: clients are told when to
		// try again.
		if rec.Header().Get("Retry-After") != "2" {
			t.Errorf("Retry-After %q, want 2", rec.Header().Get("Retry-After"))
		}
	})
	t.Run("a dead instance is skipped", func(t *testing.T) {
		dead := newUpstream(t, http.StatusOK)
		deadAddr := dead.hostPort()
		dead.Close()
		live := newUpstream(t, http.StatusOK)
		f := newGateway(t, testkit.Redis(t), generous, deadAddr, live.hostPort())
		for i := 0; i < 6; i++ {
			if rec := f.do(t, "POST", "/api/v1/auth/login", "", `{}`); rec.Code != 200 {
				t.Fatalf("request %d: %d %s", i, rec.Code, rec.Body)
			}
		}
	})
	t.Run("oversized body is 413 and not forwarded", func(t *testing.T) {
		before := a.count() + b.count()
		rec := f.do(t, "POST", "/api/v1/auth/register", "", strings.Repeat("x", httpkit.MaxBodyBytes+1))
		if rec.Code != http.StatusRequestEntityTooLarge || a.count()+b.count() != before {
			t.Fatalf("got %d", rec.Code)
		}
	})
}

// Two gateway instances, each with its own Redis client, draw on one
// allowance per client.
func TestRateLimitSharedAcrossGateways(t *testing.T) {
	up := newUpstream(t, http.StatusOK)
	addr := testkit.RedisAddr(t)
	limit := redis_rate.Limit{Rate: 5, Burst: 5, Period: time.Minute}
	var gws []fixture
	for i := 0; i < 2; i++ {
		rdb := redis.NewClient(testkit.RedisOptions(t, addr, "gateway")) // the gateway's own ACL user
		t.Cleanup(func() { rdb.Close() })
		gws = append(gws, newGateway(t, rdb, limit, up.hostPort()))
	}
	token, _ := gws[0].tokens.Issue(auth.Identity{UserID: "rate-" + rand.Text(), Role: auth.RoleCustomer})

	var ok, limited int
	for i := 0; i < 8; i++ {
		rec := gws[i%2].do(t, "GET", "/api/v1/users/me", token, "")
		switch rec.Code {
		case http.StatusOK:
			ok++
		case http.StatusTooManyRequests:
			limited++
			if errorCode(t, rec) != "rate_limited" || rec.Header().Get("Retry-After") == "" {
				t.Fatalf("429 without code or Retry-After: %v %s", rec.Header(), rec.Body)
			}
		default:
			t.Fatalf("unexpected %d", rec.Code)
		}
	}
	if ok != 5 || limited != 3 {
		t.Fatalf("ok=%d limited=%d, want 5 and 3: the limit is not shared", ok, limited)
	}
	if up.count() != 5 {
		t.Fatalf("upstream saw %d requests, want 5", up.count())
	}
}

func TestCORS(t *testing.T) {
	up := newUpstream(t, http.StatusOK)
	f := newGateway(t, testkit.Redis(t), generous, up.hostPort())
	h := CORS([]string{"https://shop.example"})(f.handler)

	// A preflight is answered without a token and never reaches a service.
	r := httptest.NewRequest(http.MethodOptions, "/api/v1/users/me", nil)
	r.Header.Set("Origin", "https://shop.example")
	r.Header.Set("Access-Control-Request-Method", "PATCH")
	r.Header.Set("Access-Control-Request-Headers", "authorization,content-type") // as browsers send it
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code/100 != 2 || rec.Header().Get("Access-Control-Allow-Origin") != "https://shop.example" ||
		!strings.Contains(rec.Header().Get("Access-Control-Allow-Methods"), "PATCH") || up.count() != 0 {
		t.Fatalf("preflight: %d %v (upstream saw %d)", rec.Code, rec.Header(), up.count())
	}

	// A client resuming an order status stream may send Last-Event-ID (a
	// fetch with its bearer token: an EventSource cannot send one). Before,
	// the preflight refused the header, so the browser never sent the request.
	r = httptest.NewRequest(http.MethodOptions, "/api/v1/orders/o1/events", nil)
	r.Header.Set("Origin", "https://shop.example")
	r.Header.Set("Access-Control-Request-Method", "GET")
	r.Header.Set("Access-Control-Request-Headers", "authorization,last-event-id")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code/100 != 2 || !strings.Contains(strings.ToLower(rec.Header().Get("Access-Control-Allow-Headers")), "last-event-id") {
		t.Fatalf("preflight refused Last-Event-ID: %d %v", rec.Code, rec.Header())
	}

	// An actual request exposes the request id to the browser.
	r = httptest.NewRequest(http.MethodPost, "/api/v1/auth/login", strings.NewReader(`{}`))
	r.Header.Set("Origin", "https://shop.example")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Header().Get("Access-Control-Allow-Origin") != "https://shop.example" ||
		!strings.Contains(rec.Header().Get("Access-Control-Expose-Headers"), "X-Request-Id") {
		t.Fatalf("simple request: %v", rec.Header())
	}

	// Another origin gets no CORS grant.
	r = httptest.NewRequest(http.MethodGet, "/health", nil)
	r.Header.Set("Origin", "https://evil.example")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("foreign origin allowed: %v", rec.Header())
	}
}

// logTo returns a logger writing to logs.
func logTo(logs *testkit.LogBuffer) log.Logger { return log.NewLogfmtLogger(logs) }

// waitForLog fails t unless a line containing want is logged within 5 s.
func waitForLog(t *testing.T, logs *testkit.LogBuffer, want string) {
	t.Helper()
	waitForCount(t, logs, want, 1)
}

// waitForCount fails t unless want is logged n times within 5 s.
func waitForCount(t *testing.T, logs *testkit.LogBuffer, want string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(logs.String(), want) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%q logged fewer than %d times; the log:\n%s", want, n, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
