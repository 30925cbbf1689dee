package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/afex/hystrix-go/hystrix"
	"github.com/go-kit/kit/endpoint"
	"github.com/go-kit/kit/sd"

	"github.com/mercato-dev/mercato/shared/tracing"
)

// breakerFactory wraps factory so every instance's endpoint runs inside a
// hystrix command of its own, named "<upstream>@<host:port>": one bad
// instance opens its own breaker, not the whole upstream's. All endpoints
// (methods) of an upstream share the instance's breaker, which is what we
// want — an instance that fails one method is usually failing them all.
func breakerFactory(upstream string, factory sd.Factory, opts Options) sd.Factory {
	return func(instance string) (endpoint.Endpoint, io.Closer, error) {
		next, closer, err := factory(instance)
		if err != nil {
			return nil, nil, err
		}
		b := &breaker{
			name:     upstream + "@" + instance,
			upstream: upstream,
			instance: instance,
			metrics:  opts.Metrics,
		}
		// Before the first call: hystrix sizes a circuit's executor pool when
		// it creates the circuit.
		hystrix.ConfigureCommand(b.name, opts.commandConfig())
		return b.wrap(next), instanceCloser{b, closer}, nil
	}
}

type breaker struct {
	name, upstream, instance string
	metrics                  *Metrics

	// mu orders observe's gauge updates (readers, many at once) with
	// Close's removal: a call to an instance that hangs ends after the
	// instance has left, and its update must not export the gauge again,
	// where no later Close would drop it.
	mu   sync.RWMutex
	gone bool // the instance has left (instanceCloser.Close)
}

func (b *breaker) wrap(next endpoint.Endpoint) endpoint.Endpoint {
	return func(ctx context.Context, request any) (_ any, err error) {
		method, attempt := nextAttempt(ctx)
		ctx, span := tracing.Attempt(ctx, method, b.upstream, b.instance, attempt)
		defer func() { tracing.End(span, err) }()
		var (
			response any
			// refused is a failure of this request alone (countsAgainst
			// says which): the caller gets it, the breaker sees a success.
			refused error
		)
		// hystrix gets a context that is never cancelled, so that only the
		// run function below decides what a cancellation means (hystrix would
		// otherwise race it) and the concurrency ticket is held until the
		// call has really finished. The retry loop above still returns as
		// soon as the caller's context is done.
		begin := time.Now()
		err = hystrix.DoC(context.WithoutCancel(ctx), b.name, func(context.Context) error {
			resp, err := next(ctx, request)
			if err != nil {
				if errors.Is(context.Cause(ctx), errCallTimeout) {
					// The instance did not answer within the call's
					// Options.Timeout: a timeout of its own, a failure.
					return fmt.Errorf("%s: %w: %w", b.instance, errCallTimeout, ctx.Err())
				}
				if ctx.Err() != nil {
					// The caller gave up (cancelled, or its deadline passed):
					// not the instance's fault. The bare context error makes
					// hystrix record context_canceled/deadline_exceeded, which
					// count neither as a failure nor as a success that would
					// close an open breaker.
					return ctx.Err()
				}
				if !CountsAgainstInstance(err) {
					refused = err // read only when DoC returns nil, i.e. after this write
					return nil
				}
				return err
			}
			response = resp // read only when DoC returns nil, i.e. after this write
			return nil
		}, nil)
		b.observe(err)
		if err != nil {
			b.metrics.observeAttempt(b.upstream, time.Since(begin), err)
		} else {
			b.metrics.observeAttempt(b.upstream, time.Since(begin), refused)
		}
		if rejected := rejection(err); rejected != "" {
			span.SetAttributes(tracing.BreakerKey.String(rejected))
		}
		if err != nil {
			return nil, b.annotate(err)
		}
		if refused != nil {
			return nil, refused
		}
		return response, nil
	}
}

// CountsAgainstInstance reports whether err, the error of one attempt at an
// instance, is the instance failing rather than the request: only those
// count against the instance's breaker. They are what no request can cause
// on purpose and what another instance may well not repeat:
//   - transport failures (connection refused or reset, an answer broken off:
//     any net.Error, *url.Error included, or a system call error);
//   - timeouts (a net.Error whose Timeout is true, hystrix's own, and an
//     attempt still unanswered when the call's Options.Timeout ran out,
//     unlike the caller's own deadline or cancellation);
//   - 502, 503 and 504 answers: the instance is overloaded, restarting,
//     cannot reach a dependency of its own, or sits behind a failing proxy.
//
// Everything else is not: a 500 (or any other 5xx) is a bug that this
// request triggered, and every instance would answer it the same way;
// opening breakers for it would let one client, sending that request over
// and over, make the service unavailable to everyone (a NUL byte in a login
// did exactly that). Errors of the caller's own making (a request that
// cannot be encoded, an answer that cannot be decoded) are not either. Such
// errors still reach the caller unchanged, and 500s are still never retried
// (see CheckResponse); they are just not an outage.
func CountsAgainstInstance(err error) bool {
	var (
		upErr  *UpstreamError
		netErr net.Error
		errno  syscall.Errno
	)
	switch {
	case errors.As(err, &upErr):
		return retryStatus(upErr.StatusCode)
	case errors.Is(err, hystrix.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return true
	case errors.As(err, &netErr), errors.As(err, &errno),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return true
	default:
		return false
	}
}

// observe publishes the breaker's state after each call; hystrix keeps it in
// memory only.
func (b *breaker) observe(err error) {
	if rejected := rejection(err); rejected != "" {
		b.metrics.observeRejected(b.upstream, b.instance, rejected)
	}
	if circuit, _, cerr := hystrix.GetCircuit(b.name); cerr == nil {
		open := circuit.IsOpen()
		b.mu.RLock()
		defer b.mu.RUnlock()
		if !b.gone {
			b.metrics.observeBreaker(b.upstream, b.instance, open)
		}
	}
}

// rejection says why the breaker refused a call without sending it
// ("circuit_open", "max_concurrency"), or "" when it did not.
func rejection(err error) string {
	switch {
	case errors.Is(err, hystrix.ErrCircuitOpen):
		return "circuit_open"
	case errors.Is(err, hystrix.ErrMaxConcurrency):
		return "max_concurrency"
	}
	return ""
}

// annotate names the instance in hystrix's own errors ("hystrix: circuit
// open" alone does not say whose); errors.Is still matches them.
func (b *breaker) annotate(err error) error {
	var ce hystrix.CircuitError
	if errors.As(err, &ce) {
		return fmt.Errorf("%s: %w", b.name, err)
	}
	return err
}

// instanceCloser runs when an instance leaves Consul: it closes the client the
// caller's factory made for it and drops the instance's breaker gauge.
// hystrix has no way to forget one circuit, so an instance that comes back on
// the same address finds its old breaker state — harmless, since the state
// heals itself after SleepWindow.
type instanceCloser struct {
	b    *breaker
	next io.Closer
}

func (c instanceCloser) Close() error {
	c.b.mu.Lock()
	c.b.gone = true
	c.b.metrics.forget(c.b.upstream, c.b.instance)
	c.b.mu.Unlock()
	if c.next == nil {
		return nil
	}
	return c.next.Close()
}
