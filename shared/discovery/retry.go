package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/afex/hystrix-go/hystrix"
	"github.com/go-kit/kit/endpoint"
	"github.com/go-kit/kit/sd/lb"
)

// IdempotencyKeyHeader is the header that makes a POST safe to send twice
// (DESIGN.md §7): the upstream answers a repeated key with the first answer.
const IdempotencyKeyHeader = "Idempotency-Key"

// ErrNoInstances means the upstream has no healthy instance (or Consul has
// been unreachable for longer than Options.InvalidateAfter). Callers answer
// 503.
var ErrNoInstances = errors.New("no healthy instances")

// UpstreamError is an upstream instance answering 5xx. Per-instance endpoints
// return it (CheckResponse does) so callers can map it, e.g. to 502, and the
// breaker can count it when it is an outage (502-504; see
// CountsAgainstInstance).
type UpstreamError struct {
	Instance   string // host:port that answered
	StatusCode int
	Err        error // what the instance said, for logs
}

func (e *UpstreamError) Error() string {
	return fmt.Sprintf("upstream %s answered %d: %v", e.Instance, e.StatusCode, e.Err)
}

func (e *UpstreamError) Unwrap() error { return e.Err }

// retryableError marks an error as safe to send to another instance.
type retryableError struct{ err error }

func (e retryableError) Error() string { return e.err.Error() }
func (e retryableError) Unwrap() error { return e.err }

// Retryable marks err as safe to retry on another instance. Only the
// per-instance endpoint can decide that, because only it knows the request:
// a GET/HEAD or a request carrying an Idempotency-Key that failed with
// 502/503/504 or a timeout. Retryable(nil) is nil.
func Retryable(err error) error {
	if err == nil || IsRetryable(err) {
		return err
	}
	return retryableError{err}
}

// IsRetryable reports whether err, or an error it wraps, was marked Retryable.
func IsRetryable(err error) bool {
	var r retryableError
	return errors.As(err, &r)
}

// IsIdempotent reports whether req may be sent twice: GET, HEAD, or any
// request carrying an Idempotency-Key.
func IsIdempotent(req *http.Request) bool {
	if req == nil {
		return false
	}
	return req.Method == http.MethodGet || req.Method == http.MethodHead ||
		req.Header.Get(IdempotencyKeyHeader) != ""
}

// CheckResponse is for per-instance response decoders. It returns nil below
// 500 — 4xx are business answers to decode into a response, never errors —
// and an *UpstreamError for 5xx, marked Retryable when the status is 502, 503
// or 504 and the request (resp.Request, set by http.Client) was idempotent.
// It does not close resp.Body.
func CheckResponse(resp *http.Response) error {
	if resp.StatusCode < 500 {
		return nil
	}
	instance := ""
	if resp.Request != nil && resp.Request.URL != nil {
		instance = resp.Request.URL.Host
	}
	// A short excerpt of the body helps the logs; the rest is not our business.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	msg := strings.TrimSpace(string(body))
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	err := error(&UpstreamError{Instance: instance, StatusCode: resp.StatusCode, Err: errors.New(msg)})
	if retryStatus(resp.StatusCode) && IsIdempotent(resp.Request) {
		err = Retryable(err)
	}
	return err
}

// retryStatus: the instance is overloaded, restarting or behind a failing
// proxy, so another instance may well succeed. A 500 is a bug that another
// instance would most likely repeat.
func retryStatus(code int) bool {
	return code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout
}

// MarkRetryable is per-instance endpoint middleware for methods whose
// requests are safe to repeat: when idempotent(request) is true (nil means
// always), timeouts, transport failures and 502/503/504 answers are marked
// Retryable. Cancellation by the caller never is.
func MarkRetryable(idempotent func(request any) bool) endpoint.Middleware {
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, request any) (any, error) {
			response, err := next(ctx, request)
			if err == nil || ctx.Err() != nil || (idempotent != nil && !idempotent(request)) {
				return response, err
			}
			var (
				netErr net.Error
				upErr  *UpstreamError
			)
			switch {
			case errors.As(err, &upErr):
				if retryStatus(upErr.StatusCode) {
					return response, Retryable(err)
				}
			case errors.As(err, &netErr): // *url.Error included: the request may or may not have arrived
				return response, Retryable(err)
			}
			return response, err
		}
	}
}

// retryCallback decides, for lb.RetryWithCallback, whether attempt n's error
// may be retried on the next instance, calling retried each time it may (the
// loop then makes the next attempt at once).
func retryCallback(maxAttempts int, retried func()) lb.Callback {
	return func(n int, err error) (bool, error) {
		again := n < maxAttempts && shouldRetry(err)
		if again {
			retried()
		}
		return again, nil
	}
}

func shouldRetry(err error) bool {
	switch {
	case errors.Is(err, ErrNoInstances):
		// Nothing to retry on; the retry loop has no back-off, so it would spin.
		return false
	case errors.Is(err, syscall.ECONNREFUSED):
		// Nothing was sent: the instance is gone or not yet listening.
		return true
	case errors.Is(err, hystrix.ErrCircuitOpen), errors.Is(err, hystrix.ErrMaxConcurrency):
		// The breaker rejected the call before it was sent.
		return true
	default:
		// hystrix.ErrTimeout, context errors, 500s, unmarked 502-504 and
		// transport errors of non-idempotent requests: the request may have
		// had an effect, so sending it again could, say, charge a card twice.
		return IsRetryable(err)
	}
}

// RetryError is the error of a call whose attempts all failed: go-kit's
// lb.RetryError made transparent, so errors.Is/As see the final attempt's
// error (e.g. ErrNoInstances, *UpstreamError) and errors.As can still
// recover the lb.RetryError with every attempt's error.
type RetryError struct {
	Upstream string
	lb.RetryError
}

func (e *RetryError) Error() string { return e.Upstream + ": " + e.RetryError.Error() }

// Unwrap returns the final error: the one a caller should map to a status.
func (e *RetryError) Unwrap() error { return e.Final }

// As lets errors.As(err, *lb.RetryError) keep working for go-kit-minded callers.
func (e *RetryError) As(target any) bool {
	if t, ok := target.(*lb.RetryError); ok {
		*t = e.RetryError
		return true
	}
	return false
}
