package product

import (
	"context"
	"errors"
	"time"

	"github.com/go-kit/kit/metrics"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mercato-dev/mercato/shared/logging"
	sharedmetrics "github.com/mercato-dev/mercato/shared/metrics"
)

// Middleware decorates a Backend.
type Middleware func(Backend) Backend

// instance is a Backend put together from one decorator per part, so each
// decorator holds next as the interface it serves and its assertion fails
// when that interface gains a method it does not decorate.
type instance struct {
	Catalogue
	Inventory
	Housekeeping
}

// LoggingMiddleware logs one line per call with its outcome and duration.
func LoggingMiddleware(logger log.Logger) Middleware {
	return func(next Backend) Backend {
		m := logging.Method{Logger: logger, Business: isBusinessError}
		return instance{
			Catalogue:    &catalogueLogging{next: next, Method: m},
			Inventory:    &inventoryLogging{next: next, Method: m},
			Housekeeping: &housekeepingLogging{next: next, Method: m},
		}
	}
}

type catalogueLogging struct {
	next Catalogue
	logging.Method
}

type inventoryLogging struct {
	next Inventory
	logging.Method
}

type housekeepingLogging struct {
	next Housekeeping
	logging.Method
}

var (
	_ Catalogue    = (*catalogueLogging)(nil)
	_ Inventory    = (*inventoryLogging)(nil)
	_ Housekeeping = (*housekeepingLogging)(nil)
)

func (mw *catalogueLogging) ListCategories(ctx context.Context) (tree []CategoryNode, err error) {
	defer func(begin time.Time) { mw.Log(ctx, "ListCategories", begin, err) }(time.Now())
	return mw.next.ListCategories(ctx)
}

func (mw *catalogueLogging) CreateCategory(ctx context.Context, in CategoryInput) (c Category, err error) {
	defer func(begin time.Time) { mw.Log(ctx, "CreateCategory", begin, err, "category_id", c.ID) }(time.Now())
	return mw.next.CreateCategory(ctx, in)
}

func (mw *catalogueLogging) UpdateCategory(ctx context.Context, id string, p CategoryPatch) (c Category, err error) {
	defer func(begin time.Time) { mw.Log(ctx, "UpdateCategory", begin, err, "category_id", id) }(time.Now())
	return mw.next.UpdateCategory(ctx, id, p)
}

func (mw *catalogueLogging) DeleteCategory(ctx context.Context, id string) (err error) {
	defer func(begin time.Time) { mw.Log(ctx, "DeleteCategory", begin, err, "category_id", id) }(time.Now())
	return mw.next.DeleteCategory(ctx, id)
}

func (mw *catalogueLogging) ListProducts(ctx context.Context, q ProductQuery) (p ProductPage, err error) {
	defer func(begin time.Time) {
		mw.Log(ctx, "ListProducts", begin, err, "page", q.Page, "page_size", q.PageSize, "total", p.Total)
	}(time.Now())
	return mw.next.ListProducts(ctx, q)
}

func (mw *catalogueLogging) GetProduct(ctx context.Context, ref string, admin bool) (p Product, err error) {
	defer func(begin time.Time) { mw.Log(ctx, "GetProduct", begin, err, "ref", ref, "admin", admin) }(time.Now())
	return mw.next.GetProduct(ctx, ref, admin)
}

func (mw *catalogueLogging) CreateProduct(ctx context.Context, in ProductInput) (p Product, err error) {
	defer func(begin time.Time) { mw.Log(ctx, "CreateProduct", begin, err, "product_id", p.ID) }(time.Now())
	return mw.next.CreateProduct(ctx, in)
}

func (mw *catalogueLogging) UpdateProduct(ctx context.Context, id string, patch ProductPatch) (p Product, err error) {
	defer func(begin time.Time) { mw.Log(ctx, "UpdateProduct", begin, err, "product_id", id) }(time.Now())
	return mw.next.UpdateProduct(ctx, id, patch)
}

func (mw *catalogueLogging) DeactivateProduct(ctx context.Context, id string) (err error) {
	defer func(begin time.Time) { mw.Log(ctx, "DeactivateProduct", begin, err, "product_id", id) }(time.Now())
	return mw.next.DeactivateProduct(ctx, id)
}

func (mw *catalogueLogging) CreateVariant(ctx context.Context, productID string, in VariantInput) (v Variant, err error) {
	defer func(begin time.Time) {
		mw.Log(ctx, "CreateVariant", begin, err, "product_id", productID, "variant_id", v.ID)
	}(time.Now())
	return mw.next.CreateVariant(ctx, productID, in)
}

func (mw *catalogueLogging) UpdateVariant(ctx context.Context, productID, variantID string, p VariantPatch) (v Variant, err error) {
	defer func(begin time.Time) {
		mw.Log(ctx, "UpdateVariant", begin, err, "product_id", productID, "variant_id", variantID)
	}(time.Now())
	return mw.next.UpdateVariant(ctx, productID, variantID, p)
}

func (mw *catalogueLogging) AdjustStock(ctx context.Context, productID string, a StockAdjustment) (p Product, err error) {
	defer func(begin time.Time) {
		mw.Log(ctx, "AdjustStock", begin, err, "product_id", productID, "variant_id", a.VariantID, "delta", a.Delta)
	}(time.Now())
	return mw.next.AdjustStock(ctx, productID, a)
}

func (mw *inventoryLogging) Reserve(ctx context.Context, r ReservationRequest) (res Reservation, created bool, err error) {
	defer func(begin time.Time) {
		mw.Log(ctx, "Reserve", begin, err, "order_id", r.OrderID, "lines", len(r.Items), "created", created)
	}(time.Now())
	return mw.next.Reserve(ctx, r)
}

func (mw *inventoryLogging) CommitReservation(ctx context.Context, orderID string) (r Reservation, err error) {
	defer func(begin time.Time) { mw.Log(ctx, "CommitReservation", begin, err, "order_id", orderID) }(time.Now())
	return mw.next.CommitReservation(ctx, orderID)
}

func (mw *inventoryLogging) ReleaseReservation(ctx context.Context, orderID string) (r Reservation, err error) {
	defer func(begin time.Time) { mw.Log(ctx, "ReleaseReservation", begin, err, "order_id", orderID) }(time.Now())
	return mw.next.ReleaseReservation(ctx, orderID)
}

func (mw *inventoryLogging) GetReservation(ctx context.Context, orderID string) (r Reservation, err error) {
	defer func(begin time.Time) { mw.Log(ctx, "GetReservation", begin, err, "order_id", orderID) }(time.Now())
	return mw.next.GetReservation(ctx, orderID)
}

func (mw *housekeepingLogging) ReleaseExpired(ctx context.Context) (n int, err error) {
	defer func(begin time.Time) {
		// Only sweeps that did something, or failed: the sweeper runs every
		// few seconds and would otherwise fill the log with nothing.
		if n > 0 || err != nil {
			l := level.Info
			if err != nil {
				l = level.Error
			}
			_ = l(mw.Logger).Log("method", "ReleaseExpired", "took", time.Since(begin), "released", n, "err", err)
		}
	}(time.Now())
	return mw.next.ReleaseExpired(ctx)
}

func (mw *housekeepingLogging) CountLowStock(ctx context.Context) (n int, err error) {
	defer func() {
		if err != nil { // it runs every few seconds: only failures are news
			_ = level.Error(mw.Logger).Log("method", "CountLowStock", "err", err)
		}
	}()
	return mw.next.CountLowStock(ctx)
}

func (mw *housekeepingLogging) SeedDemo(ctx context.Context) (seeded bool, err error) {
	defer func(begin time.Time) { mw.Log(ctx, "SeedDemo", begin, err, "seeded", seeded) }(time.Now())
	return mw.next.SeedDemo(ctx)
}

// Metrics are the product service's business metrics.
type Metrics struct {
	Reservations metrics.Counter              // reservations_total{result}
	Commits      metrics.Counter              // reservation_commits_total{result}
	Releases     metrics.Counter              // reservation_releases_total{reason}
	Duration     sharedmetrics.MethodDuration // product_service_duration_seconds{method,success}
	Cache        metrics.Counter              // catalogue_cache_requests_total{kind,result}
	LowStock     metrics.Gauge                // product_low_stock_products, set by each CountLowStock
}

// NewMetrics registers the business metrics on reg (built in main).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	return &Metrics{
		Reservations: sharedmetrics.NewCounter(reg, "reservations_total",
			"Reservation requests by result: reserved, replayed, out_of_stock, unknown_product, mismatch, error.", "result"),
		Commits: sharedmetrics.NewCounter(reg, "reservation_commits_total",
			"Reservation commits by result: committed, released (too late), error.", "result"),
		Releases: sharedmetrics.NewCounter(reg, "reservation_releases_total",
			"Reservations released, by reason: released (asked), expired (sweeper).", "reason"),
		Duration: sharedmetrics.NewMethodDuration(reg, "product_service_duration_seconds",
			"Time spent in product service methods, in seconds."),
		Cache: sharedmetrics.NewCounter(reg, "catalogue_cache_requests_total",
			"Catalogue cache lookups by kind (product, list, categories) and result (hit, miss, error).", "kind", "result"),
		LowStock: sharedmetrics.NewGauge(reg, "product_low_stock_products",
			"Active products without variants, and active variants, whose stock is at or below the product's min_stock_quantity, as last counted."),
	}
}

// InstrumentingMiddleware records m for every call.
func InstrumentingMiddleware(m *Metrics) Middleware {
	return func(next Backend) Backend {
		return instance{
			Catalogue:    &catalogueInstrumenting{next: next, m: m},
			Inventory:    &inventoryInstrumenting{next: next, m: m},
			Housekeeping: &housekeepingInstrumenting{next: next, m: m},
		}
	}
}

type catalogueInstrumenting struct {
	next Catalogue
	m    *Metrics
}

type inventoryInstrumenting struct {
	next Inventory
	m    *Metrics
}

type housekeepingInstrumenting struct {
	next Housekeeping
	m    *Metrics
}

var (
	_ Catalogue    = (*catalogueInstrumenting)(nil)
	_ Inventory    = (*inventoryInstrumenting)(nil)
	_ Housekeeping = (*housekeepingInstrumenting)(nil)
)

// reservationResult names the outcome of a Reserve for the result label.
func reservationResult(created bool, err error) string {
	switch {
	case err == nil && created:
		return "reserved"
	case err == nil:
		return "replayed"
	case errors.Is(err, ErrOutOfStock):
		return "out_of_stock"
	case errors.Is(err, ErrUnknownProduct):
		return "unknown_product"
	case errors.Is(err, ErrReservationMismatch):
		return "mismatch"
	default:
		return "error"
	}
}

func (mw *catalogueInstrumenting) ListCategories(ctx context.Context) (tree []CategoryNode, err error) {
	defer func(begin time.Time) { mw.m.Duration.Observe("ListCategories", begin, err) }(time.Now())
	return mw.next.ListCategories(ctx)
}

func (mw *catalogueInstrumenting) CreateCategory(ctx context.Context, in CategoryInput) (c Category, err error) {
	defer func(begin time.Time) { mw.m.Duration.Observe("CreateCategory", begin, err) }(time.Now())
	return mw.next.CreateCategory(ctx, in)
}

func (mw *catalogueInstrumenting) UpdateCategory(ctx context.Context, id string, p CategoryPatch) (c Category, err error) {
	defer func(begin time.Time) { mw.m.Duration.Observe("UpdateCategory", begin, err) }(time.Now())
	return mw.next.UpdateCategory(ctx, id, p)
}

func (mw *catalogueInstrumenting) DeleteCategory(ctx context.Context, id string) (err error) {
	defer func(begin time.Time) { mw.m.Duration.Observe("DeleteCategory", begin, err) }(time.Now())
	return mw.next.DeleteCategory(ctx, id)
}

func (mw *catalogueInstrumenting) ListProducts(ctx context.Context, q ProductQuery) (p ProductPage, err error) {
	defer func(begin time.Time) { mw.m.Duration.Observe("ListProducts", begin, err) }(time.Now())
	return mw.next.ListProducts(ctx, q)
}

func (mw *catalogueInstrumenting) GetProduct(ctx context.Context, ref string, admin bool) (p Product, err error) {
	defer func(begin time.Time) { mw.m.Duration.Observe("GetProduct", begin, err) }(time.Now())
	return mw.next.GetProduct(ctx, ref, admin)
}

func (mw *catalogueInstrumenting) CreateProduct(ctx context.Context, in ProductInput) (p Product, err error) {
	defer func(begin time.Time) { mw.m.Duration.Observe("CreateProduct", begin, err) }(time.Now())
	return mw.next.CreateProduct(ctx, in)
}

func (mw *catalogueInstrumenting) UpdateProduct(ctx context.Context, id string, patch ProductPatch) (p Product, err error) {
	defer func(begin time.Time) { mw.m.Duration.Observe("UpdateProduct", begin, err) }(time.Now())
	return mw.next.UpdateProduct(ctx, id, patch)
}

func (mw *catalogueInstrumenting) DeactivateProduct(ctx context.Context, id string) (err error) {
	defer func(begin time.Time) { mw.m.Duration.Observe("DeactivateProduct", begin, err) }(time.Now())
	return mw.next.DeactivateProduct(ctx, id)
}

func (mw *catalogueInstrumenting) CreateVariant(ctx context.Context, productID string, in VariantInput) (v Variant, err error) {
	defer func(begin time.Time) { mw.m.Duration.Observe("CreateVariant", begin, err) }(time.Now())
	return mw.next.CreateVariant(ctx, productID, in)
}

func (mw *catalogueInstrumenting) UpdateVariant(ctx context.Context, productID, variantID string, p VariantPatch) (v Variant, err error) {
	defer func(begin time.Time) { mw.m.Duration.Observe("UpdateVariant", begin, err) }(time.Now())
	return mw.next.UpdateVariant(ctx, productID, variantID, p)
}

func (mw *catalogueInstrumenting) AdjustStock(ctx context.Context, productID string, a StockAdjustment) (p Product, err error) {
	defer func(begin time.Time) { mw.m.Duration.Observe("AdjustStock", begin, err) }(time.Now())
	return mw.next.AdjustStock(ctx, productID, a)
}

func (mw *inventoryInstrumenting) Reserve(ctx context.Context, r ReservationRequest) (res Reservation, created bool, err error) {
	defer func(begin time.Time) {
		mw.m.Duration.Observe("Reserve", begin, err)
		mw.m.Reservations.With("result", reservationResult(created, err)).Add(1)
	}(time.Now())
	return mw.next.Reserve(ctx, r)
}

func (mw *inventoryInstrumenting) CommitReservation(ctx context.Context, orderID string) (r Reservation, err error) {
	defer func(begin time.Time) {
		mw.m.Duration.Observe("CommitReservation", begin, err)
		result := "committed"
		switch {
		case errors.Is(err, ErrReservationReleased):
			result = "released"
		case err != nil:
			result = "error"
		}
		mw.m.Commits.With("result", result).Add(1)
	}(time.Now())
	return mw.next.CommitReservation(ctx, orderID)
}

func (mw *inventoryInstrumenting) ReleaseReservation(ctx context.Context, orderID string) (r Reservation, err error) {
	defer func(begin time.Time) {
		mw.m.Duration.Observe("ReleaseReservation", begin, err)
		if err == nil {
			mw.m.Releases.With("reason", ReasonReleased).Add(1)
		}
	}(time.Now())
	return mw.next.ReleaseReservation(ctx, orderID)
}

func (mw *inventoryInstrumenting) GetReservation(ctx context.Context, orderID string) (r Reservation, err error) {
	defer func(begin time.Time) { mw.m.Duration.Observe("GetReservation", begin, err) }(time.Now())
	return mw.next.GetReservation(ctx, orderID)
}

func (mw *housekeepingInstrumenting) ReleaseExpired(ctx context.Context) (n int, err error) {
	defer func(begin time.Time) {
		mw.m.Duration.Observe("ReleaseExpired", begin, err)
		mw.m.Releases.With("reason", ReasonExpired).Add(float64(n))
	}(time.Now())
	return mw.next.ReleaseExpired(ctx)
}

func (mw *housekeepingInstrumenting) CountLowStock(ctx context.Context) (n int, err error) {
	defer func(begin time.Time) {
		mw.m.Duration.Observe("CountLowStock", begin, err)
		if err == nil {
			mw.m.LowStock.Set(float64(n))
		}
	}(time.Now())
	return mw.next.CountLowStock(ctx)
}

func (mw *housekeepingInstrumenting) SeedDemo(ctx context.Context) (seeded bool, err error) {
	defer func(begin time.Time) { mw.m.Duration.Observe("SeedDemo", begin, err) }(time.Now())
	return mw.next.SeedDemo(ctx)
}
