// Command order runs one instance of the order service: checkout, order
// history and status, and the checkout saga's event handlers. Several
// instances may run side by side; each registers itself in Consul under
// "order" and joins the "order" consumer group.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/order"
	"github.com/mercato-dev/mercato/order/postgres"
	"github.com/mercato-dev/mercato/payment"
	"github.com/mercato-dev/mercato/product"
	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/config"
	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/httpkit"
	"github.com/mercato-dev/mercato/shared/logging"
	"github.com/mercato-dev/mercato/shared/metrics"
	"github.com/mercato-dev/mercato/shared/money"
	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
)

func main() {
	// SIGINT/SIGTERM cancel ctx, which drains the server and stops the loops.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case err != nil:
		fmt.Fprintln(os.Stderr, "order:", err)
		os.Exit(1)
	}
}

// startTimeout bounds start-up's calls to dependencies (connect, migrate,
// ping), so an unreachable one fails the start instead of hanging it.
const startTimeout = 15 * time.Second

// run serves until ctx is done. It is main without the process: tests run it
// in-process.
func run(ctx context.Context, args []string, logOutput io.Writer) error {
	// Configuration: flags, each with a MERCATO_* environment fallback.
	var (
		cfg             config.Common
		fs              = flag.NewFlagSet("order", flag.ContinueOnError)
		taxRate         = fs.Int("tax-rate-bps", 0, "tax on the subtotal in basis points (825 = 8.25%)")
		shippingFee     = fs.String("shipping-fee", "0.00", "flat shipping fee per order, a decimal like 4.99")
		reservationTTL  = fs.Duration("reservation-ttl", 15*time.Minute, "how long stock is held for an order's payment (10s-24h); an order still pending then is cancelled")
		keyRetention    = fs.Duration("idempotency-retention", order.MinIdempotencyRetention, "how long Idempotency-Keys of POST /orders are kept (at least 24h)")
		upstreamTimeout = fs.Duration("upstream-timeout", 5*time.Second, "deadline of one call to the product or payment service, retries included")
		claimIdle       = fs.Duration("event-claim-idle", 30*time.Second, "how long an event stays with a consumer that has not acknowledged it (failed, or crashed) before another instance takes it over")
	)
	cfg.Register(fs, order.ServiceName, "127.0.0.1:3003")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: order [flags]\n\nRuns one instance of Mercato's order service. Every flag can also be set in the\nenvironment as MERCATO_<FLAG> (upper case, dashes as underscores), e.g.\nMERCATO_DATABASE_URL; a flag on the command line wins.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := config.Parse(fs, args); err != nil {
		return err
	}
	if err := cfg.Validate(true); err != nil {
		return err
	}
	if *taxRate < 0 || *taxRate > 10_000 {
		return fmt.Errorf("-tax-rate-bps (MERCATO_TAX_RATE_BPS) must be between 0 and 10000, got %d", *taxRate)
	}
	fee, err := money.Parse(*shippingFee)
	if err != nil || fee < 0 {
		return fmt.Errorf("-shipping-fee (MERCATO_SHIPPING_FEE) must be a decimal amount like 4.99, got %q", *shippingFee)
	}
	if *reservationTTL < product.MinReservationTTL || *reservationTTL > product.MaxReservationTTL {
		return fmt.Errorf("-reservation-ttl (MERCATO_RESERVATION_TTL) must be between %s and %s", product.MinReservationTTL, product.MaxReservationTTL)
	}
	if *keyRetention < order.MinIdempotencyRetention {
		return errors.New("-idempotency-retention (MERCATO_IDEMPOTENCY_RETENTION) must be at least 24h")
	}
	if *upstreamTimeout <= 0 || *claimIdle <= 0 {
		return errors.New("-upstream-timeout and -event-claim-idle must be positive")
	}

	// Logging and metrics.
	logger := logging.New(logOutput, cfg.Service, cfg.LogLevel)
	reg := metrics.NewRegistry()
	httpMetrics := metrics.NewHTTP(reg, cfg.Service)
	ctx, stop := context.WithCancel(ctx) // also stops the loops when run fails
	defer stop()

	// PostgreSQL, brought up to the current schema.
	startCtx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	db, err := sharedpg.Open(startCtx, cfg.DatabaseURL, sharedpg.PoolOptions{MaxOpen: 30, MaxIdle: 15})
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	defer db.Close()
	if err := postgres.Migrate(startCtx, db); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	repo := postgres.New(db)

	// Redis: the event stream.
	rdb := redis.NewClient(&redis.Options{Addr: cfg.RedisAddr, DialTimeout: 2 * time.Second,
		ReadTimeout: 5 * time.Second, WriteTimeout: 2 * time.Second})
	defer rdb.Close()
	if err := rdb.Ping(startCtx).Err(); err != nil {
		return fmt.Errorf("redis at %s: %w", cfg.RedisAddr, err)
	}

	// Upstreams: the product and payment services, found in Consul, one
	// instancer each, behind per-instance breakers.
	consul, err := discovery.NewConsulClient(cfg.ConsulAddr)
	if err != nil {
		return err
	}
	upstream := discovery.Options{Timeout: *upstreamTimeout, Metrics: discovery.NewMetrics(reg)}
	productInstancer := discovery.NewInstancer(consul, product.ServiceName, logger)
	defer productInstancer.Stop()
	paymentInstancer := discovery.NewInstancer(consul, payment.ServiceName, logger)
	defer paymentInstancer.Stop()
	inventory := order.NewInventory(product.NewClient(productInstancer, logger, upstream))
	payments := order.NewPayments(payment.NewClient(paymentInstancer, logger, upstream))

	// Service, with its middlewares.
	tokens, err := auth.NewTokens([]byte(cfg.JWTSecret), 15*time.Minute) // issues service tokens
	if err != nil {
		return err
	}
	svc, err := order.NewService(repo, inventory, payments, tokens, order.Options{
		RequestHashKey: []byte(cfg.JWTSecret), TaxRateBasisPoints: *taxRate, ShippingFee: fee,
		ReservationTTL: *reservationTTL,
	})
	if err != nil {
		return err
	}
	orderMetrics := order.NewMetrics(reg)
	svc = order.LoggingMiddleware(logger)(svc)
	svc = order.InstrumentingMiddleware(orderMetrics)(svc)
	saga := order.NewSaga(repo, inventory, tokens, log.With(logger, "component", "saga"), orderMetrics.Transitions)

	// Background loops, stopped (and waited for) before run returns: the
	// outbox relay, the saga's consumer and the idempotency key clean-up.
	var loops sync.WaitGroup
	defer func() { stop(); loops.Wait() }()
	eventMetrics := events.NewMetrics(reg, cfg.Service)
	background := func(name string, loop func(context.Context) error) {
		loops.Add(1)
		go func() {
			defer loops.Done()
			if err := loop(ctx); err != nil {
				level.Error(logger).Log("msg", name+" stopped", "err", err)
			}
		}()
	}
	background("outbox relay", (&events.Relay{DB: db, Redis: rdb,
		Logger: log.With(logger, "component", "outbox_relay"), Metrics: eventMetrics}).Run)
	// A step that fails (the product service is down) is retried every
	// claim-idle interval; 20 attempts ride out an outage of minutes before
	// the event is dead-lettered.
	background("saga consumer", (&events.Consumer{DB: db, Redis: rdb, Group: order.ServiceName,
		Types: saga.EventTypes(), Handler: saga.Handle, MinIdle: *claimIdle, MaxAttempts: 20,
		Logger: log.With(logger, "component", "consumer"), Metrics: eventMetrics}).Run)
	background("idempotency key janitor", (&order.KeyJanitor{Repo: repo, Retention: *keyRetention, Interval: time.Hour,
		Logger: log.With(logger, "component", "key_janitor")}).Run)

	// Routes.
	router := httpkit.Router(logger, reg, httpMetrics, map[string]httpkit.Check{
		"db":    func(ctx context.Context) error { return db.PingContext(ctx) },
		"redis": func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
	})
	order.MakeHTTPHandler(router, order.MakeServerEndpoints(svc, tokens), logger)

	// Listen, register in Consul with the real port (-http-addr may ask for
	// port 0), and serve until SIGINT/SIGTERM; leave Consul before draining.
	return discovery.ListenAndServe(ctx, cfg, consul, httpkit.Handler(logger, router), logger)
}
