package gateway

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/shared/testkit"
)

// countCalls counts the commands a client sends Redis.
type countCalls struct{ n atomic.Int64 }

func (c *countCalls) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *countCalls) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}
func (c *countCalls) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// gatewayLeases are n gateway instances' leases, each with its own Redis
// client (the gateway's ACL user) on one Redis, and their command counts.
func gatewayLeases(t *testing.T, n int) ([]*leases, []*countCalls) {
	t.Helper()
	addr := testkit.RedisAddr(t)
	var ls []*leases
	var calls []*countCalls
	for range n {
		rdb := redis.NewClient(testkit.RedisOptions(t, addr, "gateway"))
		t.Cleanup(func() { rdb.Close() })
		c := &countCalls{}
		rdb.AddHook(c)
		ls = append(ls, newLeases(redis_rate.NewLimiter(rdb)))
		calls = append(calls, c)
	}
	return ls, calls
}

// Two gateway instances under a flood of one client's concurrent requests,
// spread over both, let through no more than the shared allowance, and at
// most leaseHold per instance fewer (what an instance may hold back), while
// asking Redis far less often than once a request.
func TestLeasesKeepTheSharedLimitAcrossGateways(t *testing.T) {
	ls, calls := gatewayLeases(t, 2)
	// A burst of 400 and one request an hour: nothing accrues during the test.
	limit := redis_rate.Limit{Rate: 1, Burst: 400, Period: time.Hour}
	key := fmt.Sprintf("ratelimit:user:lease-%d", time.Now().UnixNano())
	const requests = 1000
	var allowed, refused atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := next.Add(1); i <= requests; i = next.Add(1) {
				d, err := ls[i%2].take(context.Background(), key, limit)
				if err != nil {
					t.Error(err)
					return
				}
				if d.allowed {
					allowed.Add(1)
				} else {
					refused.Add(1)
					if d.retryAfter <= 0 {
						t.Errorf("refused without a Retry-After: %+v", d)
					}
				}
			}
		})
	}
	wg.Wait()
	most, least := int64(limit.Burst), int64(limit.Burst-2*leaseHold(limit))
	if got := allowed.Load(); got > most || got < least {
		t.Fatalf("%d of %d requests let through, want between %d and %d", got, requests, least, most)
	}
	t.Logf("%d let through, %d refused; Redis asked %d and %d times", allowed.Load(), refused.Load(), calls[0].n.Load(), calls[1].n.Load())
	if allowed.Load()+refused.Load() != requests {
		t.Fatalf("%d allowed + %d refused != %d", allowed.Load(), refused.Load(), requests)
	}
	// Per instance: a few leases, and a refusal remembered until Retry-After.
	for i, c := range calls {
		if n := c.n.Load(); n > requests/10 {
			t.Errorf("instance %d asked Redis %d times for %d requests", i, n, requests/2)
		}
	}
	// Redis's own count agrees: the allowance is spent.
	d, err := ls[0].ask(context.Background(), key, limit, 1)
	if err != nil || d.allowed {
		t.Fatalf("after the flood Redis still allows: %+v %v", d, err)
	}
}

// TestAnInstanceHoldsBackAtMostLeaseHold: a client spending its lease in
// time on one instance leaves at most leaseHold of its tokens there, unspent,
// which another instance then refuses it (docs/performance.md's bound).
func TestAnInstanceHoldsBackAtMostLeaseHold(t *testing.T) {
	ls, _ := gatewayLeases(t, 1)
	l := ls[0]
	limit := redis_rate.Limit{Rate: 1, Burst: 400, Period: time.Hour}
	key := fmt.Sprintf("ratelimit:user:hold-%d", time.Now().UnixNano())
	most := 0
	for range 200 {
		if d, err := l.take(context.Background(), key, limit); err != nil || !d.allowed {
			t.Fatalf("refused: %+v %v", d, err)
		}
		// Once the background lease (if any) is in, what is held here.
		l.mu.Lock()
		ll := l.byKey[key]
		refill := ll.refill
		l.mu.Unlock()
		if refill != nil {
			<-refill
		}
		l.mu.Lock()
		most = max(most, ll.tokens)
		l.mu.Unlock()
	}
	if most != leaseHold(limit) {
		t.Fatalf("one instance held up to %d unspent tokens of a burst of %d, want leaseHold = %d", most, limit.Burst, leaseHold(limit))
	}
}

// A client that sends little leases one request at a time, so a small
// limit is kept exactly and nothing is held back; a lease left unspent
// past leaseTTL is forfeited and the next is of one request again.
func TestLeasesOfAQuietClientAreExact(t *testing.T) {
	ls, _ := gatewayLeases(t, 1)
	l := ls[0]
	now := time.Now()
	l.now = func() time.Time { return now }
	limit := redis_rate.Limit{Rate: 1, Burst: 100, Period: time.Hour}
	key := fmt.Sprintf("ratelimit:user:quiet-%d", time.Now().UnixNano())
	take := func() decision {
		t.Helper()
		d, err := l.take(context.Background(), key, limit)
		if err != nil || !d.allowed {
			t.Fatalf("refused: %+v %v", d, err)
		}
		return d
	}
	take() // a lease of 1
	take() // spent in time: a lease of 2
	if got := l.byKey[key].size; got != 2 {
		t.Fatalf("lease size %d after two requests, want 2", got)
	}
	now = now.Add(2 * leaseTTL) // one token left, now forfeited
	d := take()
	if got := l.byKey[key].size; got != 1 {
		t.Fatalf("lease size %d after an unspent lease expired, want 1", got)
	}
	// 1 + 2 + 1 taken from Redis: 96 left, the forfeited token included.
	if d.remaining != limit.Burst-4 {
		t.Fatalf("remaining %d, want %d", d.remaining, limit.Burst-4)
	}
}

// A limit with a burst under 20 is kept exactly: leases of one request.
func TestSmallLimitsAreExact(t *testing.T) {
	ls, _ := gatewayLeases(t, 2)
	limit := redis_rate.Limit{Rate: 1, Burst: 15, Period: time.Hour}
	key := fmt.Sprintf("ratelimit:ip:small-%d", time.Now().UnixNano())
	allowed := 0
	for i := range 40 {
		d, err := ls[i%2].take(context.Background(), key, limit)
		if err != nil {
			t.Fatal(err)
		}
		if d.allowed {
			allowed++
		}
	}
	if allowed != limit.Burst {
		t.Fatalf("%d let through, want exactly %d", allowed, limit.Burst)
	}
}

// A client that sends a request less often than once a leaseTTL takes one
// token per request, as if every request asked Redis: its leases stay of
// one request. Before, each spent lease doubled the next one however late
// that came, so such a client's leases went 1, 2, 1, 2, … and every second
// request forfeited a token: it was refused at two thirds of its limit.
func TestLeasesOfASlowClientAreOfOneRequest(t *testing.T) {
	ls, _ := gatewayLeases(t, 1)
	l := ls[0]
	now := time.Now()
	l.now = func() time.Time { return now }
	limit := redis_rate.Limit{Rate: 1, Burst: 100, Period: time.Hour}
	key := fmt.Sprintf("ratelimit:user:slow-%d", time.Now().UnixNano())
	for i := 1; i <= 10; i++ {
		d, err := l.take(context.Background(), key, limit)
		if err != nil || !d.allowed {
			t.Fatalf("request %d refused: %+v %v", i, d, err)
		}
		now = now.Add(2 * leaseTTL)
	}
	// Redis's own count: ten requests, ten tokens.
	d, err := l.ask(context.Background(), key, limit, 1)
	if err != nil || d.remaining != limit.Burst-11 {
		t.Fatalf("Redis has %d left after 10 slow requests and this one, want %d (%v)", d.remaining, limit.Burst-11, err)
	}
}
