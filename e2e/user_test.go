package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/httpkit"
	"github.com/mercato-dev/mercato/shared/localinfra"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// userPlatform is Consul, PostgreSQL, two Redis servers (one the user
// service publishes events to, one the gateway keeps rate limits in, so the
// first can be taken down alone), two user instances and a gateway.
type userPlatform struct {
	consul       string
	userDB       *sqlx.DB
	eventsRedis  *localinfra.Redis
	gatewayRedis string
	users        []*proc
	gateway      *proc
	api          *client
}

func startUserPlatform(t *testing.T) *userPlatform {
	p := &userPlatform{consul: testkit.NewConsul(t).Addr(), gatewayRedis: testkit.RedisAddr(t)}
	dbURL := testkit.PostgresURL(t)
	db, err := sqlx.Open("postgres", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	p.userDB = db
	p.eventsRedis = testkit.NewRedis(t)
	for i := 0; i < 2; i++ {
		p.users = append(p.users, start(t, "user", "-consul-addr", p.consul, "-database-url", dbURL,
			"-redis-addr", p.eventsRedis.Addr(), "-jwt-secret", jwtSecret, "-bcrypt-cost", "4",
			"-admin-email", "admin@mercato.test", "-admin-password", "admin-password-1"))
	}
	waitPassing(t, p.consul, "user", 2)
	// -breaker-volume: so few calls that the sick instance's breaker opens
	// within the test (the default is above what one client may send).
	p.gateway = start(t, "gateway", "-consul-addr", p.consul, "-redis-addr", p.gatewayRedis,
		"-jwt-secret", jwtSecret, "-rate-limit", "100000", "-rate-burst", "10000", "-breaker-volume", "20")
	p.api = newClient(t, p.gateway.addr)
	return p
}

func (p *userPlatform) count(t *testing.T, table string) int {
	t.Helper()
	var n int
	if err := p.userDB.Get(&n, "SELECT count(*) FROM "+table); err != nil {
		t.Fatal(err)
	}
	return n
}

type tokenPair struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

func (p *userPlatform) register(t *testing.T, email string) string {
	t.Helper()
	var out struct {
		User struct {
			ID    string `json:"id"`
			Email string `json:"email"`
		} `json:"user"`
	}
	p.api.do("POST", "/api/v1/auth/register", "", map[string]any{
		"email": email, "password": "correct-horse", "first_name": "Ada", "last_name": "Lovelace",
	}).must(t, http.StatusCreated).decode(t, &out)
	if out.User.ID == "" || out.User.Email != strings.ToLower(email) {
		t.Fatalf("register answered %+v", out)
	}
	return out.User.ID
}

func (p *userPlatform) login(t *testing.T, email string) tokenPair {
	t.Helper()
	var tp tokenPair
	p.api.do("POST", "/api/v1/auth/login", "", map[string]string{"email": email, "password": "correct-horse"}).
		must(t, http.StatusOK).decode(t, &tp)
	if tp.AccessToken == "" || tp.RefreshToken == "" || tp.TokenType != "Bearer" || tp.ExpiresIn <= 0 {
		t.Fatalf("login answered %+v", tp)
	}
	return tp
}

// TestUserPlatform drives one platform through the scenarios of a user's
// life, then through the failures the platform must survive. The subtests
// share the platform and run in order.
func TestUserPlatform(t *testing.T) {
	p := startUserPlatform(t)
	api := p.api

	t.Run("register, login, refresh, profile, addresses", func(t *testing.T) {
		id := p.register(t, "Ada@Example.com")
		api.do("POST", "/api/v1/auth/register", "", map[string]any{
			"email": "ada@example.com", "password": "another-pass", "first_name": "A", "last_name": "B",
		}).must(t, http.StatusConflict)

		api.do("POST", "/api/v1/auth/login", "", map[string]string{"email": "ada@example.com", "password": "wrong-pass"}).
			must(t, http.StatusUnauthorized)
		tp := p.login(t, "ada@example.com")

		var me struct {
			User struct {
				ID, Email, Role string
				FirstName       string `json:"first_name"`
			} `json:"user"`
		}
		api.do("GET", "/api/v1/users/me", tp.AccessToken, nil).must(t, 200).decode(t, &me)
		if me.User.ID != id || me.User.Email != "ada@example.com" || me.User.Role != "customer" {
			t.Fatalf("profile %+v", me)
		}
		api.do("PATCH", "/api/v1/users/me", tp.AccessToken, map[string]string{"first_name": "Augusta"}).must(t, 200).decode(t, &me)
		if me.User.FirstName != "Augusta" {
			t.Fatalf("profile update not applied: %+v", me)
		}

		// Refresh rotates: the new pair works, the old refresh token does not,
		// and presenting it again (reuse) revokes the whole family.
		var fresh tokenPair
		api.do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": tp.RefreshToken}).must(t, 200).decode(t, &fresh)
		if fresh.RefreshToken == tp.RefreshToken || fresh.AccessToken == "" {
			t.Fatalf("refresh did not rotate: %+v", fresh)
		}
		api.do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": tp.RefreshToken}).must(t, 401)
		api.do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": fresh.RefreshToken}).must(t, 401)

		// Logout revokes the refresh token it is given.
		tp = p.login(t, "ada@example.com")
		api.do("POST", "/api/v1/auth/logout", tp.AccessToken, map[string]string{"refresh_token": tp.RefreshToken}).must(t, 204)
		api.do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": tp.RefreshToken}).must(t, 401)

		// Addresses: one default per type.
		tp = p.login(t, "ada@example.com")
		addr := func(street string, def bool) map[string]any {
			return map[string]any{"type": "shipping", "street": street, "city": "London", "state": "LDN",
				"zip_code": "N1", "country": "GB", "is_default": def}
		}
		var first, second struct {
			Address struct {
				ID string `json:"id"`
			} `json:"address"`
		}
		api.do("POST", "/api/v1/users/me/addresses", tp.AccessToken, addr("1 Main St", true)).must(t, 201).decode(t, &first)
		api.do("POST", "/api/v1/users/me/addresses", tp.AccessToken, addr("2 Side St", true)).must(t, 201).decode(t, &second)
		var list []struct {
			ID        string `json:"id"`
			IsDefault bool   `json:"is_default"`
		}
		listResp := api.do("GET", "/api/v1/users/me/addresses", tp.AccessToken, nil).must(t, 200)
		if err := decodeItems(listResp.Body, &list); err != nil {
			t.Fatalf("address list %s: %v", listResp.Body, err)
		}
		defaults := 0
		for _, a := range list {
			if a.IsDefault {
				defaults++
				if a.ID != second.Address.ID {
					t.Fatalf("the newest default should win: %+v", list)
				}
			}
		}
		if len(list) != 2 || defaults != 1 {
			t.Fatalf("want 2 addresses, 1 default: %s", listResp.Body)
		}
		api.do("PATCH", "/api/v1/users/me/addresses/"+first.Address.ID, tp.AccessToken, map[string]any{"city": "Leeds"}).must(t, 200)
		api.do("DELETE", "/api/v1/users/me/addresses/"+first.Address.ID, tp.AccessToken, nil).must(t, 204)
		api.do("DELETE", "/api/v1/users/me/addresses/"+first.Address.ID, tp.AccessToken, nil).must(t, 404)

		// Someone else cannot touch them; only an admin lists users.
		p.register(t, "eve@example.com")
		eve := p.login(t, "eve@example.com")
		api.do("PATCH", "/api/v1/users/me/addresses/"+second.Address.ID, eve.AccessToken, map[string]any{"city": "X"}).must(t, 404)
		api.do("GET", "/api/v1/users", eve.AccessToken, nil).must(t, 403)
		var admin tokenPair
		api.do("POST", "/api/v1/auth/login", "", map[string]string{"email": "admin@mercato.test", "password": "admin-password-1"}).
			must(t, 200).decode(t, &admin)
		var page struct {
			Items    []map[string]any `json:"items"`
			Page     int              `json:"page"`
			PageSize int              `json:"page_size"`
			Total    int              `json:"total"`
		}
		api.do("GET", "/api/v1/users?page=1&page_size=2", admin.AccessToken, nil).must(t, 200).decode(t, &page)
		if page.Total != 3 || len(page.Items) != 2 || page.Page != 1 || page.PageSize != 2 {
			t.Fatalf("admin list: %+v", page)
		}
	})

	t.Run("bad input is a 4xx JSON error and writes nothing", func(t *testing.T) {
		p.register(t, "bad-input@example.com")
		tp := p.login(t, "bad-input@example.com")
		expiredTokens, _ := auth.NewTokens([]byte(jwtSecret), time.Millisecond)
		var me struct{ User struct{ ID string } }
		api.do("GET", "/api/v1/users/me", tp.AccessToken, nil).must(t, 200).decode(t, &me)
		meID := me.User.ID
		expired, _ := expiredTokens.Issue(auth.Identity{UserID: meID, Role: auth.RoleCustomer})
		forged, _ := mustTokens(t, strings.Repeat("x", 40)).Issue(auth.Identity{UserID: meID, Role: auth.RoleAdmin})
		time.Sleep(5 * time.Millisecond)

		users, addresses := p.count(t, "users"), p.count(t, "user_addresses")
		huge := `{"email":"` + strings.Repeat("a", 2<<20) + `@x.com","password":"p"}`
		tests := []struct {
			name, method, path, token, body string
			want                            int
		}{
			{"malformed JSON", "POST", "/api/v1/auth/register", "", `{"email":`, 400},
			{"not JSON at all", "POST", "/api/v1/auth/register", "", `hello`, 400},
			{"wrong types", "POST", "/api/v1/auth/register", "", `{"email":42,"password":true,"first_name":[],"last_name":{}}`, 400},
			{"missing fields", "POST", "/api/v1/auth/register", "", `{"email":"x@y.z"}`, 422},
			{"invalid email", "POST", "/api/v1/auth/register", "", `{"email":"nope","password":"long-enough","first_name":"a","last_name":"b"}`, 422},
			{"short password", "POST", "/api/v1/auth/register", "", `{"email":"s@y.z","password":"short","first_name":"a","last_name":"b"}`, 422},
			{"unknown field", "POST", "/api/v1/auth/register", "", `{"email":"u@y.z","password":"long-enough","first_name":"a","last_name":"b","role":"admin"}`, 400},
			{"oversized body", "POST", "/api/v1/auth/register", "", huge, 413},
			{"empty body", "POST", "/api/v1/auth/login", "", ``, 400},
			{"bad token", "GET", "/api/v1/users/me", "not-a-token", ``, 401},
			{"forged token", "GET", "/api/v1/users", forged, ``, 401},
			{"expired token", "GET", "/api/v1/users/me", expired, ``, 401},
			{"no token", "POST", "/api/v1/users/me/addresses", "", `{}`, 401},
			{"bad address type", "POST", "/api/v1/users/me/addresses", tp.AccessToken,
				`{"type":"moon","street":"s","city":"c","state":"s","zip_code":"z","country":"c"}`, 422},
			{"address missing fields", "POST", "/api/v1/users/me/addresses", tp.AccessToken, `{"type":"billing"}`, 422},
			{"address id not a UUID", "PATCH", "/api/v1/users/me/addresses/not-a-uuid", tp.AccessToken, `{"city":"c"}`, 404},
			{"page size too large", "GET", "/api/v1/users?page_size=100000", tp.AccessToken, ``, 403},
			{"profile wrong type", "PATCH", "/api/v1/users/me", tp.AccessToken, `{"first_name":7}`, 400},
			{"profile empty name", "PATCH", "/api/v1/users/me", tp.AccessToken, `{"first_name":""}`, 422},
			{"refresh garbage", "POST", "/api/v1/auth/refresh", "", `{"refresh_token":"garbage"}`, 401},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				r := api.raw(tc.method, tc.path, tc.token, []byte(tc.body))
				if r.Status != tc.want {
					t.Fatalf("status %d, want %d: %.300s", r.Status, tc.want, r.Body)
				}
				r.errorCode(t)
			})
		}
		if u, a := p.count(t, "users"), p.count(t, "user_addresses"); u != users || a != addresses {
			t.Fatalf("bad input wrote rows: users %d→%d, addresses %d→%d", users, u, addresses, a)
		}
	})

	t.Run("requests are spread over both instances", func(t *testing.T) {
		p.register(t, "spread@example.com")
		tp := p.login(t, "spread@example.com")
		before := make([]float64, len(p.users))
		for i, u := range p.users {
			before[i] = scrape(t, u.addr, "http_requests_total", "route", "/api/v1/users/me")
		}
		for i := 0; i < 20; i++ {
			api.do("GET", "/api/v1/users/me", tp.AccessToken, nil).must(t, 200)
		}
		for i, u := range p.users {
			if served := scrape(t, u.addr, "http_requests_total", "route", "/api/v1/users/me") - before[i]; served < 5 {
				t.Fatalf("instance %d served %v of 20 requests; round robin should give it about 10", i, served)
			}
		}
	})

	t.Run("user.created reaches a stream consumer though Redis was down at registration", func(t *testing.T) {
		if err := p.eventsRedis.Stop(); err != nil {
			t.Fatal(err)
		}
		id := p.register(t, "while-redis-down@example.com")
		if err := p.eventsRedis.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		rdb := redis.NewClient(p.eventsRedis.Options(localinfra.RedisAdmin))
		defer rdb.Close()
		inboxDB := testkit.Postgres(t)
		if err := events.Migrate(context.Background(), inboxDB); err != nil {
			t.Fatal(err)
		}
		got := make(chan events.Envelope, 100)
		c := &events.Consumer{DB: inboxDB, Redis: rdb, Group: "e2e-" + strconv.FormatInt(time.Now().UnixNano(), 36),
			Types: []string{events.UserCreated}, Block: 200 * time.Millisecond,
			Handler: func(_ context.Context, _ events.Tx, e events.Envelope) error { got <- e; return nil }}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		go func() { _ = c.Run(ctx) }() // it stops with ctx; the test reads what it got
		for {
			select {
			case e := <-got:
				if strings.Contains(string(e.Data), id) {
					if !strings.Contains(string(e.Data), "while-redis-down@example.com") || e.Source == "" {
						t.Fatalf("user.created without the user's data: %+v %s", e, e.Data)
					}
					return
				}
			case <-ctx.Done():
				t.Fatal("user.created of the user registered while Redis was down never arrived")
			}
		}
	})

	t.Run("a failing instance opens its breaker while the others serve", func(t *testing.T) {
		p.register(t, "breaker@example.com")
		tp := p.login(t, "breaker@example.com")
		// A sick instance: passes its health check, cannot serve any request
		// (503, an outage; a 500 would be a bug the request triggered, which
		// never counts against an instance: discovery.CountsAgainstInstance).
		sick := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/health" {
				httpkit.WriteJSON(w, 200, map[string]string{"status": "ok"})
				return
			}
			httpkit.WriteError(w, httpkit.Unavailable("sick"))
		}))
		defer sick.Close()
		u, _ := url.Parse(sick.URL)
		port, _ := strconv.Atoi(u.Port())
		consul, err := discovery.NewConsulClientWithToken(p.consul, testkit.ConsulToken(t, p.consul, ""))
		if err != nil {
			t.Fatal(err)
		}
		reg, err := discovery.Register(t.Context(), consul, discovery.Registration{Service: "user", Host: "127.0.0.1", Port: port, Version: "sick"}, log.NewNopLogger())
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = reg.Deregister() }() // the platform's Consul stops with the test anyway
		waitPassing(t, p.consul, "user", 3)

		waitFor(t, 30*time.Second, "the sick instance's breaker to open", func() error {
			for i := 0; i < 10; i++ {
				api.do("GET", "/api/v1/users/me", tp.AccessToken, nil)
			}
			if v := scrape(t, adminAddr(t, p.consul, p.gateway), "circuit_breaker_open", "instance", u.Host); v != 1 {
				return fmt.Errorf("circuit_breaker_open{instance=%s} = %v", u.Host, v)
			}
			return nil
		})
		for i := 0; i < 20; i++ {
			api.do("GET", "/api/v1/users/me", tp.AccessToken, nil).must(t, 200)
		}
		for _, healthy := range p.users {
			if v := scrape(t, adminAddr(t, p.consul, p.gateway), "circuit_breaker_open", "instance", healthy.addr); v != 0 {
				t.Fatalf("healthy instance %s has its breaker open", healthy.addr)
			}
		}
	})

	t.Run("one instance killed: every following request succeeds", func(t *testing.T) {
		waitPassing(t, p.consul, "user", 2)
		p.register(t, "survivor@example.com")
		tp := p.login(t, "survivor@example.com")
		p.users[0].kill()
		for i := 0; i < 20; i++ {
			api.do("GET", "/api/v1/users/me", tp.AccessToken, nil).must(t, 200)
			p.login(t, "survivor@example.com")
		}
		p.register(t, "after-the-crash@example.com")
	})
}

func TestRateLimitSharedByTwoGateways(t *testing.T) {
	consul, redisAddr := testkit.ConsulAddr(t), testkit.RedisAddr(t)
	var gws []*proc
	for i := 0; i < 2; i++ {
		gws = append(gws, start(t, "gateway", "-consul-addr", consul, "-redis-addr", redisAddr,
			"-jwt-secret", jwtSecret, "-rate-limit", "6", "-rate-burst", "6"))
	}
	token, _ := mustTokens(t, jwtSecret).Issue(auth.Identity{UserID: "rate-limited-user", Role: auth.RoleCustomer})
	var mu sync.Mutex
	codes := map[int]int{}
	for i := 0; i < 10; i++ {
		r := newClient(t, gws[i%2].addr).do("GET", "/api/v1/users/me", token, nil)
		mu.Lock()
		codes[r.Status]++
		mu.Unlock()
		if r.Status == http.StatusTooManyRequests && r.Header.Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
	}
	// Whether a user instance answers does not matter here (none may be
	// running): the point is how many requests the two gateways let through.
	if limited := codes[http.StatusTooManyRequests]; limited != 4 {
		t.Fatalf("status counts %v: want 6 let through and 4 limited across both gateways", codes)
	}
}

func mustTokens(t *testing.T, secret string) *auth.Tokens {
	t.Helper()
	tokens, err := auth.NewTokens([]byte(secret), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return tokens
}
