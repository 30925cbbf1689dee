package auth

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/shared/logging"
)

// DenylistKeyPrefix starts the Redis key of every revoked token id:
// "auth:revoked:<jti>". The user service writes them (SET … PX); the gateway
// and every service that verifies tokens reads them (EXISTS).
const DenylistKeyPrefix = "auth:revoked:"

// denylistTimeout bounds one look-up, so a Redis that hangs slows each
// request by at most this much instead of stalling it.
const denylistTimeout = 250 * time.Millisecond

// ErrRevocationUnavailable: a logout could not record the revocation of its
// access token (Redis did not answer), so the session was not ended; the
// client may retry.
var ErrRevocationUnavailable = &Error{http.StatusServiceUnavailable, "service_unavailable",
	"the session could not be ended now; retry later"}

// Denylist holds the ids of access tokens revoked before their expiry, in
// Redis, shared by every instance of every service. Each entry lives as long
// as the token it names would have, so the list never holds more than the
// tokens revoked within one token lifetime.
type Denylist struct {
	rdb    redis.Cmdable
	logger log.Logger
}

// NewDenylist returns the denylist kept in rdb; look-ups that fail are
// logged to logger.
func NewDenylist(rdb redis.Cmdable, logger log.Logger) *Denylist {
	return &Denylist{rdb: rdb, logger: logger}
}

// Revoke adds at to the list until it expires. A token without an id (issued
// before ids existed) or already expired needs no entry. It fails, with
// ErrRevocationUnavailable in the chain, when Redis does not record it: the
// caller must not report the session as ended.
func (d *Denylist) Revoke(ctx context.Context, at AccessToken) error {
	ttl := time.Until(at.ExpiresAt)
	if at.ID == "" || ttl <= 0 {
		return nil
	}
	if err := d.rdb.Set(ctx, DenylistKeyPrefix+at.ID, 1, ttl).Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrRevocationUnavailable, err)
	}
	return nil
}

// Revoked reports whether the token with id was revoked.
//
// It fails open: when Redis cannot answer within denylistTimeout, the token
// counts as not revoked, and the failure is logged. Failing closed would turn
// a Redis outage into an outage of every signed-in route of every service;
// failing open costs only what the platform accepted before the denylist
// existed, a logged-out token that keeps working until it expires (at most
// one access-token lifetime, 15 minutes by default), and only while Redis is
// down. The gateway's rate limiter makes the same choice.
func (d *Denylist) Revoked(ctx context.Context, id string) bool {
	if id == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, denylistTimeout)
	defer cancel()
	n, err := d.rdb.Exists(ctx, DenylistKeyPrefix+id).Result()
	if err != nil {
		level.Warn(logging.WithRequest(ctx, d.logger)).Log("msg", "token denylist unavailable; token let through", "err", err)
		return false
	}
	return n > 0
}
