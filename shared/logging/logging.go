// Package logging builds the structured go-kit loggers every service uses:
// JSON lines with a UTC timestamp, the service name and the caller, and the
// request id of the request being served with its trace and span ids; and
// it picks the level of the line a service's logging middleware writes
// about each call.
package logging

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"go.opentelemetry.io/otel/trace"

	"github.com/mercato-dev/mercato/shared/requestid"
)

// New returns a JSON logger for service writing to w, letting through
// records at minLevel ("debug", "info", "warn", "error") and above.
func New(w io.Writer, service, minLevel string) log.Logger {
	logger := log.NewJSONLogger(log.NewSyncWriter(w))
	logger = level.NewFilter(logger, levelOption(minLevel))
	return log.With(logger, "ts", log.DefaultTimestampUTC, "service", service, "caller", log.DefaultCaller)
}

func levelOption(name string) level.Option {
	if allow, ok := levels[name]; ok {
		return allow
	}
	return level.AllowInfo()
}

// levels are the -log-level names, "" for the default, and what each lets
// through.
var levels = map[string]level.Option{
	"": level.AllowInfo(), "debug": level.AllowDebug(), "info": level.AllowInfo(),
	"warn": level.AllowWarn(), "error": level.AllowError(),
}

// KnownLevel reports whether name is a level the logger knows ("" is the
// default, info): config refuses any other.
func KnownLevel(name string) bool {
	_, ok := levels[name]
	return ok
}

// WithRequest returns logger with the request id carried by ctx and, inside
// a span, the trace and span ids, so every line written while serving one
// request can be found with one search, and joined to its trace.
func WithRequest(ctx context.Context, logger log.Logger) log.Logger {
	var kv []any
	if id := requestid.FromContext(ctx); id != "" {
		kv = append(kv, "request_id", id)
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		kv = append(kv, "trace_id", sc.TraceID().String(), "span_id", sc.SpanID().String())
	}
	if len(kv) == 0 {
		return logger
	}
	return log.With(logger, kv...)
}

// ForOutcome returns logger at the level of the line about a service call
// made for ctx that returned err: debug for a success (httpkit already logs
// every request at info), info when business(err) says err is an expected
// answer (a domain error or a client's mistake) or when the call stopped
// because its client went away (ClientGone), error for anything else.
func ForOutcome(ctx context.Context, logger log.Logger, err error, business func(error) bool) log.Logger {
	switch {
	case err == nil:
		return level.Debug(logger)
	case business(err), ClientGone(ctx, err):
		return level.Info(logger)
	default:
		return level.Error(logger)
	}
}

// ClientGone reports whether err is the request's own cancellation: its
// client hung up (the HTTP server cancels ctx) and the work stopped for
// that, with a context error or with PostgreSQL's query_canceled (57014),
// which lib/pq returns when it cancels the running statement for ctx. The
// server's own deadlines are not: they are a failure to answer in time.
func ClientGone(ctx context.Context, err error) bool {
	if !errors.Is(ctx.Err(), context.Canceled) {
		return false
	}
	var state interface{ SQLState() string }
	return errors.Is(err, context.Canceled) || errors.As(err, &state) && state.SQLState() == "57014"
}

// Method writes the one line a service's logging middleware logs per call:
// the method, how long it took, its error and the ids the caller adds, at
// the level ForOutcome picks. Each service's loggingMiddleware embeds one,
// with its own Business predicate (the errors its transport answers with a
// 4xx), so every service logs calls the same way.
type Method struct {
	Logger   log.Logger
	Business func(error) bool
}

// Log logs one call of method that began at begin and ended with err.
func (m Method) Log(ctx context.Context, method string, begin time.Time, err error, kv ...any) {
	logCall(ForOutcome(ctx, WithRequest(ctx, m.Logger), err, m.Business), method, begin, err, kv)
}

// LogMilestone is Log for a call whose success is itself worth a line at
// info, the one an operator searches for (an order placed: its order_id
// leads to the checkout's trace id).
func (m Method) LogMilestone(ctx context.Context, method string, begin time.Time, err error, kv ...any) {
	logger := WithRequest(ctx, m.Logger)
	if err == nil {
		logger = level.Info(logger)
	} else {
		logger = ForOutcome(ctx, logger, err, m.Business)
	}
	logCall(logger, method, begin, err, kv)
}

func logCall(logger log.Logger, method string, begin time.Time, err error, kv []any) {
	kv = append([]any{"method", method, "took", time.Since(begin), "err", err}, kv...)
	_ = logger.Log(kv...)
}
