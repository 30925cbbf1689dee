package user

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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

// clock moves the throttle's records of an account back in time, as
// waiting would: the throttle reads Redis's clock, which a test cannot set.
type clock struct {
	t       *testing.T
	rdb     *redis.Client
	account string // the account's key; its addresses' keys start with it
}

// advance makes every attempt recorded for the account d older.
func (c *clock) advance(d time.Duration) {
	c.t.Helper()
	ctx := context.Background()
	keys, err := c.rdb.Keys(ctx, c.account+"*").Result()
	if err != nil {
		c.t.Fatal(err)
	}
	for _, k := range keys {
		if err := c.rdb.HIncrBy(ctx, k, "last", -d.Milliseconds()).Err(); err != nil {
			c.t.Fatal(err)
		}
	}
}

// newThrottledService is the service behind the throttle, on a real Redis,
// with a fresh account whose records the test can age.
func newThrottledService(t *testing.T, o ThrottleOptions) (Service, *clock, string) {
	t.Helper()
	svc, _, _ := newTestService(t)
	rdb := testkit.Redis(t)
	th, err := NewLoginThrottle(rdb, o, log.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	email := uuid.NewString() + "@example.com" // counters of other tests stay apart
	mustRegister(t, svc, email)
	return ThrottlingMiddleware(th)(svc), &clock{t: t, rdb: rdb, account: th.keys(NormalizeEmail(email), "")[1]}, email
}

// about fails the test unless the wait got is want less the time the test
// itself took since the attempt that set it (Redis's clock runs on).
func about(t *testing.T, what string, got, want time.Duration) {
	t.Helper()
	if got > want || got < want-250*time.Millisecond {
		t.Errorf("%s: %v, want %v (less the test's own time, under 250ms)", what, got, want)
	}
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
	about(t, "first wait", first, time.Second)
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
		about(t, fmt.Sprintf("wait after failure %d", 6+i), wait, time.Second<<(i+1))
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

// TestLoginThrottleOneClockForAllInstances plays two user instances on one
// Redis, the second's clock 10s ahead of the first's. A wait is the same
// whichever instance judges an attempt: the fast one lets no attempt skip
// the wait the slow one's failure set, and once the Retry-After one gave is
// waited out, the other checks the password. Before, each instance wrote
// and compared its own clock's times: the fast one skipped every delay
// under 10s, and after its failures the slow one added 10s to every wait.
func TestLoginThrottleOneClockForAllInstances(t *testing.T) {
	attacker := from("203.0.113.7")
	wrong := func(svc Service, email string) error {
		_, err := svc.Login(attacker, email, "wrong-password")
		return err
	}
	for _, c := range []struct{ failOn, tryOn string }{{"slow", "fast"}, {"fast", "slow"}} {
		instances, clk, email := newThrottledInstances(t, 10*time.Second)
		for i := range 5 {
			if err := wrong(instances[c.failOn], email); !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("failure %d: %v", i+1, err)
			}
		}
		err := wrong(instances[c.tryOn], email)
		if errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("five failures on the %s instance, then one on the %s at once: the password was checked, want a wait of 1s",
				c.failOn, c.tryOn)
			continue
		}
		wait := throttled(t, err)
		about(t, fmt.Sprintf("five failures on the %s instance, then the wait on the %s", c.failOn, c.tryOn), wait, time.Second)
		clk.advance(wait)
		for _, name := range []string{c.failOn, c.tryOn} {
			if err := wrong(instances[name], email); !errors.Is(err, ErrInvalidCredentials) {
				t.Errorf("the %s instance's Retry-After of %v waited out, the %s instance: err = %v, want the password checked",
					c.tryOn, wait, name, err)
			}
			clk.advance(4 * time.Second) // the next try's wait
		}
	}
}

// newThrottledInstances is two instances of the service (one repository,
// one Redis) behind their throttles, "slow" and "fast", the fast one's clock
// ahead by skew, with a fresh account.
func newThrottledInstances(t *testing.T, skew time.Duration) (map[string]Service, *clock, string) {
	t.Helper()
	slow, clk, email := newThrottledService(t, ThrottleOptions{})
	inner := slow.(*throttlingMiddleware).Service
	rdb := testkit.Redis(t)
	rdb.AddHook(clockAhead{by: skew})
	th, err := NewLoginThrottle(rdb, ThrottleOptions{}, log.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	return map[string]Service{"slow": slow, "fast": ThrottlingMiddleware(th)(inner)}, clk, email
}

// clockAhead is a Redis client hook standing for an instance whose clock
// runs by ahead: every time it sends (a unix ms within a day of now) is
// that much later.
type clockAhead struct{ by time.Duration }

func (h clockAhead) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h clockAhead) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		now, args := time.Now().UnixMilli(), cmd.Args()
		for i, a := range args {
			if ms, ok := a.(int64); ok && ms > now-24*3600*1000 && ms < now+24*3600*1000 {
				args[i] = ms + h.by.Milliseconds()
			}
		}
		return next(ctx, cmd)
	}
}

func (h clockAhead) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
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
