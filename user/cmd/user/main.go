// Command user runs one instance of the user service: registration, login
// and tokens, profiles and addresses. Several instances may run side by side;
// each registers itself in Consul under "user".
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

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/config"
	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/httpkit"
	"github.com/mercato-dev/mercato/shared/logging"
	"github.com/mercato-dev/mercato/shared/metrics"
	sharedpg "github.com/mercato-dev/mercato/shared/postgres"
	"github.com/mercato-dev/mercato/user"
	"github.com/mercato-dev/mercato/user/postgres"
)

func main() {
	// SIGINT/SIGTERM cancel ctx, which drains the server and stops the relay.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case err != nil:
		fmt.Fprintln(os.Stderr, "user:", err)
		os.Exit(1)
	}
}

// startTimeout bounds start-up's calls to dependencies (connect, migrate,
// ping, admin bootstrap), so an unreachable one fails the start instead of
// hanging it.
const startTimeout = 15 * time.Second

// run serves until ctx is done. It is main without the process: tests run it
// in-process.
func run(ctx context.Context, args []string, logOutput io.Writer) error {
	// Configuration: flags, each with a MERCATO_* environment fallback.
	var (
		cfg             config.Common
		fs              = flag.NewFlagSet("user", flag.ContinueOnError)
		adminEmail      = fs.String("admin-email", "", "email of the admin account ensured at start (with -admin-password)")
		adminPassword   = fs.String("admin-password", "", "password of that admin account (8-72 bytes); it replaces the account's password if it differs. Prefer MERCATO_ADMIN_PASSWORD: flags show in ps")
		accessTokenTTL  = fs.Duration("access-token-ttl", 15*time.Minute, "lifetime of access tokens (JWT)")
		refreshTokenTTL = fs.Duration("refresh-token-ttl", 720*time.Hour, "lifetime of refresh tokens")
		bcryptCost      = fs.Int("bcrypt-cost", 10, "bcrypt cost of password hashes (4-31); 10 takes about 60 ms, 12 about 230 ms")
	)
	cfg.Register(fs, user.ServiceName, "127.0.0.1:3001")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: user [flags]\n\nRuns one instance of Mercato's user service. Every flag can also be set in the\nenvironment as MERCATO_<FLAG> (upper case, dashes as underscores), e.g.\nMERCATO_DATABASE_URL; a flag on the command line wins.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := config.Parse(fs, args); err != nil {
		return err
	}
	if err := cfg.Validate(true); err != nil {
		return err
	}
	if (*adminEmail == "") != (*adminPassword == "") {
		return errors.New("-admin-email and -admin-password (MERCATO_ADMIN_EMAIL, MERCATO_ADMIN_PASSWORD) go together: set both or neither")
	}

	// Logging and metrics.
	logger := logging.New(logOutput, cfg.Service, cfg.LogLevel)
	reg := metrics.NewRegistry()
	httpMetrics := metrics.NewHTTP(reg, cfg.Service)
	ctx, stop := context.WithCancel(ctx) // also stops the relay when run fails
	defer stop()

	// PostgreSQL, brought up to the current schema.
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

	// Redis: the event stream.
	rdb := redis.NewClient(&redis.Options{Addr: cfg.RedisAddr, DialTimeout: 2 * time.Second,
		ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second})
	defer rdb.Close()
	if err := rdb.Ping(startCtx).Err(); err != nil {
		return fmt.Errorf("redis at %s: %w", cfg.RedisAddr, err)
	}

	// Outbox relay: publishes the events the service commits.
	relay := &events.Relay{DB: db, Redis: rdb, Logger: log.With(logger, "component", "outbox_relay"),
		Metrics: events.NewMetrics(reg, cfg.Service)}
	relayDone := make(chan struct{})
	go func() {
		defer close(relayDone)
		if err := relay.Run(ctx); err != nil {
			level.Error(logger).Log("msg", "outbox relay stopped", "err", err)
		}
	}()
	defer func() { stop(); <-relayDone }()

	// Service, with its middlewares.
	tokens, err := auth.NewTokens([]byte(cfg.JWTSecret), *accessTokenTTL)
	if err != nil {
		return err
	}
	svc, err := user.NewService(postgres.New(db), tokens, user.Options{BcryptCost: *bcryptCost, RefreshTokenTTL: *refreshTokenTTL})
	if err != nil {
		return err
	}
	svc = user.LoggingMiddleware(logger)(svc)
	svc = user.InstrumentingMiddleware(user.NewMetrics(reg))(svc)

	// Bootstrap admin: idempotent, and safe when instances start together.
	if *adminEmail != "" {
		if err := svc.EnsureAdmin(startCtx, *adminEmail, *adminPassword); err != nil {
			return fmt.Errorf("ensure admin: %w", err)
		}
	}

	// Routes.
	router := httpkit.Router(logger, reg, httpMetrics, map[string]httpkit.Check{
		"db":    func(ctx context.Context) error { return db.PingContext(ctx) },
		"redis": func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
	})
	user.MakeHTTPHandler(router, user.MakeServerEndpoints(svc, tokens), logger)

	consul, err := discovery.NewConsulClient(cfg.ConsulAddr)
	if err != nil {
		return err
	}

	// Listen, register in Consul with the real port (-http-addr may ask for
	// port 0), and serve until SIGINT/SIGTERM; leave Consul before draining.
	return discovery.ListenAndServe(ctx, cfg, consul, httpkit.Handler(logger, router), logger)
}
