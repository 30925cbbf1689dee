package payment

import (
	"context"
	"time"

	"github.com/go-kit/kit/metrics"
	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mercato-dev/mercato/shared/logging"
	sharedmetrics "github.com/mercato-dev/mercato/shared/metrics"
)

// Middleware decorates the service, both what its endpoints serve and what
// its event handler drives.
type Middleware func(Backend) Backend

// LoggingMiddleware logs one line per call with its outcome and duration.
// It logs ids, statuses and amounts only: never a card (not even its last
// four digits, which add nothing to a log) nor a webhook's signature.
func LoggingMiddleware(logger log.Logger) Middleware {
	return func(next Backend) Backend {
		return &loggingMiddleware{next: next, Method: logging.Method{Logger: logger, Business: isBusinessError}}
	}
}

type loggingMiddleware struct {
	next Backend
	logging.Method
}

var _ Backend = (*loggingMiddleware)(nil)

func (mw *loggingMiddleware) Charge(ctx context.Context, r ChargeRequest) (p Payment, created bool, err error) {
	defer func(begin time.Time) {
		mw.Log(ctx, "Charge", begin, err, "order_id", r.OrderID, "payment_id", p.ID, "created", created, "status", p.Status)
	}(time.Now())
	return mw.next.Charge(ctx, r)
}

func (mw *loggingMiddleware) GetPayment(ctx context.Context, userID, id string) (p Payment, err error) {
	defer func(begin time.Time) { mw.Log(ctx, "GetPayment", begin, err, "payment_id", id) }(time.Now())
	return mw.next.GetPayment(ctx, userID, id)
}

func (mw *loggingMiddleware) PaymentByOrder(ctx context.Context, userID, orderID string) (p Payment, err error) {
	defer func(begin time.Time) { mw.Log(ctx, "PaymentByOrder", begin, err, "order_id", orderID) }(time.Now())
	return mw.next.PaymentByOrder(ctx, userID, orderID)
}

func (mw *loggingMiddleware) ListPayments(ctx context.Context, q PaymentQuery) (p PaymentPage, err error) {
	defer func(begin time.Time) {
		mw.Log(ctx, "ListPayments", begin, err, "order_id", q.OrderID, "page", q.Page, "page_size", q.PageSize, "count", len(p.Items))
	}(time.Now())
	return mw.next.ListPayments(ctx, q)
}

func (mw *loggingMiddleware) Refund(ctx context.Context, r RefundRequest) (res RefundResult, err error) {
	defer func(begin time.Time) {
		mw.Log(ctx, "Refund", begin, err, "payment_id", r.PaymentID, "refund_id", res.Refund.ID,
			"amount", res.Refund.Amount, "replayed", res.Replayed, "status", res.Payment.Status)
	}(time.Now())
	return mw.next.Refund(ctx, r)
}

func (mw *loggingMiddleware) HandleWebhook(ctx context.Context, d WebhookDelivery) (o Outcome, err error) {
	defer func(begin time.Time) {
		mw.Log(ctx, "HandleWebhook", begin, err, "provider", d.Provider, "payment_id", o.Payment.ID,
			"status", o.Payment.Status, "changed", o.Changed)
	}(time.Now())
	return mw.next.HandleWebhook(ctx, d)
}

func (mw *loggingMiddleware) CancelOrderPayment(ctx context.Context, orderID string) (o Outcome, err error) {
	defer func(begin time.Time) {
		mw.Log(ctx, "CancelOrderPayment", begin, err, "order_id", orderID, "payment_id", o.Payment.ID,
			"status", o.Payment.Status, "refunded", o.Refund != nil)
	}(time.Now())
	return mw.next.CancelOrderPayment(ctx, orderID)
}

// Metrics are the payment service's business metrics.
type Metrics struct {
	Payments       metrics.Counter              // payments_total{status}
	Refunds        metrics.Counter              // refunds_total
	RefundedAmount metrics.Counter              // refunded_amount_cents_total
	Failures       metrics.Counter              // payment_failures_total{code}: failed charges by decline code
	Duration       sharedmetrics.MethodDuration // payment_service_duration_seconds{method,success}
}

// UnknownFailureCode is the code label of a failed charge that came
// without a code.
const UnknownFailureCode = "unknown"

// NewMetrics registers the business metrics on reg (built in main).
// failureCodes are the decline codes the service's provider answers with
// (sandbox.FailureCodes), whose payment_failures_total series start at 0
// with those of UnknownFailureCode and FailureProcessingError.
func NewMetrics(reg prometheus.Registerer, failureCodes ...string) *Metrics {
	m := &Metrics{
		Payments: sharedmetrics.NewCounter(reg, "payments_total",
			"Payment state changes, by the status they led to (pending: a charge was requested).", "status"),
		Refunds: sharedmetrics.NewCounter(reg, "refunds_total", "Refunds made."),
		RefundedAmount: sharedmetrics.NewCounter(reg, "refunded_amount_cents_total",
			"Money refunded, in minor units (cents) of the payments' currencies."),
		Failures: sharedmetrics.NewCounter(reg, "payment_failures_total",
			"Failed charges by decline code (unknown: the provider gave none).", "code"),
		Duration: sharedmetrics.NewMethodDuration(reg, "payment_service_duration_seconds",
			"Time spent in payment service methods, in seconds."),
	}
	// Every series exists from the start, at 0, so dashboards and rate()
	// see the first payment of each kind instead of a series appearing.
	for _, status := range []string{StatusPending, StatusCompleted, StatusFailed, StatusPartiallyRefunded, StatusRefunded} {
		m.Payments.With("status", status).Add(0)
	}
	m.Refunds.Add(0)
	m.RefundedAmount.Add(0)
	for _, code := range append([]string{UnknownFailureCode, FailureProcessingError}, failureCodes...) {
		m.Failures.With("code", code).Add(0)
	}
	return m
}

// InstrumentingMiddleware records m for every call.
func InstrumentingMiddleware(m *Metrics) Middleware {
	return func(next Backend) Backend { return &instrumentingMiddleware{next: next, m: m} }
}

type instrumentingMiddleware struct {
	next Backend
	m    *Metrics
}

var _ Backend = (*instrumentingMiddleware)(nil)

// failed counts a charge that failed with code. A nil *Metrics counts
// nothing.
func (m *Metrics) failed(code string) {
	if m == nil {
		return
	}
	if code == "" {
		code = UnknownFailureCode
	}
	m.Payments.With("status", StatusFailed).Add(1)
	m.Failures.With("code", code).Add(1)
}

// refunded counts a refund and the status it left the payment in.
func (m *Metrics) refunded(r Refund, status string) {
	m.Refunds.Add(1)
	m.RefundedAmount.Add(float64(r.Amount.Cents()))
	m.Payments.With("status", status).Add(1)
}

func (mw *instrumentingMiddleware) Charge(ctx context.Context, r ChargeRequest) (p Payment, created bool, err error) {
	defer func(begin time.Time) {
		mw.m.Duration.Observe("Charge", begin, err)
		if err == nil && created {
			mw.m.Payments.With("status", StatusPending).Add(1)
		}
	}(time.Now())
	return mw.next.Charge(ctx, r)
}

func (mw *instrumentingMiddleware) GetPayment(ctx context.Context, userID, id string) (p Payment, err error) {
	defer func(begin time.Time) { mw.m.Duration.Observe("GetPayment", begin, err) }(time.Now())
	return mw.next.GetPayment(ctx, userID, id)
}

func (mw *instrumentingMiddleware) PaymentByOrder(ctx context.Context, userID, orderID string) (p Payment, err error) {
	defer func(begin time.Time) { mw.m.Duration.Observe("PaymentByOrder", begin, err) }(time.Now())
	return mw.next.PaymentByOrder(ctx, userID, orderID)
}

func (mw *instrumentingMiddleware) ListPayments(ctx context.Context, q PaymentQuery) (p PaymentPage, err error) {
	defer func(begin time.Time) { mw.m.Duration.Observe("ListPayments", begin, err) }(time.Now())
	return mw.next.ListPayments(ctx, q)
}

func (mw *instrumentingMiddleware) Refund(ctx context.Context, r RefundRequest) (res RefundResult, err error) {
	defer func(begin time.Time) {
		mw.m.Duration.Observe("Refund", begin, err)
		if err == nil && !res.Replayed {
			mw.m.refunded(res.Refund, res.Payment.Status)
		}
	}(time.Now())
	return mw.next.Refund(ctx, r)
}

func (mw *instrumentingMiddleware) HandleWebhook(ctx context.Context, d WebhookDelivery) (o Outcome, err error) {
	defer func(begin time.Time) {
		mw.m.Duration.Observe("HandleWebhook", begin, err)
		switch {
		case err != nil || !o.Changed:
		case o.Refund != nil:
			// Captured and given back at once, the order having been
			// cancelled while the charge was pending: both count.
			mw.m.Payments.With("status", StatusCompleted).Add(1)
			mw.m.refunded(*o.Refund, o.Payment.Status)
		case o.Payment.Status == StatusFailed:
			mw.m.failed(o.Payment.FailureCode)
		default:
			mw.m.Payments.With("status", o.Payment.Status).Add(1)
		}
	}(time.Now())
	return mw.next.HandleWebhook(ctx, d)
}

func (mw *instrumentingMiddleware) CancelOrderPayment(ctx context.Context, orderID string) (o Outcome, err error) {
	defer func(begin time.Time) {
		mw.m.Duration.Observe("CancelOrderPayment", begin, err)
		if err == nil && o.Refund != nil {
			mw.m.refunded(*o.Refund, o.Payment.Status)
		}
	}(time.Now())
	return mw.next.CancelOrderPayment(ctx, orderID)
}
