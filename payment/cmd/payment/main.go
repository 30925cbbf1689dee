// Command payment runs one instance of the payment service: charges through
// the built-in sandbox processor, its signed webhooks, refunds, and the
// payment side of the checkout saga. Several instances may run side by side;
// each registers itself in Consul under "payment".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/payment"
	"github.com/mercato-dev/mercato/payment/postgres"
	"github.com/mercato-dev/mercato/payment/sandbox"
	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/config"
	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/httpkit"
	"github.com/mercato-dev/mercato/shared/logging"
	"github.com/mercato-dev/mercato/shared/metrics"
	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
)

func main() {
	// SIGINT/SIGTERM cancel ctx, which drains the server and stops the
	// background loops.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case err != nil:
		fmt.Fprintln(os.Stderr, "payment:", err)
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
		cfg           config.Common
		fs            = flag.NewFlagSet("payment", flag.ContinueOnError)
		webhookURL    = fs.String("webhook-url", "http://127.0.0.1:3000/api/v1/webhooks/payments/sandbox", "where the sandbox processor posts its webhooks: the payment service's webhook route, normally through the gateway")
		webhookSecret = fs.String("webhook-secret", "", "HMAC key of the sandbox's webhooks, at least 32 bytes, the same on every instance. Prefer MERCATO_WEBHOOK_SECRET: flags show in ps")
		webhookDelay  = fs.Duration("webhook-delay", 200*time.Millisecond, "how long the sandbox processor takes before it first sends a charge's webhook")
	)
	cfg.Register(fs, payment.ServiceName, "127.0.0.1:3004")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: payment [flags]\n\nRuns one instance of Mercato's payment service. Every flag can also be set in the\nenvironment as MERCATO_<FLAG> (upper case, dashes as underscores), e.g.\nMERCATO_WEBHOOK_SECRET; a flag on the command line wins.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := config.Parse(fs, args); err != nil {
		return err
	}
	if err := cfg.Validate(true); err != nil {
		return err
	}
	if len(*webhookSecret) < payment.MinWebhookSecretBytes {
		return errors.New("-webhook-secret (MERCATO_WEBHOOK_SECRET) must be at least 32 bytes")
	}
	if u, err := url.Parse(*webhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("-webhook-url (MERCATO_WEBHOOK_URL) must be an http(s) URL, got %q", *webhookURL)
	}
	if *webhookDelay < 0 {
		return errors.New("-webhook-delay (MERCATO_WEBHOOK_DELAY) must not be negative")
	}

	// Logging and metrics.
	logger := logging.New(logOutput, cfg.Service, cfg.LogLevel)
	reg := metrics.NewRegistry()
	httpMetrics := metrics.NewHTTP(reg, cfg.Service)
	ctx, stop := context.WithCancel(ctx) // also stops the loops when run fails
	defer stop()

	// PostgreSQL, brought up to the current schema. The sandbox processor
	// gets a pool of its own, as an external processor shares no
	// connections with the service.
	startCtx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	db, err := sharedpg.Open(startCtx, cfg.DatabaseURL, sharedpg.PoolOptions{})
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	defer db.Close()
	if err := postgres.Migrate(startCtx, db); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	sandboxDB, err := sharedpg.Open(startCtx, cfg.DatabaseURL, sharedpg.PoolOptions{MaxOpen: 10, MaxIdle: 4})
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	defer sandboxDB.Close()
	if err := sandbox.Migrate(startCtx, sandboxDB); err != nil {
		return fmt.Errorf("database: %w", err)
	}

	// Redis: the event stream.
	rdb := redis.NewClient(&redis.Options{Addr: cfg.RedisAddr, DialTimeout: 2 * time.Second,
		ReadTimeout: 5 * time.Second, WriteTimeout: 2 * time.Second})
	defer rdb.Close()
	if err := rdb.Ping(startCtx).Err(); err != nil {
		return fmt.Errorf("redis at %s: %w", cfg.RedisAddr, err)
	}

	// Service, with its middlewares, charging through the sandbox.
	tokens, err := auth.NewTokens([]byte(cfg.JWTSecret), 15*time.Minute) // verifies only; the TTL is unused
	if err != nil {
		return err
	}
	repo, provider := postgres.New(db), sandbox.New(sandboxDB, *webhookDelay)
	svc, err := payment.NewService(repo, provider, payment.Options{WebhookSecret: []byte(*webhookSecret)})
	if err != nil {
		return err
	}
	paymentMetrics := payment.NewMetrics(reg)
	svc = payment.LoggingMiddleware(logger)(svc)
	svc = payment.InstrumentingMiddleware(paymentMetrics)(svc)

	// Background loops, stopped (and waited for) before run returns: the
	// outbox relay, the order.cancelled consumer, the sandbox's webhook
	// dispatcher and the recovery of provider calls left without an answer.
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
	background("order.cancelled consumer", (&events.Consumer{DB: db, Redis: rdb, Group: payment.ServiceName,
		Types: []string{events.OrderCancelled}, Handler: payment.OrderCancelledHandler(svc),
		Logger: log.With(logger, "component", "consumer"), Metrics: eventMetrics}).Run)
	background("webhook dispatcher", (&sandbox.Dispatcher{DB: sandboxDB, URL: *webhookURL,
		Secret: []byte(*webhookSecret), Client: webhookClient(),
		Logger: log.With(logger, "component", "sandbox_webhooks"),
		Deliveries: metrics.NewCounter(reg, "sandbox_webhook_deliveries_total",
			"Webhook delivery attempts of the sandbox processor, by result.", "result")}).Run)
	background("payment recovery", (&payment.Recovery{Repo: repo, Provider: provider,
		Logger: log.With(logger, "component", "payment_recovery"), Metrics: paymentMetrics}).Run)

	// Routes.
	router := httpkit.Router(logger, reg, httpMetrics, map[string]httpkit.Check{
		"db":    func(ctx context.Context) error { return db.PingContext(ctx) },
		"redis": func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
	})
	payment.MakeHTTPHandler(router, payment.MakeServerEndpoints(svc, tokens), logger)

	consul, err := discovery.NewConsulClient(cfg.ConsulAddr)
	if err != nil {
		return err
	}

	// Listen, register in Consul with the real port (-http-addr may ask for
	// port 0), and serve until SIGINT/SIGTERM; leave Consul before draining.
	return discovery.ListenAndServe(ctx, cfg, consul, httpkit.Handler(logger, router), logger)
}

// webhookClient is the sandbox processor's HTTP client: a hard timeout per
// delivery, so one stuck receiver cannot stall the dispatcher.
func webhookClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 16
	t.ResponseHeaderTimeout = 10 * time.Second
	return &http.Client{Timeout: 15 * time.Second, Transport: t}
}
