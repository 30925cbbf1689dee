package e2e

import (
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/mercato-dev/mercato/shared/testkit"
)

// fromAddress is a client of the gateway whose connections come from ip, a
// loopback address other than 127.0.0.1: another client address, as far as
// the gateway (and so the login throttle) can tell.
func fromAddress(t *testing.T, gatewayAddr, ip string) *client {
	c := newClient(t, gatewayAddr)
	dialer := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c.http.Transport = &http.Transport{DialContext: dialer.DialContext}
	return c
}

// TestAuthPlatform: a user instance and a gateway sharing one Redis, as in
// make run, through the gateway's public API: login throttling (finding 4:
// "there is no per-account login throttling") and access tokens that stop
// working at logout (finding 4: "an access token keeps working for up to 15
// minutes after logout").
func TestAuthPlatform(t *testing.T) {
	consul := testkit.NewConsul(t).Addr()
	redisAddr := testkit.NewRedis(t).Addr()
	userProc := start(t, "user", "-consul-addr", consul, "-database-url", testkit.PostgresURL(t),
		"-redis-addr", redisAddr, "-jwt-secret", jwtSecret, "-bcrypt-cost", "4")
	waitPassing(t, consul, "user", 1)
	gw := start(t, "gateway", "-consul-addr", consul, "-redis-addr", redisAddr, "-jwt-secret", jwtSecret,
		"-rate-limit", "100000", "-rate-burst", "10000")
	p := &userPlatform{api: newClient(t, gw.addr)}
	attacker, owner := p.api, fromAddress(t, gw.addr, "127.0.0.2")
	wrong := map[string]string{"email": "ada@example.com", "password": "wrong-pass"}
	right := map[string]string{"email": "Ada@Example.com ", "password": "correct-horse"}
	p.register(t, "ada@example.com")

	t.Run("N wrong passwords: throttled with 429 and a growing Retry-After; the owner elsewhere logs in", func(t *testing.T) {
		for i := range 5 {
			if code := attacker.do("POST", "/api/v1/auth/login", "", wrong).must(t, http.StatusUnauthorized).errorCode(t); code != "invalid_credentials" {
				t.Fatalf("failure %d: %s", i+1, code)
			}
		}
		retryAfter := func(r response) int {
			t.Helper()
			r.must(t, http.StatusTooManyRequests)
			if code := r.errorCode(t); code != "login_throttled" {
				t.Fatalf("429 with code %q, want login_throttled", code)
			}
			s, err := strconv.Atoi(r.Header.Get("Retry-After"))
			if err != nil || s < 1 {
				t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
			}
			return s
		}
		first := retryAfter(attacker.do("POST", "/api/v1/auth/login", "", wrong))
		// Throttled means throttled, even with the right password.
		retryAfter(attacker.do("POST", "/api/v1/auth/login", "", right))
		// The owner, from another address, logs in with the right password.
		var tp tokenPair
		owner.do("POST", "/api/v1/auth/login", "", right).must(t, http.StatusOK).decode(t, &tp)
		owner.do("GET", "/api/v1/users/me", tp.AccessToken, nil).must(t, http.StatusOK)

		// Waiting it out buys one more try; failing it doubles the wait.
		time.Sleep(time.Duration(first) * time.Second)
		attacker.do("POST", "/api/v1/auth/login", "", wrong).must(t, http.StatusUnauthorized)
		if second := retryAfter(attacker.do("POST", "/api/v1/auth/login", "", wrong)); second <= first {
			t.Errorf("Retry-After %d after one more failure, want more than %d", second, first)
		}
	})

	t.Run("after logout the access token gets 401 token_revoked, from the service and from the gateway", func(t *testing.T) {
		var tp, other tokenPair
		owner.do("POST", "/api/v1/auth/login", "", right).must(t, http.StatusOK).decode(t, &tp)
		owner.do("POST", "/api/v1/auth/login", "", right).must(t, http.StatusOK).decode(t, &other)
		owner.do("GET", "/api/v1/users/me", tp.AccessToken, nil).must(t, http.StatusOK)
		owner.do("POST", "/api/v1/auth/logout", tp.AccessToken, map[string]string{"refresh_token": tp.RefreshToken}).
			must(t, http.StatusNoContent)

		for _, path := range []string{"/api/v1/users/me", "/api/v1/users/me/addresses"} {
			if code := owner.do("GET", path, tp.AccessToken, nil).must(t, http.StatusUnauthorized).errorCode(t); code != "token_revoked" {
				t.Errorf("GET %s with the logged-out token: %s, want token_revoked", path, code)
			}
		}
		owner.do("POST", "/api/v1/auth/logout", tp.AccessToken, map[string]string{"refresh_token": tp.RefreshToken}).
			must(t, http.StatusUnauthorized)
		owner.do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": tp.RefreshToken}).must(t, http.StatusUnauthorized)
		// Another session of the same user is not touched.
		owner.do("GET", "/api/v1/users/me", other.AccessToken, nil).must(t, http.StatusOK)

		// With no user instance behind it, the gateway still refuses the
		// revoked token itself (401), where a live one now gets 503: the
		// gateway checks the denylist before forwarding anything.
		userProc.kill()
		if code := owner.do("GET", "/api/v1/users/me", tp.AccessToken, nil).must(t, http.StatusUnauthorized).errorCode(t); code != "token_revoked" {
			t.Errorf("gateway answered the revoked token with %s, want token_revoked", code)
		}
		owner.do("GET", "/api/v1/users/me", other.AccessToken, nil).must(t, http.StatusServiceUnavailable)
	})
}
