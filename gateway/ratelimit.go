package gateway

import (
	"context"
	"math"
	"net"
	"net/http"
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

// rateLimiter limits each client — a signed-in user by id, anyone else by
// IP — with a GCRA limiter kept in Redis, so every gateway instance draws on
// the same allowance.
type rateLimiter struct {
	limiter *redis_rate.Limiter
	limit   redis_rate.Limit
	logger  log.Logger
	limited metrics.Counter
}

func newRateLimiter(rdb *redis.Client, limit redis_rate.Limit, logger log.Logger, limited metrics.Counter) *rateLimiter {
	return &rateLimiter{limiter: redis_rate.NewLimiter(rdb), limit: limit, logger: logger, limited: limited}
}

// allow reports whether the client may make one more request now. It fails
// open when Redis cannot answer: a rate limiter that takes the whole API
// down with it protects nothing. The failure is logged.
func (l *rateLimiter) allow(ctx context.Context, w http.ResponseWriter, client string) bool {
	ctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
	defer cancel()
	res, err := l.limiter.Allow(ctx, "ratelimit:"+client, l.limit)
	if err != nil {
		level.Warn(logging.WithRequest(ctx, l.logger)).Log("msg", "rate limiter unavailable; request let through", "err", err)
		return true
	}
	w.Header().Set("X-RateLimit-Limit", strconv.Itoa(l.limit.Rate))
	w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(res.Remaining))
	if res.Allowed > 0 {
		return true
	}
	l.limited.Add(1)
	e := httpkit.NewError(http.StatusTooManyRequests, "rate_limited", "too many requests; retry later")
	e.RetryAfter = int(math.Ceil(res.RetryAfter.Seconds()))
	if e.RetryAfter < 1 {
		e.RetryAfter = 1
	}
	httpkit.WriteError(w, e)
	return false
}

// clientKey names the allowance a request draws on.
func clientKey(r *http.Request, id auth.Identity, ok bool) string {
	if ok {
		return "user:" + id.UserID
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "ip:" + host
}
