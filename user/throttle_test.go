package user

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/shared/app"
	"github.com/mercato-dev/mercato/shared/testkit"
)

// clock is a settable time for the throttle.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// newThrottledService is the service behind the throttle, on a real Redis,
// with its clock under the test's control, and a fresh account.
func newThrottledService(t *testing.T, o ThrottleOptions) (Service, *clock, string) {
	t.Helper()
	svc, _, _ := newTestService(t)
	c := &clock{now: time.Now()}
	o.Now = c.Now
	th, err := NewLoginThrottle(testkit.Redis(t), o, log.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	email := uuid.NewString() + "@example.com" // counters of other tests stay apart
	mustRegister(t, svc, email)
	return ThrottlingMiddleware(th)(svc), c, email
}

func from(address string) context.Context {
	return WithClientAddress(context.Background(), address)
}

// throttled returns the wait err asks for, failing the test if err is not a
// throttled login.
func throttled(t *testing.T, err error) time.Duration {
	t.Helper()
	var te *ThrottledError
	if !errors.As(err, &te) || !errors.Is(err, ErrLoginThrottled) || te.RetryAfter() <= 0 {
		t.Fatalf("err = %v, want a throttled login with a positive wait", err)
	}
	return te.RetryAfter()
}

// TestLoginThrottle: five wrong passwords from one address, then that
// address waits, even with the right password; the owner from another
// address logs in at once; each further failure doubles the wait.
func TestLoginThrottle(t *testing.T) {
	svc, clk, email := newThrottledService(t, ThrottleOptions{})
	attacker, owner := from("203.0.113.7"), from("198.51.100.20")

	for i := range 5 {
		if _, err := svc.Login(attacker, email, "wrong-password"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("failure %d: err = %v, want ErrInvalidCredentials", i+1, err)
		}
	}
	first := throttled(t, func() error { _, err := svc.Login(attacker, email, "wrong-password"); return err }())
	if first != time.Second {
		t.Errorf("first wait %v, want 1s", first)
	}
	// The right password from the throttled address waits too: the
	// throttle answers before the password is looked at.
	if _, err := svc.Login(attacker, strings.ToUpper(email), "password123"); !errors.Is(err, ErrLoginThrottled) {
		t.Errorf("right password from the throttled address (email in capitals): err = %v, want throttled", err)
	}
	// The owner, elsewhere, is not held up by the guesser.
	if _, err := svc.Login(owner, email, "password123"); err != nil {
		t.Fatalf("owner from another address: %v", err)
	}

	// The delay grows: 1s, then 2s, 4s, 8s after each further failure.
	want := first
	for i := range 3 {
		clk.advance(want)
		if _, err := svc.Login(attacker, email, "wrong-password"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("try %d after waiting %v: err = %v, want the password checked", i+1, want, err)
		}
		wait := throttled(t, func() error { _, err := svc.Login(attacker, email, "wrong-password"); return err }())
		if wait != 2*want {
			t.Errorf("wait after failure %d: %v, want %v", 6+i, wait, 2*want)
		}
		want = wait
	}

	// Waiting it out, the right password works, and clears the address.
	clk.advance(want)
	if _, err := svc.Login(attacker, email, "password123"); err != nil {
		t.Fatalf("right password after waiting: %v", err)
	}
	for i := range 5 {
		if _, err := svc.Login(attacker, email, "wrong-password"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("after a success, failure %d: err = %v, want a fresh allowance", i+1, err)
		}
	}
}

// TestLoginThrottleAccountCeiling: failures spread over many addresses
// throttle the account from every address once they pass the ceiling.
func TestLoginThrottleAccountCeiling(t *testing.T) {
	svc, clk, email := newThrottledService(t, ThrottleOptions{PairFreeFailures: 2, AccountFreeFailures: 6})
	for i := range 6 {
		addr := from("203.0.113." + string(rune('1'+i)))
		if _, err := svc.Login(addr, email, "wrong-password"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	throttled(t, func() error { _, err := svc.Login(from("198.51.100.20"), email, "password123"); return err }())
	clk.advance(time.Second)
	if _, err := svc.Login(from("198.51.100.20"), email, "password123"); err != nil {
		t.Fatalf("owner after the account's wait: %v", err)
	}
}

// TestLoginThrottleBurst: parallel guesses cannot all slip past the check
// before any is counted.
func TestLoginThrottleBurst(t *testing.T) {
	svc, _, email := newThrottledService(t, ThrottleOptions{})
	var checked atomic.Int32
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() {
			if _, err := svc.Login(from("203.0.113.7"), email, "wrong-password"); errors.Is(err, ErrInvalidCredentials) {
				checked.Add(1)
			}
		})
	}
	wg.Wait()
	if n := checked.Load(); n != 5 {
		t.Errorf("%d of 40 parallel guesses had their password checked, want 5", n)
	}
}

// TestLoginThrottleRedisDown: without Redis, logins go through (logged).
func TestLoginThrottleRedisDown(t *testing.T) {
	svc, _, _ := newTestService(t)
	mustRegister(t, svc, "ada@example.com")
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	defer down.Close()
	var logged bytes.Buffer
	th, err := NewLoginThrottle(down, ThrottleOptions{}, log.NewLogfmtLogger(&logged))
	if err != nil {
		t.Fatal(err)
	}
	svc = ThrottlingMiddleware(th)(svc)
	for range 7 {
		_, _ = svc.Login(from("203.0.113.7"), "ada@example.com", "wrong-password")
	}
	if _, err := svc.Login(from("203.0.113.7"), "ada@example.com", "password123"); err != nil {
		t.Fatalf("login with the throttle's Redis down: %v", err)
	}
	if !strings.Contains(logged.String(), "login throttle unavailable") {
		t.Errorf("not logged: %q", logged.String())
	}
}

// TestLoginThrottleRedisHung: a Redis that accepts connections but does not
// answer (frozen, or cut off by the network) costs a login at most the
// throttle's own bound, not the Redis client's timeouts. Before the client
// took deadlines from the context (app.RedisDefaults), the check and the
// refund of a right password waited for those (4 s and 2 s), so the login
// took 6 s, past the gateway's 5 s per attempt: 504, where the throttle
// promises to let logins through.
func TestLoginThrottleRedisHung(t *testing.T) {
	svc, _, _ := newTestService(t)
	mustRegister(t, svc, "ada@example.com")
	srv := testkit.NewRedis(t)
	o := testkit.RedisOptions(t, srv.Addr(), "user")
	app.RedisDefaults(o) // as app.Start runs it
	rdb := redis.NewClient(o)
	defer rdb.Close()
	th, err := NewLoginThrottle(rdb, ThrottleOptions{}, log.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	svc = ThrottlingMiddleware(th)(svc)
	if _, err := svc.Login(from("203.0.113.7"), "ada@example.com", "password123"); err != nil {
		t.Fatalf("login with Redis up: %v", err)
	}
	testkit.FreezeRedis(t, srv)
	start := time.Now()
	if _, err := svc.Login(from("203.0.113.7"), "ada@example.com", "password123"); err != nil {
		t.Fatalf("login with Redis hung: %v", err)
	}
	if took := time.Since(start); took > 2500*time.Millisecond {
		t.Errorf("login with Redis hung took %v, want under 2.5s (the gateway gives up after 5s)", took.Round(100*time.Millisecond))
	}
}

func TestThrottleOptionsRejected(t *testing.T) {
	for _, o := range []ThrottleOptions{
		{PairFreeFailures: 10, AccountFreeFailures: 5},
		{BaseDelay: time.Minute, MaxDelay: time.Second},
		{MaxDelay: 2 * time.Hour, Window: time.Hour},
	} {
		if _, err := NewLoginThrottle(nil, o, log.NewNopLogger()); err == nil {
			t.Errorf("NewLoginThrottle(%+v) accepted", o)
		}
	}
}

// The address the throttle counts by is the gateway's last X-Forwarded-For
// entry, else the connection's, and an IPv6 one is its /64: a guesser
// cannot take a fresh per-address allowance with each address of its block.
func TestClientAddressIsTheLastHopsBlock(t *testing.T) {
	for _, c := range []struct{ remote, forwarded, want string }{
		{"10.0.0.1:9000", "198.51.100.1, 2001:db8:5:6:1:2:3:4", "2001:db8:5:6::/64"},
		{"10.0.0.1:9000", "198.51.100.1", "198.51.100.1"},
		{"[2001:db8:7:8::9]:9000", "", "2001:db8:7:8::/64"},
		{"[::ffff:192.0.2.1]:9000", "", "192.0.2.1"},
	} {
		r := httptest.NewRequest("POST", "/api/v1/auth/login", nil)
		r.RemoteAddr = c.remote
		if c.forwarded != "" {
			r.Header.Set("X-Forwarded-For", c.forwarded)
		}
		if got := ClientAddress(clientAddressToContext(context.Background(), r)); got != c.want {
			t.Errorf("remote %s, X-Forwarded-For %q: counted as %s, want %s", c.remote, c.forwarded, got, c.want)
		}
	}
}
