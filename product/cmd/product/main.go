// Command product runs one instance of the product service: the catalogue,
// its cached reads, admin writes and the inventory reservations of the
// order service. Several instances may run side by side; each registers
// itself in Consul under "product".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/product"
	"github.com/mercato-dev/mercato/product/postgres"
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
	// SIGINT/SIGTERM cancel ctx, which drains the server and stops the relay
	// and the sweeper.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case err != nil:
		fmt.Fprintln(os.Stderr, "product:", err)
		os.Exit(1)
	}
}

// startTimeout bounds start-up's calls to dependencies (connect, migrate,
// ping, demo data), so an unreachable one fails the start instead of
// hanging it.
const startTimeout = 30 * time.Second

// run serves until ctx is done. It is main without the process: tests run it
// in-process.
func run(ctx context.Context, args []string, logOutput io.Writer) error {
	// Configuration: flags, each with a MERCATO_* environment fallback.
	var (
		cfg           config.Common
		fs            = flag.NewFlagSet("product", flag.ContinueOnError)
		seedDemo      = fs.Bool("seed-demo", false, "load the demo catalogue (categories, 50 products, variants, stock) at start unless it was loaded before; safe when instances start together")
		cacheTTL      = fs.Duration("cache-ttl", 5*time.Minute, "how long catalogue reads stay in the Redis cache (writes invalidate them at once); 0 disables the cache")
		sweepInterval = fs.Duration("sweep-interval", 5*time.Second, "how often expired reservations are released")
		dbMaxConns    = fs.Int("db-max-conns", 20, "PostgreSQL connection pool size")
	)
	cfg.Register(fs, product.ServiceName, "127.0.0.1:3002")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: product [flags]\n\nRuns one instance of Mercato's product service. Every flag can also be set in the\nenvironment as MERCATO_<FLAG> (upper case, dashes as underscores), e.g.\nMERCATO_DATABASE_URL; a flag on the command line wins.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := config.Parse(fs, args); err != nil {
		return err
	}
	if err := cfg.Validate(true); err != nil {
		return err
	}
	if *cacheTTL < 0 || *sweepInterval <= 0 || *dbMaxConns < 1 {
		return errors.New("-cache-ttl must not be negative, -sweep-interval and -db-max-conns must be positive")
	}

	// Logging and metrics.
	logger := logging.New(logOutput, cfg.Service, cfg.LogLevel)
	reg := metrics.NewRegistry()
	httpMetrics := metrics.NewHTTP(reg, cfg.Service)
	ctx, stop := context.WithCancel(ctx) // also stops the background work when run fails
	defer stop()

	// PostgreSQL, brought up to the current schema.
	startCtx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	db, err := sharedpg.Open(startCtx, cfg.DatabaseURL, sharedpg.PoolOptions{MaxOpen: *dbMaxConns, MaxIdle: *dbMaxConns})
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	defer db.Close()
	if err := postgres.Migrate(startCtx, db); err != nil {
		return fmt.Errorf("database: %w", err)
	}

	// Redis: the event stream and the catalogue cache.
	rdb := redis.NewClient(&redis.Options{Addr: cfg.RedisAddr, DialTimeout: 2 * time.Second,
		ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, PoolSize: 4 * *dbMaxConns})
	defer rdb.Close()
	if err := rdb.Ping(startCtx).Err(); err != nil {
		return fmt.Errorf("redis at %s: %w", cfg.RedisAddr, err)
	}

	// Service, with its middlewares: the cache innermost, so cache hits are
	// logged and measured like any call.
	m := product.NewMetrics(reg)
	svc := product.NewService(postgres.New(db), product.Options{})
	if *cacheTTL > 0 {
		svc = product.CachingMiddleware(rdb, *cacheTTL, logger, m)(svc)
	}
	svc = product.LoggingMiddleware(logger)(svc)
	svc = product.InstrumentingMiddleware(m)(svc)

	// Demo catalogue: once, whichever instance gets there first.
	if *seedDemo {
		if _, err := svc.SeedDemo(startCtx); err != nil {
			return fmt.Errorf("demo catalogue: %w", err)
		}
	}

	// Background work, stopped with ctx: the outbox relay publishes the
	// events the service commits; the sweeper releases expired reservations.
	relay := &events.Relay{DB: db, Redis: rdb, Logger: log.With(logger, "component", "outbox_relay"),
		Metrics: events.NewMetrics(reg, cfg.Service)}
	relayDone, sweeperDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(relayDone)
		if err := relay.Run(ctx); err != nil {
			level.Error(logger).Log("msg", "outbox relay stopped", "err", err)
		}
	}()
	sweeper := &product.Sweeper{Service: svc, Interval: *sweepInterval}
	go func() {
		defer close(sweeperDone)
		if err := sweeper.Run(ctx); err != nil {
			level.Error(logger).Log("msg", "reservation sweeper stopped", "err", err)
		}
	}()
	defer func() { stop(); <-relayDone; <-sweeperDone }()

	// Routes.
	tokens, err := auth.NewTokens([]byte(cfg.JWTSecret), 15*time.Minute) // verifies tokens; issues none
	if err != nil {
		return err
	}
	router := httpkit.Router(logger, reg, httpMetrics, map[string]httpkit.Check{
		"db":    func(ctx context.Context) error { return db.PingContext(ctx) },
		"redis": func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
	})
	product.MakeHTTPHandler(router, product.MakeServerEndpoints(svc, tokens), logger)

	consul, err := discovery.NewConsulClient(cfg.ConsulAddr)
	if err != nil {
		return err
	}

	// Listen, register in Consul with the real port (-http-addr may ask for
	// port 0), and serve until SIGINT/SIGTERM; leave Consul before draining.
	return discovery.ListenAndServe(ctx, cfg, consul, httpkit.Handler(logger, router), logger)
}
