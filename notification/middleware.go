package notification

import (
	"context"
	"time"

	"github.com/go-kit/kit/metrics"
	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mercato-dev/mercato/shared/logging"
	sharedmetrics "github.com/mercato-dev/mercato/shared/metrics"
)

// Middleware decorates a Service.
type Middleware func(Service) Service

// LoggingMiddleware logs one line per call with its outcome and duration.
// It logs ids only: never push tokens.
func LoggingMiddleware(logger log.Logger) Middleware {
	return func(next Service) Service {
		return &loggingMiddleware{next: next, Method: logging.Method{Logger: logger, Business: isBusinessError}}
	}
}

type loggingMiddleware struct {
	next Service
	logging.Method
}

var _ Service = (*loggingMiddleware)(nil)

func (mw *loggingMiddleware) ListNotifications(ctx context.Context, userID string, page, pageSize int) (p NotificationPage, err error) {
	defer func(begin time.Time) {
		mw.Log(ctx, "ListNotifications", begin, err, "user_id", userID, "page", page, "page_size", pageSize, "count", len(p.Items))
	}(time.Now())
	return mw.next.ListNotifications(ctx, userID, page, pageSize)
}

func (mw *loggingMiddleware) GetPreferences(ctx context.Context, userID string) (p Preferences, err error) {
	defer func(begin time.Time) { mw.Log(ctx, "GetPreferences", begin, err, "user_id", userID) }(time.Now())
	return mw.next.GetPreferences(ctx, userID)
}

func (mw *loggingMiddleware) UpdatePreferences(ctx context.Context, userID string, in Preferences) (p Preferences, err error) {
	defer func(begin time.Time) {
		mw.Log(ctx, "UpdatePreferences", begin, err, "user_id", userID, "email", in.Email, "sms", in.SMS, "push", in.Push)
	}(time.Now())
	return mw.next.UpdatePreferences(ctx, userID, in)
}

func (mw *loggingMiddleware) SetPushToken(ctx context.Context, userID, token string) (err error) {
	defer func(begin time.Time) { mw.Log(ctx, "SetPushToken", begin, err, "user_id", userID) }(time.Now())
	return mw.next.SetPushToken(ctx, userID, token)
}

func (mw *loggingMiddleware) DeletePushToken(ctx context.Context, userID string) (err error) {
	defer func(begin time.Time) { mw.Log(ctx, "DeletePushToken", begin, err, "user_id", userID) }(time.Now())
	return mw.next.DeletePushToken(ctx, userID)
}

// Metrics are the notification service's API metrics.
type Metrics struct {
	Duration sharedmetrics.MethodDuration // notification_service_duration_seconds{method,success}
}

// NewMetrics registers the API metrics on reg (built in main).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	return &Metrics{
		Duration: sharedmetrics.NewMethodDuration(reg, "notification_service_duration_seconds",
			"Time spent in notification service methods, in seconds."),
	}
}

// InstrumentingMiddleware records m for every call.
func InstrumentingMiddleware(m *Metrics) Middleware {
	return func(next Service) Service { return &instrumentingMiddleware{next: next, m: m} }
}

type instrumentingMiddleware struct {
	next Service
	m    *Metrics
}

var _ Service = (*instrumentingMiddleware)(nil)

func (mw *instrumentingMiddleware) ListNotifications(ctx context.Context, userID string, page, pageSize int) (p NotificationPage, err error) {
	defer func(begin time.Time) { mw.m.Duration.Observe("ListNotifications", begin, err) }(time.Now())
	return mw.next.ListNotifications(ctx, userID, page, pageSize)
}

func (mw *instrumentingMiddleware) GetPreferences(ctx context.Context, userID string) (p Preferences, err error) {
	defer func(begin time.Time) { mw.m.Duration.Observe("GetPreferences", begin, err) }(time.Now())
	return mw.next.GetPreferences(ctx, userID)
}

func (mw *instrumentingMiddleware) UpdatePreferences(ctx context.Context, userID string, in Preferences) (p Preferences, err error) {
	defer func(begin time.Time) { mw.m.Duration.Observe("UpdatePreferences", begin, err) }(time.Now())
	return mw.next.UpdatePreferences(ctx, userID, in)
}

func (mw *instrumentingMiddleware) SetPushToken(ctx context.Context, userID, token string) (err error) {
	defer func(begin time.Time) { mw.m.Duration.Observe("SetPushToken", begin, err) }(time.Now())
	return mw.next.SetPushToken(ctx, userID, token)
}

func (mw *instrumentingMiddleware) DeletePushToken(ctx context.Context, userID string) (err error) {
	defer func(begin time.Time) { mw.m.Duration.Observe("DeletePushToken", begin, err) }(time.Now())
	return mw.next.DeletePushToken(ctx, userID)
}

// DispatchMetrics are the delivery metrics: what became of each attempt, and
// how long attempts take.
type DispatchMetrics struct {
	Attempts metrics.Counter   // notification_attempts_total{channel,template,status}
	Duration metrics.Histogram // notification_attempt_duration_seconds{channel,status}
}

// NewDispatchMetrics registers the delivery metrics on reg (built in main).
func NewDispatchMetrics(reg prometheus.Registerer) *DispatchMetrics {
	return &DispatchMetrics{
		Attempts: sharedmetrics.NewCounter(reg, "notification_attempts_total",
			"Delivery attempts by outcome: sent, retrying, failed or skipped.", "channel", "template", "status"),
		Duration: sharedmetrics.NewHistogram(reg, "notification_attempt_duration_seconds",
			"Time one delivery attempt took (lookups, rendering, provider call), in seconds.",
			[]float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}, "channel", "status"),
	}
}

func (m *DispatchMetrics) observe(n Notification, r AttemptResult, took time.Duration) {
	if m == nil {
		return
	}
	m.Attempts.With("channel", string(n.Channel), "template", n.Template, "status", string(r.Status)).Add(1)
	m.Duration.With("channel", string(n.Channel), "status", string(r.Status)).Observe(took.Seconds())
}
