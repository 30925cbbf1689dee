package auth

import (
	"context"
	"fmt"
	"net/http"
	"sync"
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
// as the token it names would have (and clockSkew), so the list never holds
// more than the tokens revoked within one token lifetime.
type Denylist struct {
	rdb     redis.Cmdable
	logger  log.Logger
	lookups *lookups
}

// NewDenylist returns the denylist kept in rdb; look-ups that fail are
// logged to logger.
func NewDenylist(rdb redis.Cmdable, logger log.Logger) *Denylist {
	return &Denylist{rdb: rdb, logger: logger, lookups: &lookups{rdb: rdb}}
}

// clockSkew is how long a denylist entry outlives its token: a verifier
// whose clock runs behind the user service's still takes the token for that
// long (expiry is checked without leeway), and must still find it revoked.
const clockSkew = time.Minute

// Revoke adds at to the list until it expires, and clockSkew more. A token
// without an id (issued before ids existed) or expired longer ago than that
// needs no entry. It fails, with
// ErrRevocationUnavailable in the chain, when Redis does not record it: the
// caller must not report the session as ended.
func (d *Denylist) Revoke(ctx context.Context, at AccessToken) error {
	ttl := time.Until(at.ExpiresAt) + clockSkew
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
	n, err := d.lookups.exists(ctx, DenylistKeyPrefix+id)
	if err != nil {
		level.Warn(logging.WithRequest(ctx, d.logger)).Log("msg", "token denylist unavailable; token let through", "err", err)
		return false
	}
	return n > 0
}

// lookups sends the denylist's look-ups of concurrent requests to Redis
// together, one pipeline of EXISTS at a time: under load one round trip
// answers many requests, where each used to wait for its own. A look-up
// joins the pipeline that is sent after it was asked for, never one
// already in flight, so it sees every revocation recorded before it began,
// as a look-up of its own would. The pipeline is in the trace of the
// request that started it.
type lookups struct {
	rdb     redis.Cmdable
	mu      sync.Mutex
	queue   []*lookup
	sending bool
}

type lookup struct {
	key  string
	n    int64
	err  error
	done chan struct{}
}

func (ls *lookups) exists(ctx context.Context, key string) (int64, error) {
	l := &lookup{key: key, done: make(chan struct{})}
	ls.mu.Lock()
	ls.queue = append(ls.queue, l)
	if !ls.sending {
		ls.sending = true
		go ls.send(context.WithoutCancel(ctx)) //nolint:gosec // G118: the pipeline serves other requests too; it keeps the trace, not this deadline
	}
	ls.mu.Unlock()
	select {
	case <-l.done:
		return l.n, l.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// send pipelines the queued look-ups until none is left.
func (ls *lookups) send(ctx context.Context) {
	for {
		ls.mu.Lock()
		batch := ls.queue
		ls.queue = nil
		if len(batch) == 0 {
			ls.sending = false
			ls.mu.Unlock()
			return
		}
		ls.mu.Unlock()
		bctx, cancel := context.WithTimeout(ctx, denylistTimeout)
		cmds := make(map[string]*redis.IntCmd, len(batch)) // one per token: a client's parallel requests share it
		_, _ = ls.rdb.Pipelined(bctx, func(p redis.Pipeliner) error {
			for _, l := range batch {
				if cmds[l.key] == nil {
					cmds[l.key] = p.Exists(bctx, l.key)
				}
			}
			return nil
		}) // each command carries its own error
		cancel()
		for _, l := range batch {
			l.n, l.err = cmds[l.key].Result()
			close(l.done)
		}
		ctx = context.Background() // the next batch is no one request's
	}
}
