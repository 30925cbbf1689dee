package order

import (
	"context"
	"time"

	"github.com/go-kit/kit/metrics"
	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mercato-dev/mercato/product"
	"github.com/mercato-dev/mercato/shared/logging"
	sharedmetrics "github.com/mercato-dev/mercato/shared/metrics"
)

// Middleware decorates a Service.
type Middleware func(Service) Service

// LoggingMiddleware logs one line per call with its outcome and duration.
// It logs ids and statuses only: never the card, never addresses.
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

func (mw *loggingMiddleware) PlaceOrder(ctx context.Context, userID, idempotencyKey string, c Checkout) (o Order, err error) {
	defer func(begin time.Time) {
		mw.LogMilestone(ctx, "PlaceOrder", begin, err, "user_id", userID, "order_id", o.ID, "order_number", o.OrderNumber,
			"lines", len(c.Items), "keyed", idempotencyKey != "")
	}(time.Now())
	return mw.next.PlaceOrder(ctx, userID, idempotencyKey, c)
}

func (mw *loggingMiddleware) ListOrders(ctx context.Context, caller Caller, f ListFilter) (p OrderPage, err error) {
	defer func(begin time.Time) {
		mw.Log(ctx, "ListOrders", begin, err, "user_id", caller.UserID, "admin", caller.Admin,
			"status", f.Status, "page", f.Page, "count", len(p.Items))
	}(time.Now())
	return mw.next.ListOrders(ctx, caller, f)
}

func (mw *loggingMiddleware) GetOrder(ctx context.Context, caller Caller, id string) (o Order, err error) {
	defer func(begin time.Time) {
		mw.Log(ctx, "GetOrder", begin, err, "user_id", caller.UserID, "order_id", id)
	}(time.Now())
	return mw.next.GetOrder(ctx, caller, id)
}

func (mw *loggingMiddleware) CancelOrder(ctx context.Context, caller Caller, id, reason string) (o Order, err error) {
	defer func(begin time.Time) {
		mw.Log(ctx, "CancelOrder", begin, err, "user_id", caller.UserID, "admin", caller.Admin, "order_id", id)
	}(time.Now())
	return mw.next.CancelOrder(ctx, caller, id, reason)
}

func (mw *loggingMiddleware) SetStatus(ctx context.Context, id string, status Status) (o Order, err error) {
	defer func(begin time.Time) {
		mw.Log(ctx, "SetStatus", begin, err, "order_id", id, "status", status)
	}(time.Now())
	return mw.next.SetStatus(ctx, id, status)
}

// Metrics are the order service's business metrics.
type Metrics struct {
	// Checkouts counts answers to POST /orders by result: "success" (an
	// order, a repeat of an Idempotency-Key included) or the error code.
	Checkouts   metrics.Counter              // order_checkouts_total{result}
	Transitions metrics.Counter              // order_transitions_total{status}
	Revenue     metrics.Counter              // order_revenue_cents_total{currency}: totals of orders confirmed
	Duration    sharedmetrics.MethodDuration // order_service_duration_seconds{method,success}
}

// NewMetrics registers the business metrics on reg (built in main).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Checkouts: sharedmetrics.NewCounter(reg, "order_checkouts_total",
			"Answers to POST /orders by result: success or the error code.", "result"),
		Transitions: sharedmetrics.NewCounter(reg, "order_transitions_total",
			"Order status changes by the status reached, whoever made them.", "status"),
		Revenue: sharedmetrics.NewCounter(reg, "order_revenue_cents_total",
			"Totals of the orders confirmed (payment captured), in minor units (cents), by currency.", "currency"),
		Duration: sharedmetrics.NewMethodDuration(reg, "order_service_duration_seconds",
			"Time spent in order service methods, in seconds."),
	}
	// Orders are priced in the catalogue's one currency: its series
	// exists from the start, at 0.
	m.Revenue.With("currency", product.Currency).Add(0)
	// So do the series NoConfirmedOrders watches, and every status an order
	// can enter: increase() sees an instance's first checkout and first
	// confirmation, not a new series that starts at 1 (a restarted
	// instance has a new Consul service id, so new series).
	m.Checkouts.With("result", "success").Add(0)
	for _, next := range transitions {
		for _, s := range next {
			m.Transitions.With("status", string(s)).Add(0)
		}
	}
	return m
}

// transitioned counts o having reached its status, and its total as revenue
// when that is confirmed. A nil *Metrics counts nothing.
func (m *Metrics) transitioned(o Order) {
	if m == nil {
		return
	}
	m.Transitions.With("status", string(o.Status)).Add(1)
	if o.Status == StatusConfirmed {
		m.Revenue.With("currency", o.Currency).Add(float64(o.TotalAmount.Cents()))
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

func (mw *instrumentingMiddleware) PlaceOrder(ctx context.Context, userID, idempotencyKey string, c Checkout) (o Order, err error) {
	defer func(begin time.Time) {
		mw.m.Duration.Observe("PlaceOrder", begin, err)
		mw.m.Checkouts.With("result", checkoutResult(err)).Add(1)
	}(time.Now())
	return mw.next.PlaceOrder(ctx, userID, idempotencyKey, c)
}

func (mw *instrumentingMiddleware) ListOrders(ctx context.Context, caller Caller, f ListFilter) (p OrderPage, err error) {
	defer func(begin time.Time) { mw.m.Duration.Observe("ListOrders", begin, err) }(time.Now())
	return mw.next.ListOrders(ctx, caller, f)
}

func (mw *instrumentingMiddleware) GetOrder(ctx context.Context, caller Caller, id string) (o Order, err error) {
	defer func(begin time.Time) { mw.m.Duration.Observe("GetOrder", begin, err) }(time.Now())
	return mw.next.GetOrder(ctx, caller, id)
}

func (mw *instrumentingMiddleware) CancelOrder(ctx context.Context, caller Caller, id, reason string) (o Order, err error) {
	defer func(begin time.Time) {
		mw.m.Duration.Observe("CancelOrder", begin, err)
		if err == nil {
			mw.m.Transitions.With("status", string(StatusCancelled)).Add(1)
		}
	}(time.Now())
	return mw.next.CancelOrder(ctx, caller, id, reason)
}

func (mw *instrumentingMiddleware) SetStatus(ctx context.Context, id string, status Status) (o Order, err error) {
	defer func(begin time.Time) {
		mw.m.Duration.Observe("SetStatus", begin, err)
		if err == nil {
			mw.m.Transitions.With("status", string(status)).Add(1)
		}
	}(time.Now())
	return mw.next.SetStatus(ctx, id, status)
}
