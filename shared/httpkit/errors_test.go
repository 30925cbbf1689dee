package httpkit

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/go-kit/log"

	"github.com/mercato-dev/mercato/shared/validate"
)

var errOutOfStock = errors.New("out of stock")

// lineError is a domain error with details, as the services have them.
type lineError struct{ product string }

func (e *lineError) Error() string { return "out of stock: product " + e.product }
func (e *lineError) Unwrap() error { return errOutOfStock }
func (e *lineError) ErrorDetails() map[string]any {
	return map[string]any{"product_id": e.product, "variant_id": (*string)(nil)}
}

type detailedCoded struct{ codedErr }

func (detailedCoded) ErrorDetails() map[string]any { return map[string]any{"limit": 10} }

// The encoder writes what ToError resolves, byte for byte.
func TestErrorEncoderDetails(t *testing.T) {
	mappings := []ErrorMapping{{Err: errOutOfStock, Status: 409, Code: "out_of_stock"}}
	fields := map[string]string{"email": "is required", "items[0].quantity": "must be between 1 and 1000"}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"validation error as Invalid renders it", validate.Problems(fields).Err(),
			`{"error":{"code":"validation_failed","message":"the request has invalid fields","details":{"email":"is required","items[0].quantity":"must be between 1 and 1000"}}}`},
		{"Invalid itself", Invalid(fields),
			`{"error":{"code":"validation_failed","message":"the request has invalid fields","details":{"email":"is required","items[0].quantity":"must be between 1 and 1000"}}}`},
		{"wrapped validation error", fmt.Errorf("decode: %w", validate.Problems{"page": "must be at least 1"}.Err()),
			`{"error":{"code":"validation_failed","message":"the request has invalid fields","details":{"page":"must be at least 1"}}}`},
		{"bare ErrInvalid has no details", validate.ErrInvalid,
			`{"error":{"code":"validation_failed","message":"the request has invalid fields"}}`},
		{"mapped error with details", &lineError{product: "p1"},
			`{"error":{"code":"out_of_stock","message":"out of stock: product p1","details":{"product_id":"p1","variant_id":null}}}`},
		{"mapped error without details", fmt.Errorf("reserve: %w", errOutOfStock),
			`{"error":{"code":"out_of_stock","message":"reserve: out of stock"}}`},
		{"coded error with details", detailedCoded{},
			`{"error":{"code":"rate_limited","message":"slow down","details":{"limit":10}}}`},
		{"an *Error keeps its own details", fmt.Errorf("x: %w", &Error{Status: 409, Code: "c", Message: "m", Details: map[string]any{"a": 1}}),
			`{"error":{"code":"c","message":"m","details":{"a":1}}}`},
		{"wrapped, the details stay", fmt.Errorf("pq: %w", &lineError{product: "p1"}),
			`{"error":{"code":"out_of_stock","message":"pq: out of stock: product p1","details":{"product_id":"p1","variant_id":null}}}`},
		// A cleanup that failed beside the answer (an order cancelled after
		// its card was refused, say) is for the log, not the client.
		{"joined, the matching part answers", errors.Join(&lineError{product: "p1"}, errors.New("release: pq: password authentication failed")),
			`{"error":{"code":"out_of_stock","message":"out of stock: product p1","details":{"product_id":"p1","variant_id":null}}}`},
	}
	enc := ErrorEncoder(log.NewNopLogger(), mappings...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			enc(context.Background(), tc.err, rec)
			if got := strings.TrimSuffix(rec.Body.String(), "\n"); got != tc.want {
				t.Errorf("body\n got %s\nwant %s", got, tc.want)
			}
			want := ToError(context.Background(), log.NewNopLogger(), tc.err, mappings...)
			if rec.Code != want.Status {
				t.Errorf("status %d, ToError says %d", rec.Code, want.Status)
			}
		})
	}

	// Statuses.
	for err, want := range map[error]int{
		validate.Problems{"a": "b"}.Err(): 422,
		&lineError{}:                      409,
		errors.New("boom"):                500,
	} {
		rec := httptest.NewRecorder()
		enc(context.Background(), err, rec)
		if rec.Code != want {
			t.Errorf("%v: status %d, want %d", err, rec.Code, want)
		}
	}
	// An unexpected error is a 500 with nothing of its own, details included.
	if e := ToError(context.Background(), log.NewNopLogger(), fmt.Errorf("boom: %w", detailsOnly{})); e.Status != 500 || e.Details != nil {
		t.Errorf("unexpected error: %+v", e)
	}
}

type detailsOnly struct{}

func (detailsOnly) Error() string                { return "internal thing" }
func (detailsOnly) ErrorDetails() map[string]any { return map[string]any{"secret": "x"} }

// sqlStateErr is a driver error with a SQLSTATE, as lib/pq's *pq.Error.
type sqlStateErr string

func (e sqlStateErr) Error() string    { return "pq: " + string(e) }
func (e sqlStateErr) SQLState() string { return string(e) }

// A backing server that cannot be reached (PostgreSQL or Redis restarting,
// found by the chaos suite answering 500) is a 503 with Retry-After, not
// an internal error; a real bug stays a 500.
func TestUnreachableBackingServerIs503WithRetryAfter(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	for _, err := range []error{
		fmt.Errorf("claim idempotency key: %w", dial),
		fmt.Errorf("count orders: %w", driver.ErrBadConn),
		fmt.Errorf("read: %w", syscall.ECONNRESET),
		fmt.Errorf("insert: %w", sqlStateErr("57P01")), // admin_shutdown
		fmt.Errorf("insert: %w", sqlStateErr("57P03")), // cannot_connect_now
		fmt.Errorf("insert: %w", sqlStateErr("53300")), // too_many_connections
	} {
		rec := httptest.NewRecorder()
		ErrorEncoder(log.NewNopLogger())(context.Background(), err, rec)
		if rec.Code != 503 || rec.Header().Get("Retry-After") != "2" || !strings.Contains(rec.Body.String(), `"service_unavailable"`) {
			t.Errorf("%v: %d Retry-After %q %s; want 503, Retry-After 2, service_unavailable", err, rec.Code, rec.Header().Get("Retry-After"), rec.Body)
		}
	}
	for _, err := range []error{errors.New("boom"), sqlStateErr("23505"), &net.OpError{Op: "read", Err: errors.New("x")}} {
		rec := httptest.NewRecorder()
		ErrorEncoder(log.NewNopLogger())(context.Background(), err, rec)
		if rec.Code != 500 {
			t.Errorf("%v: %d, want 500", err, rec.Code)
		}
	}
}

// A request its client abandoned stops with a context error, or with
// query_canceled from PostgreSQL, where lib/pq cancels the statement: 499,
// not the 500 or 503 of a failing service. Without the client gone, the
// same errors are what they were.
func TestClientGoneIs499(t *testing.T) {
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	timedOut, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	for _, tc := range []struct {
		ctx  context.Context
		err  error
		want int
	}{
		{gone, fmt.Errorf("get user: %w", context.Canceled), 499}, // waiting for a pooled connection
		{gone, fmt.Errorf("update user: %w", sqlStateErr("57014")), 499},
		{gone, errors.New("boom"), 500},                                                  // a bug stays one
		{context.Background(), fmt.Errorf("update user: %w", sqlStateErr("57014")), 503}, // statement_timeout, an operator
		{context.Background(), context.Canceled, 500},
		{timedOut, fmt.Errorf("get user: %w", context.Canceled), 500}, // a deadline of the server's own
	} {
		rec := httptest.NewRecorder()
		ErrorEncoder(log.NewNopLogger())(tc.ctx, tc.err, rec)
		if rec.Code != tc.want {
			t.Errorf("%v (request context %v): %d %s, want %d", tc.err, tc.ctx.Err(), rec.Code, rec.Body, tc.want)
		}
	}
}
