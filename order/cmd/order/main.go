// Command order runs one instance of the order service: checkout, order
// history and status, and the checkout saga's event handlers. Several
// instances may run side by side; each registers itself in Consul under
// "order" and joins the "order" consumer group.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/go-kit/log"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/order"
	"github.com/mercato-dev/mercato/order/postgres"
	"github.com/mercato-dev/mercato/payment"
	"github.com/mercato-dev/mercato/product"
	"github.com/mercato-dev/mercato/shared/app"
	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/metrics"
	"github.com/mercato-dev/mercato/shared/money"
	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
)

func main() { app.Main("order", run) }

// run serves until ctx is done. It is main without the process: tests run it
// in-process.
func run(ctx context.Context, args []string, logOutput io.Writer) error {
	// Configuration: flags, each with a MERCATO_* environment fallback.
	fs := app.NewFlagSet(app.Command{Name: order.ServiceName, What: "Mercato's order service",
		EnvExample: "MERCATO_DATABASE_URL", Addr: "127.0.0.1:3003", NeedDB: true})
	var (
		taxRate         = fs.Int("tax-rate-bps", 0, "tax on the subtotal in basis points (825 = 8.25%)")
		shippingFee     = fs.String("shipping-fee", "0.00", "flat shipping fee per order, a decimal like 4.99")
		reservationTTL  = fs.Duration("reservation-ttl", 15*time.Minute, "how long stock is held for an order's payment (10s-24h); an order still pending then is cancelled")
		keyRetention    = fs.Duration("idempotency-retention", order.MinIdempotencyRetention, "how long Idempotency-Keys of POST /orders are kept (at least 24h)")
		hashKey         = fs.Secret("idempotency-hash-key", "HMAC key of the request hashes kept with Idempotency-Keys (bodies hold card numbers): at least 32 bytes, not the JWT secret, the same on every instance")
		upstreamTimeout = fs.Duration("upstream-timeout", 5*time.Second, "deadline of one call to the product or payment service, retries included")
		claimIdle       = fs.Duration("event-claim-idle", 30*time.Second, "how long an event stays with a consumer that has not acknowledged it (failed, or crashed) before another instance takes it over")
		streamsPerUser  = fs.Int("stream-max-per-user", 5, "open order status streams (GET /orders/{id}/events) per user on this instance; the next is 429")
		streamIdle      = fs.Duration("stream-idle-timeout", 10*time.Minute, "an order status stream with nothing to send this long ends (the client reconnects with Last-Event-ID)")
		streamHeartbeat = fs.Duration("stream-heartbeat", 15*time.Second, "how often an order status stream sends a \": ping\" comment")
	)
	cfg, err := fs.Parse(args)
	if err != nil {
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
	if len(*hashKey) < order.MinRequestHashKeyBytes || *hashKey == cfg.JWTSecret {
		return errors.New("-idempotency-hash-key (MERCATO_IDEMPOTENCY_HASH_KEY) must be at least 32 bytes, and not the JWT secret")
	}
	if *upstreamTimeout <= 0 || *claimIdle <= 0 {
		return errors.New("-upstream-timeout and -event-claim-idle must be positive")
	}
	if *streamsPerUser <= 0 || *streamIdle <= 0 || *streamHeartbeat <= 0 {
		return errors.New("-stream-max-per-user, -stream-idle-timeout and -stream-heartbeat must be positive")
	}

	// Logging, metrics, PostgreSQL brought up to the current schema, Redis
	// (the event stream; the read timeout outlasts the consumer's blocking
	// reads) and Consul.
	in, err := app.Start(ctx, cfg, logOutput, app.Options{
		Migrate: postgres.Schema.Migrate,
		Pool:    sharedpg.PoolOptions{MaxOpen: 30, MaxIdle: 15},
		Redis:   redis.Options{ReadTimeout: 5 * time.Second},
	})
	if err != nil {
		return err
	}
	defer in.Close()
	logger, reg, db := in.Logger, in.Registry, in.DB
	repo := postgres.New(db)

	// Upstreams: the product and payment services, found in Consul, one
	// instancer each, behind per-instance breakers.
	upstream := discovery.Options{Timeout: *upstreamTimeout, Metrics: discovery.NewMetrics(reg)}
	inventory := order.NewInventory(product.NewClient(in.Instancer(product.ServiceName), logger, upstream))
	payments := order.NewPayments(payment.NewClient(in.Instancer(payment.ServiceName), logger, upstream))

	// Service, with its middlewares.
	tokens, err := auth.NewTokens([]byte(cfg.JWTSecret), 15*time.Minute) // issues service tokens
	if err != nil {
		return err
	}
	// Logged-out tokens are refused here too, not only at the gateway.
	tokens = tokens.WithDenylist(auth.NewDenylist(in.Redis, logger))
	svc, err := order.NewService(repo, inventory, payments, tokens, order.Options{
		RequestHashKey: []byte(*hashKey), TaxRateBasisPoints: *taxRate, ShippingFee: fee,
		ReservationTTL: *reservationTTL,
		// Keys stored before -idempotency-hash-key existed were hashed with the
		// JWT secret: it checks those, nothing new, until they are past retention.
		PreviousRequestHashKey: []byte(cfg.JWTSecret),
	})
	if err != nil {
		return err
	}
	orderMetrics := order.NewMetrics(reg)
	svc = order.LoggingMiddleware(logger)(svc)
	svc = order.InstrumentingMiddleware(orderMetrics)(svc)
	saga := order.NewSaga(repo, inventory, payments, tokens, log.With(logger, "component", "saga"), orderMetrics)

	// Background loops, stopped (and waited for) before run returns: the
	// outbox relay, the saga's consumer and the idempotency key clean-up.
	in.RelayOutbox()
	// A step that fails is retried every claim-idle interval: while the
	// product or payment service is down for as long as it takes, otherwise
	// 20 times before the event is dead-lettered. An event the payment
	// service contradicts is dead-lettered at once.
	in.Consume("saga consumer", "consumer", events.Consumer{
		Types: saga.EventTypes(), Handler: saga.Handle, MinIdle: *claimIdle, MaxAttempts: 20})
	in.Go("idempotency key janitor", repo.KeyJanitor(*keyRetention, logger).Run)

	// Live order status: each instance listens for the history table's
	// notifications (every instance's commits) and wakes its own streams.
	// The streams end as soon as shutdown begins (ctx), so the server's
	// graceful shutdown does not wait for them.
	watcher := order.NewWatcher(repo, metrics.NewGauge(reg, "order_status_streams_open",
		"Order status streams (GET /orders/{id}/events) open on this instance."),
		order.WatchOptions{MaxPerUser: *streamsPerUser, IdleTimeout: *streamIdle})
	context.AfterFunc(ctx, watcher.Close)
	in.Go("status listener", func(ctx context.Context) error {
		return postgres.Listen(ctx, cfg.DatabaseURL, watcher, log.With(logger, "component", "status_listener"))
	})

	// Routes.
	router := in.Router()
	order.MakeHTTPHandler(router, order.MakeServerEndpoints(svc, tokens), logger)
	order.MakeEventsHandler(router, watcher, tokens, logger, order.StreamOptions{Heartbeat: *streamHeartbeat})

	// Listen, register in Consul with the real port (-http-addr may ask for
	// port 0), and serve until SIGINT/SIGTERM; leave Consul before draining.
	return in.Serve(ctx, router)
}
