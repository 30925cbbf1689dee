package gateway

import (
	"context"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/go-kit/kit/metrics"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/httpkit"
	"github.com/mercato-dev/mercato/shared/logging"
)

// The gateway's default allowances, what cmd/gateway's flags default to.
const (
	DefaultRatePerMinute = 600 // requests per minute per client
	DefaultRateBurst     = 100 // requests a client may send at once
)

// RateClass names an allowance of its own in the rate limiter: a route's
// requests draw on their sender's allowance of the route's class.
type RateClass string

const (
	// ClientRate is the default class: a signed-in user's allowance, by user
	// id, or anyone else's, by address. A request with a bad token counts
	// against its address.
	ClientRate RateClass = ""
	// WebhookRate is the payment providers' callbacks', by address: a flood
	// of other anonymous requests from an address does not delay payment
	// confirmations, and a flood of webhooks does not eat that address's
	// anonymous allowance.
	WebhookRate RateClass = "webhook"
)

// rateLimiter limits each client — a signed-in user by id, anyone else by
// IP — with a GCRA limiter kept in Redis, so every gateway instance draws on
// the same allowance; each RateClass has allowances of its own. Requests are
// decided locally from leases of that allowance (see leases for the error
// bound this costs).
type rateLimiter struct {
	leases  *leases
	limits  map[RateClass]redis_rate.Limit
	logger  log.Logger
	limited metrics.Counter
}

func newRateLimiter(rdb *redis.Client, limits map[RateClass]redis_rate.Limit, logger log.Logger, limited metrics.Counter) *rateLimiter {
	return &rateLimiter{leases: newLeases(redis_rate.NewLimiter(rdb)), limits: limits, logger: logger, limited: limited}
}

// allow reports whether the client may make one more request of class now.
// It fails open when Redis cannot answer: a rate limiter that takes the
// whole API down with it protects nothing. The failure is logged.
func (l *rateLimiter) allow(ctx context.Context, w http.ResponseWriter, class RateClass, client string) bool {
	ctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
	defer cancel()
	limit := l.limits[class]
	d, err := l.leases.take(ctx, rateKey(class, client), limit)
	if err != nil {
		level.Warn(logging.WithRequest(ctx, l.logger)).Log("msg", "rate limiter unavailable; request let through", "err", err)
		return true
	}
	w.Header().Set("X-RateLimit-Limit", strconv.Itoa(limit.Rate))
	w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(d.remaining))
	if d.allowed {
		return true
	}
	l.limited.Add(1)
	e := httpkit.NewError(http.StatusTooManyRequests, "rate_limited", "too many requests; retry later")
	e.RetryAfter = max(1, int(math.Ceil(d.retryAfter.Seconds())))
	httpkit.WriteError(w, e)
	return false
}

// rateKey is the Redis key (under redis_rate's own prefix) of client's
// allowance of class: "ratelimit:<client>" for ClientRate, as before classes
// existed, "ratelimit:<class>:<client>" for the others.
func rateKey(class RateClass, client string) string {
	if class == ClientRate {
		return "ratelimit:" + client
	}
	return "ratelimit:" + string(class) + ":" + client
}

// clientKey names the allowance a request draws on: the user's when it
// carries a valid token (ok), else its address's.
func clientKey(r *http.Request, id auth.Identity, ok bool) string {
	if ok {
		return "user:" + id.UserID
	}
	return addressKey(r)
}

// addressKey names the allowance of the sender's address: of its /64 for
// IPv6 (httpkit.AddressBlock).
func addressKey(r *http.Request) string {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return "ip:" + httpkit.AddressBlock(ap.Addr())
	}
	return "ip:" + r.RemoteAddr
}

// perWindow is the most requests limit lets one client send in window: a
// whole burst, then the rate.
func perWindow(limit redis_rate.Limit, window time.Duration) int {
	if limit.Period <= 0 {
		return limit.Burst
	}
	return limit.Burst + int(math.Ceil(float64(limit.Rate)*window.Seconds()/limit.Period.Seconds()))
}
