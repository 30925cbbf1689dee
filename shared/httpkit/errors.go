// Package httpkit is the HTTP side every Mercato server shares: the JSON
// error format of API.md, strict JSON decoding and the go-kit request
// decoders built on it, path ids, response encoding for go-kit endpoints,
// request-id, logging, metrics and recovery middleware, the /health, /ready
// and /metrics routes, and a server with timeouts and graceful shutdown.
package httpkit

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/mercato-dev/mercato/shared/logging"
	"github.com/mercato-dev/mercato/shared/validate"
)

// Error is an error that knows how it is shown to a client:
// {"error": {"code": ..., "message": ..., "details": ...}} with Status.
type Error struct {
	Status  int            `json:"-"`
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details,omitempty"`
	// RetryAfter, when positive, is sent as the Retry-After header (seconds).
	RetryAfter int `json:"-"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// StatusCode and ErrorCode let Error satisfy Coded.
func (e *Error) StatusCode() int   { return e.Status }
func (e *Error) ErrorCode() string { return e.Code }

// Coded is implemented by errors that carry their own HTTP status and
// machine-readable code (Error, and the auth package's errors). The error
// encoder honours it wherever it sits in the error chain.
type Coded interface {
	error
	StatusCode() int
	ErrorCode() string
}

// Detailed is implemented by errors that carry the details of their error
// body: which line of a checkout failed, why a card was refused, which fields
// are invalid (validate.Error). The error encoder shows ErrorDetails() as
// "details" wherever the error sits in the chain, so domain errors need not
// know HTTP to say more than their code.
type Detailed interface {
	error
	ErrorDetails() map[string]any
}

// Delayed is implemented by errors that tell the client when it may try
// again (a throttled login). The error encoder sends RetryAfter, in whole
// seconds rounded up, as the Retry-After header, wherever the error sits in
// the chain.
type Delayed interface {
	error
	RetryAfter() time.Duration
}

// NewError returns an Error with status, code and message.
func NewError(status int, code, message string) *Error {
	return &Error{Status: status, Code: code, Message: message}
}

// BadRequest is a malformed request (400).
func BadRequest(code, message string) *Error {
	return NewError(http.StatusBadRequest, code, message)
}

// Invalid is a well-formed request whose fields fail validation (422); fields
// maps each offending field to what is wrong with it. A *validate.Error
// (validate.Problems.Err) is shown the same way.
func Invalid(fields map[string]string) *Error {
	return &Error{Status: http.StatusUnprocessableEntity, Code: "validation_failed",
		Message: validate.ErrInvalid.Error(), Details: (&validate.Error{Fields: fields}).ErrorDetails()}
}

// Unavailable is an upstream that cannot serve now (503).
func Unavailable(message string) *Error {
	return NewError(http.StatusServiceUnavailable, "service_unavailable", message)
}

// ClientClosed is the answer to a client that went away before it (499, as
// nginx calls it): nobody reads it, but logs and metrics record it, and it is
// no failure of the server.
func ClientClosed() *Error {
	return NewError(499, "client_closed_request", "the client closed the request")
}

// Internal is what a client sees of an unexpected failure: nothing internal.
func Internal() *Error {
	return NewError(http.StatusInternalServerError, "internal_error", "an internal error occurred")
}

// ErrorMapping maps a domain error (matched with errors.Is) to its HTTP form.
type ErrorMapping struct {
	Err     error
	Status  int
	Code    string
	Message string // optional; the error's own text when empty
}

// ErrorEncoder returns the one go-kit error encoder a service uses. It answers
// with the first Coded error in err's chain, else a 422 for validate.ErrInvalid,
// else the first mapping whose Err matches errors.Is (its text the
// message, see messageOf), else 500 without internals (logged with the
// request id). The details of the body are those
// of the first Detailed error in the chain (an *Error keeps its own).
func ErrorEncoder(logger log.Logger, mappings ...ErrorMapping) func(context.Context, error, http.ResponseWriter) {
	return func(ctx context.Context, err error, w http.ResponseWriter) {
		WriteError(w, ToError(ctx, logger, err, mappings...))
	}
}

// ToError resolves err to the Error shown to the client, as ErrorEncoder does.
func ToError(ctx context.Context, logger log.Logger, err error, mappings ...ErrorMapping) *Error {
	var coded Coded
	if errors.As(err, &coded) {
		if e, ok := coded.(*Error); ok {
			return e
		}
		return withDetails(NewError(coded.StatusCode(), coded.ErrorCode(), coded.Error()), err)
	}
	if errors.Is(err, validate.ErrInvalid) {
		return withDetails(Invalid(nil), err)
	}
	for _, m := range mappings {
		if errors.Is(err, m.Err) {
			msg := m.Message
			if msg == "" {
				msg = messageOf(err, m.Err)
			}
			return withDetails(NewError(m.Status, m.Code, msg), err)
		}
	}
	if logging.ClientGone(ctx, err) {
		level.Debug(logging.WithRequest(ctx, logger)).Log("msg", "the client closed the request", "err", err)
		return ClientClosed()
	}
	if Unreachable(err) {
		level.Warn(logging.WithRequest(ctx, logger)).Log("msg", "a backing server is unreachable", "err", err)
		e := Unavailable("a server this request needs is unavailable; try again shortly")
		e.RetryAfter = int(UnreachableRetryAfter / time.Second)
		return e
	}
	level.Error(logging.WithRequest(ctx, logger)).Log("msg", "unexpected error", "err", err)
	return Internal()
}

// messageOf is the text of err, which matched target, as the client sees
// it: all of it, but of errors joined only the one that matched. The others
// failed beside the answer (a cleanup after a refused card, say); they are
// for the log, and their text may tell of internals.
func messageOf(err, target error) string {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			if errors.Is(e, target) {
				return messageOf(e, target)
			}
		}
	}
	return err.Error()
}

// UnreachableRetryAfter is the Retry-After of a 503 for an unreachable
// backing server: PostgreSQL or Redis restarting is back within seconds.
const UnreachableRetryAfter = 2 * time.Second

// Unreachable reports whether err is a backing server (PostgreSQL, Redis,
// an upstream) that cannot be reached right now — connection refused or
// reset, a dead pooled connection, PostgreSQL shutting down or starting
// up (SQLSTATE class 57, operator intervention) or out of connection slots
// (53300, too_many_connections: max_connections reached) — rather than a
// bug: the client is told 503 and when to retry, not 500.
func Unreachable(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, driver.ErrBadConn) {
		return true
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var state interface{ SQLState() string }
	return errors.As(err, &state) && (strings.HasPrefix(state.SQLState(), "57") || state.SQLState() == "53300")
}

// withDetails gives e the details of the first Detailed error in err's
// chain, and the Retry-After of the first Delayed one.
func withDetails(e *Error, err error) *Error {
	var d Detailed
	if errors.As(err, &d) {
		e.Details = d.ErrorDetails()
	}
	var delayed Delayed
	if errors.As(err, &delayed) {
		e.RetryAfter = max(1, int(math.Ceil(delayed.RetryAfter().Seconds())))
	}
	return e
}

// IsClientError reports whether ToError shows err with a status below 500:
// a client's mistake or a domain error the client should expect, not a
// failure of the server. nil is not an error of either kind.
func IsClientError(err error, mappings ...ErrorMapping) bool {
	return err != nil && ToError(context.Background(), log.NewNopLogger(), err, mappings...).Status < 500
}

// WriteError writes e as the JSON error body. Headers are set before the
// status line so none is lost.
func WriteError(w http.ResponseWriter, e *Error) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	WriteJSON(w, e.Status, struct {
		Error *Error `json:"error"`
	}{e})
}

// WriteJSON writes v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		body = []byte(fmt.Sprintf(`{"error":{"code":"internal_error","message":%q}}`, "response encoding failed"))
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
