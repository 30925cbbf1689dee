package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
)

// The rate limiter decides locally, from leases: an instance takes a few
// requests' worth of a client's allowance from Redis at once (redis_rate's
// AllowAtMost, the same GCRA state every instance shares) and spends them
// without asking Redis again; when half a lease is spent it takes the next
// one in the background, so a busy client's requests seldom wait for Redis.
//
// The error this costs is one way only. Every request let through spent a
// token Redis handed out, so the instances together never let a client
// exceed its shared allowance (while Redis answers: the limiter fails open).
// What a lease holds back is refused early: a client may be refused while
// up to leaseHold(limit) of its tokens sit unspent in each other instance,
// and a lease not spent within leaseTTL is forfeited.
// Leases start at one request and double while they are spent in time, up
// to leaseSize(limit), a tenth of the burst: a client that sends little
// leases one request at a time, exactly as if every request asked Redis,
// and a limit with a burst under 20 is kept exactly.
const (
	leaseTTL  = time.Second
	maxLeases = 100_000 // clients with a lease; past it, requests ask Redis one by one
)

// leaseSize is the most requests one lease of limit holds.
func leaseSize(limit redis_rate.Limit) int {
	return max(1, limit.Burst/10)
}

// leaseHold is the most of a client's tokens one instance may hold unspent:
// the rest of a lease spent to below half (when the next is taken) and the
// whole next lease, 3/20 of the burst less one.
func leaseHold(limit redis_rate.Limit) int {
	size := leaseSize(limit)
	return size/2 - 1 + size
}

// lease is one instance's share of one client's allowance.
type lease struct {
	tokens    int       // requests it may still let through
	size      int       // what the next lease asks for
	expires   time.Time // when unspent tokens are forfeited
	remaining int       // the shared allowance left when it was taken
	blocked   time.Time // refused until then: Redis said the allowance is spent
	refill    chan struct{}
}

// decision is what the limiter says of one request.
type decision struct {
	allowed    bool
	remaining  int
	retryAfter time.Duration
}

// leases are an instance's leases, by Redis key.
type leases struct {
	limiter *redis_rate.Limiter
	now     func() time.Time
	mu      sync.Mutex
	byKey   map[string]*lease
}

func newLeases(limiter *redis_rate.Limiter) *leases {
	return &leases{limiter: limiter, now: time.Now, byKey: map[string]*lease{}}
}

// take decides one request of the client whose allowance is key under
// limit. err is Redis's failure, the request then let through.
func (ls *leases) take(ctx context.Context, key string, limit redis_rate.Limit) (decision, error) {
	for {
		ls.mu.Lock()
		l := ls.leaseOf(key)
		if l == nil {
			ls.mu.Unlock()
			return ls.ask(ctx, key, limit, 1)
		}
		now := ls.now()
		switch {
		case now.Before(l.blocked):
			ls.mu.Unlock()
			return decision{retryAfter: l.blocked.Sub(now)}, nil
		case l.tokens > 0 && now.Before(l.expires):
			l.tokens--
			d := decision{allowed: true, remaining: l.remaining + l.tokens}
			if l.refill == nil && l.size > 1 && l.tokens < l.size/2 {
				l.size = min(2*l.size, leaseSize(limit))
				ls.startRefill(context.Background(), key, l, limit, false)
			}
			ls.mu.Unlock()
			return d, nil
		case l.refill != nil:
			// Another request is taking the next lease: wait for it.
			ch := l.refill
			ls.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return decision{allowed: true}, ctx.Err()
			}
		}
		// Spent or expired: take the next lease now.
		if now.Before(l.expires) { // spent in time: lease more
			l.size = min(2*l.size, leaseSize(limit))
		} else {
			// Expired, spent or not: this client sends little (a lease
			// spent by the request that took it says nothing of the next).
			l.size = 1
		}
		l.tokens = 0
		// The request's trace, not its deadline: the lease outlives it.
		done := ls.startRefill(context.WithoutCancel(ctx), key, l, limit, true)
		ls.mu.Unlock()
		select {
		case err := <-done:
			if err != nil {
				return decision{allowed: true}, err
			}
		case <-ctx.Done():
			return decision{allowed: true}, ctx.Err()
		}
	}
}

// startRefill asks Redis for l.size more of key's allowance, without
// ls.mu held, and returns a channel that gets Redis's error (nil when it
// answered). wanted: a request waits for it, and is refused if Redis has
// nothing left. Called with ls.mu held.
func (ls *leases) startRefill(ctx context.Context, key string, l *lease, limit redis_rate.Limit, wanted bool) <-chan error {
	ch := make(chan struct{})
	l.refill = ch
	n := l.size
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		defer cancel()
		res, err := ls.limiter.AllowAtMost(ctx, key, limit, n)
		ls.mu.Lock()
		now := ls.now()
		if err == nil {
			switch {
			case res.Allowed > 0:
				l.tokens += res.Allowed
				l.expires = now.Add(leaseTTL)
				l.remaining = res.Remaining
			case wanted:
				l.blocked = now.Add(max(res.RetryAfter, time.Millisecond))
			}
		}
		l.refill = nil
		close(ch)
		ls.mu.Unlock()
		done <- err
	}()
	return done
}

// leaseOf returns key's lease, a new empty one if it has none, or nil when
// maxLeases clients already have one and none is stale. Called with ls.mu
// held.
func (ls *leases) leaseOf(key string) *lease {
	if l, ok := ls.byKey[key]; ok {
		return l
	}
	if len(ls.byKey) >= maxLeases {
		now := ls.now()
		for k, l := range ls.byKey {
			if l.refill == nil && !now.Before(l.expires) && !now.Before(l.blocked) {
				delete(ls.byKey, k)
			}
		}
		if len(ls.byKey) >= maxLeases {
			return nil
		}
	}
	l := &lease{size: 1}
	ls.byKey[key] = l
	return l
}

// ask is one request decided by Redis alone, as without leases.
func (ls *leases) ask(ctx context.Context, key string, limit redis_rate.Limit, n int) (decision, error) {
	res, err := ls.limiter.AllowN(ctx, key, limit, n)
	if err != nil {
		return decision{allowed: true}, err
	}
	return decision{allowed: res.Allowed > 0, remaining: res.Remaining, retryAfter: res.RetryAfter}, nil
}
