// Command product runs one instance of the product service: the catalogue,
// its cached reads, admin writes and the inventory reservations of the
// order service. Several instances may run side by side; each registers
// itself in Consul under "product".
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/product"
	"github.com/mercato-dev/mercato/product/postgres"
	"github.com/mercato-dev/mercato/shared/app"
	"github.com/mercato-dev/mercato/shared/auth"
	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
)

func main() { app.Main("product", run) }

// run serves until ctx is done. It is main without the process: tests run it
// in-process.
func run(ctx context.Context, args []string, logOutput io.Writer) error {
	// Configuration: flags, each with a MERCATO_* environment fallback.
	fs := app.NewFlagSet(app.Command{Name: product.ServiceName, What: "Mercato's product service",
		EnvExample: "MERCATO_DATABASE_URL", Addr: "127.0.0.1:3002", NeedDB: true})
	var (
		seedDemo      = fs.Bool("seed-demo", false, "load the demo catalogue (categories, 50 products, variants, stock) at start unless it was loaded before; safe when instances start together")
		cacheTTL      = fs.Duration("cache-ttl", 5*time.Minute, "how long catalogue reads stay in the Redis cache (writes invalidate them at once); 0 caches nothing here, though this instance's writes still invalidate the others' entries")
		sweepInterval = fs.Duration("sweep-interval", 5*time.Second, "how often expired reservations are released")
		lowStockEvery = fs.Duration("low-stock-interval", 15*time.Second, "how often the products low on stock are counted for the product_low_stock_products gauge")
		dbMaxConns    = fs.Int("db-max-conns", 20, "PostgreSQL connection pool size")
	)
	cfg, err := fs.Parse(args)
	if err != nil {
		return err
	}
	if *cacheTTL < 0 || *sweepInterval <= 0 || *lowStockEvery <= 0 || *dbMaxConns < 1 {
		return errors.New("-cache-ttl must not be negative, -sweep-interval, -low-stock-interval and -db-max-conns must be positive")
	}

	// Logging, metrics, PostgreSQL brought up to the current schema, Redis
	// (the event stream and the catalogue cache) and Consul. Start-up's
	// deadline also bounds the demo catalogue, hence the longer one.
	in, err := app.Start(ctx, cfg, logOutput, app.Options{
		StartTimeout: 30 * time.Second,
		Migrate:      postgres.Schema.Migrate,
		Pool:         sharedpg.PoolOptions{MaxOpen: *dbMaxConns, MaxIdle: *dbMaxConns},
		Redis:        redis.Options{PoolSize: 4 * *dbMaxConns},
	})
	if err != nil {
		return err
	}
	defer in.Close()
	logger, reg, db, rdb := in.Logger, in.Registry, in.DB, in.Redis

	// Service, with its middlewares: the cache innermost, so cache hits are
	// logged and measured like any call.
	m := product.NewMetrics(reg)
	svc := product.NewService(postgres.New(db), product.Options{})
	svc = product.CachingMiddleware(rdb, *cacheTTL, logger, m)(svc)
	svc = product.LoggingMiddleware(logger)(svc)
	svc = product.InstrumentingMiddleware(m)(svc)

	// Demo catalogue: once, whichever instance gets there first.
	if *seedDemo {
		if _, err := svc.SeedDemo(in.StartContext()); err != nil {
			return fmt.Errorf("demo catalogue: %w", err)
		}
	}

	// Background work, stopped (and waited for) before run returns: the
	// outbox relay publishes the events the service commits; the sweeper
	// releases expired reservations; the low-stock counter keeps
	// product_low_stock_products current.
	in.RelayOutbox()
	in.Go("reservation sweeper", (&product.Sweeper{Housekeeping: svc, Interval: *sweepInterval}).Run)
	in.Go("low-stock counter", (&product.LowStockCounter{Housekeeping: svc, Interval: *lowStockEvery}).Run)

	// Routes.
	tokens, err := auth.NewTokens([]byte(cfg.JWTSecret), 15*time.Minute) // verifies tokens; issues none
	if err != nil {
		return err
	}
	// Logged-out tokens are refused here too, not only at the gateway.
	tokens = tokens.WithDenylist(auth.NewDenylist(rdb, logger))
	router := in.Router()
	product.MakeHTTPHandler(router, product.MakeServerEndpoints(svc, tokens), logger)

	// Listen, register in Consul with the real port (-http-addr may ask for
	// port 0), and serve until SIGINT/SIGTERM; leave Consul before draining.
	return in.Serve(ctx, router)
}
