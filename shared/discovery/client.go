package discovery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/afex/hystrix-go/hystrix"
	"github.com/go-kit/kit/endpoint"
	"github.com/go-kit/kit/sd"
	"github.com/go-kit/kit/sd/lb"
	"github.com/go-kit/log"

	"github.com/mercato-dev/mercato/shared/httpkit"
	"github.com/mercato-dev/mercato/shared/tracing"
)

// Options tunes the client pipeline. Zero values take the defaults noted.
// Use the same Options for every endpoint of an upstream: they share each
// instance's breaker, whose settings are per instance.
type Options struct {
	// MaxAttempts bounds the attempts of one call, the first included (3).
	MaxAttempts int
	// Timeout bounds one call, all attempts included (5s). The request
	// context's deadline applies too, whichever is sooner. An attempt still
	// unanswered when Timeout runs out counts against its instance's
	// breaker; one the caller's deadline or cancellation ends does not.
	Timeout time.Duration
	// InvalidateAfter is how long the last known instances stay in use while
	// Consul is unreachable (30s); after that calls fail with ErrNoInstances.
	InvalidateAfter time.Duration

	// CommandTimeout is hystrix's per-attempt timeout (10s). Deadlines come
	// from the request context; this is only a backstop, so it must not be
	// shorter than Timeout.
	CommandTimeout time.Duration
	// MaxConcurrentRequests caps calls in flight per instance (2000). hystrix's
	// default, 10, would reject traffic at a few hundred requests per second.
	MaxConcurrentRequests int
	// ErrorPercentThreshold opens an instance's breaker when this percentage
	// of its recent calls (10 s rolling window) failed (50).
	ErrorPercentThreshold int
	// RequestVolumeThreshold is the number of calls in the window below which
	// the breaker never opens (20).
	RequestVolumeThreshold int
	// SleepWindow is how long an open breaker rejects calls before letting
	// one through to test the instance (5s).
	SleepWindow time.Duration

	// Metrics, when set, receives breaker state and rejections.
	Metrics *Metrics
}

// BreakerWindow is hystrix-go's rolling window, fixed in the library: a
// breaker judges its instance by the calls of the last 10 s.
const BreakerWindow = 10 * time.Second

// DefaultMaxAttempts is Options.MaxAttempts when it is zero.
const DefaultMaxAttempts = 3

// AboveOneClient returns o with a RequestVolumeThreshold that one client
// cannot reach alone: perWindow is the most requests one client may send in
// BreakerWindow (what its rate limit allows), and each of them may be
// attempted up to MaxAttempts times, all on the same instance when it is the
// only one. Below the threshold a breaker never opens, so however its
// requests fail, one client inside its rate limit cannot open a breaker;
// above it, ErrorPercentThreshold decides over everyone's calls, so a client
// whose requests fail needs at least as many failures as all other clients
// have successes. A threshold already set higher is kept.
//
// The price: at less traffic than that per instance, breakers do not open
// at all. An instance that is down is then still skipped (a refused
// connection is retried elsewhere, and Consul's check takes the instance
// out within seconds); one that hangs costs its callers a timeout each.
func (o Options) AboveOneClient(perWindow int) Options {
	attempts := o.MaxAttempts
	if attempts <= 0 {
		attempts = DefaultMaxAttempts
	}
	if v := perWindow*attempts + 1; v > o.RequestVolumeThreshold {
		o.RequestVolumeThreshold = v
	}
	return o
}

func (o Options) withDefaults() Options {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	defInt := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defInt(&o.MaxAttempts, DefaultMaxAttempts)
	def(&o.Timeout, 5*time.Second)
	def(&o.InvalidateAfter, 30*time.Second)
	def(&o.CommandTimeout, 10*time.Second)
	if o.CommandTimeout < o.Timeout {
		o.CommandTimeout = o.Timeout
	}
	defInt(&o.MaxConcurrentRequests, 2000)
	defInt(&o.ErrorPercentThreshold, 50)
	defInt(&o.RequestVolumeThreshold, 20)
	def(&o.SleepWindow, 5*time.Second)
	return o
}

func (o Options) commandConfig() hystrix.CommandConfig {
	return hystrix.CommandConfig{
		Timeout:                int(o.CommandTimeout.Milliseconds()),
		MaxConcurrentRequests:  o.MaxConcurrentRequests,
		RequestVolumeThreshold: o.RequestVolumeThreshold,
		SleepWindow:            int(o.SleepWindow.Milliseconds()),
		ErrorPercentThreshold:  o.ErrorPercentThreshold,
	}
}

// NewEndpoint returns the load-balanced endpoint of one method of upstream:
// factory's per-instance endpoints, each inside its instance's circuit
// breaker, for every passing instance instancer knows (clients of instances
// that leave are closed), called round robin and retried on another instance
// only when that is safe (see Retryable). Errors:
//   - errors.Is(err, ErrNoInstances): no healthy instance; answer 503;
//   - *RetryError wrapping the last attempt's error, e.g. *UpstreamError or a
//     hystrix.CircuitError when every instance's breaker is open;
//   - context.DeadlineExceeded/Canceled when Timeout or the caller's context
//     ran out.
//
// Inside a trace, every attempt is a client span of its own, named
// "<method> <upstream>" (the method of an *http.Request request, as the
// gateway sends), holding its number: retries, and calls an open breaker
// refused, show as sibling spans.
func NewEndpoint(instancer sd.Instancer, upstream string, factory sd.Factory, logger log.Logger, opts Options) endpoint.Endpoint {
	return newEndpoint(instancer, upstream, "", factory, logger, opts)
}

// newEndpoint is NewEndpoint for requests sent with method ("" when each
// request says its own), the name of their attempts' spans.
func newEndpoint(instancer sd.Instancer, upstream, method string, factory sd.Factory, logger log.Logger, opts Options) endpoint.Endpoint {
	opts = opts.withDefaults()
	logger = log.With(logger, "upstream", upstream)
	endpointer := sd.NewEndpointer(&settled{Instancer: instancer}, breakerFactory(upstream, factory, opts), logger, sd.InvalidateOnError(opts.InvalidateAfter))
	callback := retryCallback(opts.MaxAttempts, func() { opts.Metrics.observeRetry(upstream) })
	var calls atomic.Uint64 // the round robin: where each call starts
	opts.Metrics.initUpstream(upstream)
	return func(ctx context.Context, request any) (any, error) {
		balancer := noInstancesBalancer{next: &callBalancer{endpointer: endpointer, next: calls.Add(1) - 1}}
		retry := lb.RetryWithCallback(opts.Timeout, balancer, callback)
		// The retry loop's own timeout is the same; this one says, as the
		// context's cause, that it was the call's timeout that ran out, not
		// the caller's deadline (see breaker.wrap).
		ctx, cancel := context.WithTimeoutCause(ctx, opts.Timeout, errCallTimeout)
		defer cancel()
		if tracing.Recording(ctx) {
			c := &callInfo{method: method}
			if r, ok := request.(*http.Request); ok && c.method == "" {
				c.method = httpkit.MethodLabel(r.Method)
			}
			ctx = context.WithValue(ctx, callKey{}, c)
		}
		response, err := retry(ctx, request)
		var re lb.RetryError
		switch {
		case err == nil:
			return response, nil
		case errors.As(err, &re):
			return nil, &RetryError{Upstream: upstream, RetryError: re}
		default:
			return nil, fmt.Errorf("%s: %w", upstream, err)
		}
	}
}

// errCallTimeout is the cause of a call's context when Options.Timeout ran
// out: the instance being called kept it waiting that long.
var errCallTimeout = errors.New("discovery: no answer within the call's timeout")

// settled is the instancer of one sd.NewEndpointer, there so that
// NewEndpointer returns only once its endpointer has applied the instancer's
// current set. Register's first send returns as soon as the endpointer's
// goroutine has taken that set, before it has applied it, so a call made at
// once could find no instance (payment's TestClient did, on CI). settled
// hands the first set on twice: the endpointer's channel is unbuffered and
// its goroutine applies each event before it takes the next, so the second
// send returns once the first is applied. Applying a set again changes
// nothing. Later events pass through.
type settled struct {
	sd.Instancer
	relay chan sd.Event
	done  chan struct{}
}

// Register relies on sd.Instancer's promise that the current set is sent
// at once.
func (s *settled) Register(ch chan<- sd.Event) {
	s.relay, s.done = make(chan sd.Event), make(chan struct{})
	applied := make(chan struct{})
	go func() {
		defer close(s.done)
		first := <-s.relay
		ch <- first
		ch <- first
		close(applied)
		for ev := range s.relay {
			ch <- ev
		}
	}()
	s.Instancer.Register(s.relay)
	<-applied
}

// Deregister returns once no event is on its way to the endpointer, which
// closes its channel next.
func (s *settled) Deregister(chan<- sd.Event) {
	s.Instancer.Deregister(s.relay)
	close(s.relay)
	<-s.done
}

// callInfo is one call through a NewEndpoint, for its attempts' spans.
type callInfo struct {
	method   string
	attempts atomic.Int32 // attempts made so far
}

type callKey struct{}

// nextAttempt returns the method of the call ctx belongs to and the number
// of the attempt about to be made (1 outside a NewEndpoint call).
func nextAttempt(ctx context.Context) (string, int) {
	c, ok := ctx.Value(callKey{}).(*callInfo)
	if !ok {
		return "", 1
	}
	return c.method, int(c.attempts.Add(1))
}

// callBalancer is the balancer of one call: its first attempt goes to the
// instance the round robin gives the call, each retry to the next one after
// the instance before. A round robin shared by the retries of every call
// in flight would give a retry whatever instance is next for everyone,
// often the one that just failed: with one of two instances refusing
// connections, an eighth of the calls made at once spent all three
// attempts on it. A call's attempts ask for their instance one after the
// other (lb.RetryWithCallback starts the next once the last has failed),
// so next needs no lock.
type callBalancer struct {
	endpointer sd.Endpointer
	next       uint64 // the call's next attempt, counted from where it started
}

func (b *callBalancer) Endpoint() (endpoint.Endpoint, error) {
	endpoints, err := b.endpointer.Endpoints()
	if err != nil {
		return nil, err
	}
	if len(endpoints) == 0 {
		return nil, lb.ErrNoEndpoints
	}
	e := endpoints[b.next%uint64(len(endpoints))]
	b.next++
	return e, nil
}

// noInstancesBalancer gives "nothing to call" one recognisable error, whether
// the upstream has no passing instance (lb.ErrNoEndpoints) or Consul has been
// unreachable for too long (the instancer's error).
type noInstancesBalancer struct {
	next lb.Balancer
}

func (b noInstancesBalancer) Endpoint() (endpoint.Endpoint, error) {
	e, err := b.next.Endpoint()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoInstances, err)
	}
	return e, nil
}
