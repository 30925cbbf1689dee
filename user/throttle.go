package user

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/shared/logging"
)

// Login throttling slows password guessing against one account down, shared
// by every user instance through Redis. Two counters of failed logins are
// kept per attempt, both keyed by the account (the normalised email, hashed,
// so no email sits in a key name), not by the address alone:
//
//   - per account and client address: after PairFreeFailures failures, each
//     further attempt from that address must wait BaseDelay, doubling with
//     every failure, up to MaxDelay. This is the one that stops a guesser,
//     and it leaves the real owner alone: from another address the owner
//     logs in as usual, with the right password, while the guesser waits.
//   - per account, all addresses together: the same growing delay, but only
//     after AccountFreeFailures failures (50 by default, ten addresses' worth).
//     A guesser who spreads over many addresses, or who bypasses the gateway
//     and so chooses the address the service sees, meets this ceiling; the
//     owner then waits too (429 with Retry-After), which is the price of
//     capping a distributed attack.
//
// A throttled attempt is refused before the password is checked (no bcrypt,
// no answer about the password) and does not count as a failure, so waiting
// out Retry-After always gets one more try. Each attempt is counted before
// its password is checked, atomically with the throttle check (one Lua
// script), so a burst of parallel guesses cannot all pass the check before
// any of them is recorded; an attempt that turns out right, or that failed
// for any reason but the password, is taken back. A success clears its
// address's counter. Unknown emails are counted like known ones, so the
// answers do not tell which accounts exist. Counters are forgotten Window
// after the last attempt. Every time is Redis's (TIME, in the script): the
// instances' clocks may disagree, and a wait one sets is judged by another.
//
// When Redis cannot answer, logins are let through unthrottled, and that is
// logged: failing closed would lock every user out during a Redis outage,
// while failing open only gives a guesser the bcrypt-bound speed the service
// had before, for as long as Redis is down.

// ErrLoginThrottled: too many failed logins for the account; the error in
// the chain is a *ThrottledError saying how long to wait.
var ErrLoginThrottled = errors.New("too many failed logins for this account; retry later")

// ThrottledError is a login refused by the throttle, to retry after Wait.
type ThrottledError struct{ Wait time.Duration }

func (e *ThrottledError) Error() string { return ErrLoginThrottled.Error() }

// Is makes errors.Is(err, ErrLoginThrottled) true.
func (e *ThrottledError) Is(target error) bool { return target == ErrLoginThrottled }

// RetryAfter is when the client may try again (httpkit sends it as the
// Retry-After header).
func (e *ThrottledError) RetryAfter() time.Duration { return e.Wait }

// ThrottleOptions tune the login throttle. Zero values take the defaults.
type ThrottleOptions struct {
	PairFreeFailures    int           // per account and address before delays start (5)
	AccountFreeFailures int           // per account, all addresses, before delays start (50)
	BaseDelay           time.Duration // the first delay (1s), doubled by every further failure
	MaxDelay            time.Duration // the longest delay (15m)
	Window              time.Duration // counters are forgotten this long after the last attempt (1h)
}

func (o ThrottleOptions) withDefaults() (ThrottleOptions, error) {
	set := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	setD := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	set(&o.PairFreeFailures, 5)
	set(&o.AccountFreeFailures, 50)
	setD(&o.BaseDelay, time.Second)
	setD(&o.MaxDelay, 15*time.Minute)
	setD(&o.Window, time.Hour)
	if o.PairFreeFailures < 0 || o.AccountFreeFailures < o.PairFreeFailures || o.BaseDelay < 0 ||
		o.MaxDelay < o.BaseDelay || o.Window < o.MaxDelay {
		return ThrottleOptions{}, fmt.Errorf("user: login throttle %+v: need 0 ≤ pair ≤ account failures, 0 ≤ base ≤ max delay ≤ window", o)
	}
	return o, nil
}

// ThrottleKeyPrefix starts the Redis keys of the throttle: a hash per
// account ("login:fail:<sha256 of the email>") and per account and address
// ("login:fail:<sha256>:<address>"), each with fields n (attempts counted)
// and last (unix ms of the last one, by Redis's clock: every instance
// compares it with the same clock, whatever its own says).
const ThrottleKeyPrefix = "login:fail:"

// LoginThrottle keeps the counters in Redis.
type LoginThrottle struct {
	rdb    redis.Cmdable
	o      ThrottleOptions
	logger log.Logger
}

// NewLoginThrottle returns the throttle kept in rdb.
func NewLoginThrottle(rdb redis.Cmdable, opts ThrottleOptions, logger log.Logger) (*LoginThrottle, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return &LoginThrottle{rdb: rdb, o: o, logger: logger}, nil
}

// attemptScript checks both counters and, when neither asks the client to
// wait, counts the attempt in both. It returns the wait in ms, 0 when the
// attempt may go ahead.
var attemptScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, base, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local function wait(key, free)
  local v = redis.call('HMGET', key, 'n', 'last')
  local n, last = tonumber(v[1]) or 0, tonumber(v[2]) or 0
  if n < free then return 0 end
  local d = base * 2 ^ math.min(n - free, 40)
  if d > max then d = max end
  return math.max(last + d - now, 0)
end
local w = math.max(wait(KEYS[1], tonumber(ARGV[4])), wait(KEYS[2], tonumber(ARGV[5])))
if w > 0 then return math.ceil(w) end
for i = 1, 2 do
  redis.call('HINCRBY', KEYS[i], 'n', 1)
  redis.call('HSET', KEYS[i], 'last', now)
  redis.call('PEXPIRE', KEYS[i], window)
end
return 0
`)

// refundScript takes an attempt back: from the account's counter, and from
// the address's (ARGV[1] = "clear": deleted, after a success).
var refundScript = redis.NewScript(`
if ARGV[1] == 'clear' then redis.call('DEL', KEYS[1]) end
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('HINCRBY', KEYS[i], 'n', -1) end
end
return 0
`)

func (t *LoginThrottle) keys(account, address string) []string {
	h := sha256.Sum256([]byte(account))
	acct := ThrottleKeyPrefix + hex.EncodeToString(h[:])
	return []string{acct + ":" + address, acct}
}

// attempt counts a login attempt on account from address, or returns how
// long the client must wait first. It fails open (0, logged).
func (t *LoginThrottle) attempt(ctx context.Context, account, address string) time.Duration {
	ctx, cancel := context.WithTimeout(ctx, throttleTimeout)
	defer cancel()
	ms, err := attemptScript.Run(ctx, t.rdb, t.keys(account, address),
		t.o.Window.Milliseconds(), t.o.BaseDelay.Milliseconds(), t.o.MaxDelay.Milliseconds(),
		t.o.PairFreeFailures, t.o.AccountFreeFailures).Int64()
	if err != nil {
		level.Warn(logging.WithRequest(ctx, t.logger)).Log("msg", "login throttle unavailable; login let through", "err", err)
		return 0
	}
	return time.Duration(ms) * time.Millisecond
}

// settle takes the attempt back unless it was a wrong password; a success
// also clears the address's counter.
func (t *LoginThrottle) settle(ctx context.Context, account, address string, loginErr error) {
	if errors.Is(loginErr, ErrInvalidCredentials) {
		return
	}
	mode := "refund"
	if loginErr == nil {
		mode = "clear"
	}
	// The client's answer does not wait on Redis going wrong after the fact.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), throttleTimeout)
	defer cancel()
	if err := refundScript.Run(ctx, t.rdb, t.keys(account, address), mode).Err(); err != nil {
		level.Warn(logging.WithRequest(ctx, t.logger)).Log("msg", "login throttle: attempt not taken back", "err", err)
	}
}

// throttleTimeout bounds each of the throttle's Redis calls, so a Redis that
// hangs slows a login by at most twice this (the check and the refund),
// well within the gateway's 5 s per attempt. It is generous: a call that
// gives up lets the login through unthrottled.
const throttleTimeout = time.Second

// ThrottlingMiddleware throttles Service.Login with t (see LoginThrottle);
// every other method passes straight through, which is why it embeds next.
// The client's address is what the transport put in the context
// (WithClientAddress).
func ThrottlingMiddleware(t *LoginThrottle) Middleware {
	return func(next Service) Service { return &throttlingMiddleware{Service: next, t: t} }
}

type throttlingMiddleware struct {
	Service // next
	t       *LoginThrottle
}

var _ Service = (*throttlingMiddleware)(nil)

func (mw *throttlingMiddleware) Login(ctx context.Context, email, password string) (TokenPair, error) {
	account, address := NormalizeEmail(email), ClientAddress(ctx)
	if wait := mw.t.attempt(ctx, account, address); wait > 0 {
		return TokenPair{}, &ThrottledError{Wait: wait}
	}
	pair, err := mw.Service.Login(ctx, email, password)
	mw.t.settle(ctx, account, address, err)
	return pair, err
}

type clientAddressKey struct{}

// WithClientAddress returns ctx carrying the address of the client a
// request comes from (the transport's, from the gateway's X-Forwarded-For).
func WithClientAddress(ctx context.Context, address string) context.Context {
	return context.WithValue(ctx, clientAddressKey{}, address)
}

// ClientAddress is the client's address WithClientAddress put in ctx, or
// "unknown".
func ClientAddress(ctx context.Context) string {
	if a, _ := ctx.Value(clientAddressKey{}).(string); a != "" {
		return a
	}
	return "unknown"
}
