package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-kit/kit/sd"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"github.com/hashicorp/consul/api"
	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/shared/config"
	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/events"
	"github.com/mercato-dev/mercato/shared/httpkit"
	"github.com/mercato-dev/mercato/shared/logging"
	"github.com/mercato-dev/mercato/shared/metrics"
	"github.com/mercato-dev/mercato/shared/postgres"
	"github.com/mercato-dev/mercato/shared/tracing"
	"github.com/mercato-dev/mercato/shared/wait"
)

// DefaultStartTimeout is Options.StartTimeout when it is zero.
const DefaultStartTimeout = 15 * time.Second

// Options says what Start opens for a service beyond what every instance
// has.
type Options struct {
	// StartTimeout bounds start-up's calls to dependencies (connect,
	// migrate, ping, and whatever the caller bounds with StartContext), so
	// an unreachable one fails the start instead of hanging it
	// (DefaultStartTimeout). Until then a database or Redis that refuses
	// is asked again every second.
	StartTimeout time.Duration

	// Migrate brings the service's database to its current schema. Nil
	// means the service has no database (the gateway): Start opens none,
	// and DB is nil.
	Migrate func(context.Context, *sqlx.DB) error
	// Pool sizes the database's connection pool.
	Pool postgres.PoolOptions

	// Redis tunes the Redis client; Addr comes from the configuration.
	// Zero timeouts take 2s (dial, read and write; see RedisDefaults): a
	// service whose event consumers block on the stream raises ReadTimeout
	// above their Block.
	Redis redis.Options
	// RedisOptional starts the instance without waiting for Redis to answer
	// (the gateway, whose rate limiter fails open). Otherwise Start pings it
	// and fails when it does not answer.
	RedisOptional bool
}

// Instance is what one running service instance stands on, from Start. Close
// releases it.
type Instance struct {
	Logger   log.Logger
	Registry *prometheus.Registry
	DB       *sqlx.DB // nil without Options.Migrate
	Redis    *redis.Client
	Consul   *api.Client
	// Tracing starts the traces of the instance's requests and events;
	// a no-op without -otlp-endpoint (package tracing).
	Tracing *tracing.Provider
	// Checks are the readiness checks /ready runs: "db" (with a database)
	// and "redis". A service adds its own before calling Router.
	Checks map[string]httpkit.Check

	cfg config.Common
	// applicationName is the application_name of the instance's database
	// connections: the service and an id of the instance ("order-1a2b3c4d"),
	// for pg_stat_activity and the outbox relay's wake-ups.
	applicationName string
	httpMetrics     *metrics.HTTP
	events          *events.Metrics // from eventMetrics, once needed
	startCtx        context.Context
	cancelStart     context.CancelFunc
	loopCtx         context.Context
	stopLoops       context.CancelFunc
	loops           sync.WaitGroup
	closers         []func() error // in the order opened; run in reverse
}

// Start builds the instance cfg describes: its logger (writing to
// logOutput at cfg.LogLevel), its metrics registry, its database at
// cfg.DatabaseURL brought up to its schema with opts.Migrate, its Redis
// client, checked with a ping, and its Consul client. Background loops
// started with Go run until ctx is done or Close is called. When Start
// fails it closes what it opened; otherwise the caller closes the Instance.
func Start(ctx context.Context, cfg config.Common, logOutput io.Writer, opts Options) (*Instance, error) {
	reg := metrics.NewRegistry()
	in := &Instance{
		Logger:          logging.New(logOutput, cfg.Service, cfg.LogLevel),
		Registry:        reg,
		Checks:          map[string]httpkit.Check{},
		cfg:             cfg,
		applicationName: cfg.Service + "-" + uuid.NewString()[:8],
		httpMetrics:     metrics.NewHTTP(reg, cfg.Service),
	}
	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}
	in.startCtx, in.cancelStart = context.WithTimeout(ctx, timeout)
	in.loopCtx, in.stopLoops = context.WithCancel(ctx)
	if err := in.open(opts); err != nil {
		in.Close()
		return nil, err
	}
	if cfg.PprofAddr != "" {
		in.Go("pprof", func(ctx context.Context) error { return servePprof(ctx, cfg.PprofAddr) })
	}
	return in, nil
}

func (in *Instance) open(opts Options) error {
	// Tracing first, so that the closers flush the spans last.
	tp, err := tracing.New(in.startCtx, tracing.Config{Service: in.cfg.Service, Version: in.cfg.Version,
		Endpoint: in.cfg.OTLPEndpoint, SampleRatio: in.cfg.TraceSampleRatio})
	if err != nil {
		return err
	}
	in.Tracing = tp
	in.closers = append(in.closers, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return tp.Shutdown(ctx)
	})

	// PostgreSQL, brought up to the current schema.
	if opts.Migrate != nil {
		db, err := in.OpenPostgres(opts.Pool, opts.Migrate)
		if err != nil {
			return err
		}
		in.DB = db
		in.Checks["db"] = func(ctx context.Context) error { return db.PingContext(ctx) }
	}

	// Redis: the event stream, and whatever else the service keeps there.
	ro := opts.Redis
	ro.Addr = in.cfg.RedisAddr
	if ro.TLSConfig, err = in.cfg.RedisTLSConfig(); err != nil {
		return err
	}
	if in.cfg.RedisPassword != "" {
		// The service's own ACL user; without a password, no AUTH at all.
		ro.Username, ro.Password = in.cfg.RedisUsername, in.cfg.RedisPassword
	}
	RedisDefaults(&ro)
	rdb := redis.NewClient(&ro)
	rdb.AddHook(tracing.RedisHook())
	in.closers = append(in.closers, rdb.Close)
	if !opts.RedisOptional {
		ping := func(ctx context.Context) error { return rdb.Ping(ctx).Err() }
		if err := wait.Retry(in.startCtx, time.Second, ping, in.waitingFor("redis")); err != nil {
			return fmt.Errorf("redis at %s: %w", in.cfg.RedisAddr, err)
		}
	}
	in.Redis = rdb
	in.Checks["redis"] = func(ctx context.Context) error { return rdb.Ping(ctx).Err() }

	// Consul: registration, and the upstreams the service calls.
	consul, err := discovery.NewConsulClientWithToken(in.cfg.ConsulAddr, in.cfg.ConsulToken)
	if err != nil {
		return err
	}
	in.Consul = consul
	return nil
}

// waitingFor logs a failed attempt to reach dependency, which start-up
// makes again until its deadline: a new deployment's database or Redis
// may still be coming up, and an instance that exited at the first
// refusal would wait out its orchestrator's back-off between restarts.
func (in *Instance) waitingFor(dependency string) func(error) {
	return func(err error) {
		level.Warn(in.Logger).Log("msg", "waiting for "+dependency+"; asking again in 1s", "err", err)
	}
}

// RedisDefaults completes o as the services' Redis client runs: 2 s dial,
// read and write timeouts where o has none, and deadlines taken from each
// call's context (ContextTimeoutEnabled). Without those, a call bounded by
// context.WithTimeout still waited out the client's own timeouts, retried,
// on a Redis that hangs: 4 to 6 s for the login throttle and the catalogue
// cache, past the gateway's 5 s per attempt.
func RedisDefaults(o *redis.Options) {
	for _, d := range []*time.Duration{&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout} {
		if *d == 0 {
			*d = 2 * time.Second
		}
	}
	o.ContextTimeoutEnabled = true
}

// OpenPostgres opens a connection pool sized by pool on the service's
// database, brought up to the schema migrate applies, within the start-up
// deadline. Start opens the service's own with it; a service calls it for a
// second pool with migrations of its own (the payment sandbox's). Close
// closes the pool once the background loops have stopped.
func (in *Instance) OpenPostgres(pool postgres.PoolOptions, migrate func(context.Context, *sqlx.DB) error) (*sqlx.DB, error) {
	pool.ApplicationName = cmp.Or(pool.ApplicationName, in.applicationName)
	var db *sqlx.DB
	err := wait.Retry(in.startCtx, time.Second, func(ctx context.Context) (err error) {
		db, err = postgres.Open(ctx, in.cfg.DatabaseURL, pool)
		return err
	}, in.waitingFor("the database"))
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	in.closers = append(in.closers, db.Close)
	if err := migrate(in.startCtx, db); err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	return db, nil
}

// Instancer returns the one Consul instancer of upstream service (see
// discovery.NewInstancer) for all of its endpoints. Close stops it once the
// background loops, which may call the service, have stopped.
func (in *Instance) Instancer(service string) sd.Instancer {
	i := discovery.NewInstancer(in.Consul, service, in.Logger)
	in.closers = append(in.closers, func() error { i.Stop(); return nil })
	return i
}

// StartContext is done when the start-up deadline (Options.StartTimeout
// after Start was called) passes or Close is called. Bound the service's
// own start-up calls with it (bootstrap data, say).
func (in *Instance) StartContext() context.Context { return in.startCtx }

// Go runs loop in a goroutine until the instance shuts down: its context is
// cancelled when Start's is done or Close is called, and Close waits for it
// to return. An error it returns is logged as "<name> stopped"; the other
// loops and the server carry on.
func (in *Instance) Go(name string, loop func(context.Context) error) {
	in.loops.Go(func() {
		if err := loop(in.loopCtx); err != nil {
			level.Error(in.Logger).Log("msg", name+" stopped", "err", err)
		}
	})
}

// Router returns the service's router with /health, /ready (running
// Checks) and /metrics mounted, and every request traced, continuing its
// caller's trace (httpkit.Trace), and observed in the http_requests metrics
// (httpkit.Router). The service adds its routes.
func (in *Instance) Router() *mux.Router {
	return httpkit.Router(in.Logger, in.Registry, in.httpMetrics, in.Checks, httpkit.Trace(in.Tracing, false))
}

// PublicRouter is Router with /health only: for an instance whose port
// faces the internet (the gateway), which serves /ready and /metrics on an
// admin listener with ServeWithAdmin. Its requests start traces of their
// own, linked to a client's trace context rather than continuing it.
func (in *Instance) PublicRouter() *mux.Router {
	return httpkit.PublicRouter(in.Logger, in.httpMetrics, httpkit.Trace(in.Tracing, true))
}

// Serve serves router, behind outer, the first outermost (the gateway's
// CORS), and then httpkit.Handler (request ids, recovery), so that every
// answer, a CORS preflight's too, carries a request id, until
// ctx is done: discovery.ListenAndServe listens on the configured address,
// registers the instance in Consul with the real port (-http-addr may ask
// for port 0), and leaves Consul before draining on shutdown.
func (in *Instance) Serve(ctx context.Context, router *mux.Router, outer ...func(http.Handler) http.Handler) error {
	return discovery.ListenAndServe(ctx, in.cfg, in.Consul, in.handler(router, outer), in.Logger)
}

// ServeWithAdmin is Serve for a router from PublicRouter: /health, /ready
// (Checks) and /metrics are served on adminAddr too, a listener of its own
// whose port is registered in Consul, which checks it there, and by which
// Prometheus finds the instance's metrics (discovery.ListenAndServeWithAdmin).
func (in *Instance) ServeWithAdmin(ctx context.Context, adminAddr string, router *mux.Router, outer ...func(http.Handler) http.Handler) error {
	admin := &discovery.Admin{Addr: adminAddr, Handler: httpkit.Handler(in.Logger, httpkit.AdminRouter(in.Registry, in.Checks))}
	return discovery.ListenAndServeWithAdmin(ctx, in.cfg, in.Consul, in.handler(router, outer), admin, in.Logger)
}

// handler is router behind outer, the first outermost, and then
// httpkit.Handler.
func (in *Instance) handler(router *mux.Router, outer []func(http.Handler) http.Handler) http.Handler {
	var handler http.Handler = router
	for i := len(outer) - 1; i >= 0; i-- {
		handler = outer[i](handler)
	}
	return httpkit.Handler(in.Logger, handler)
}

// Close stops the background loops and waits for them, then stops the
// instancers and closes the Redis client and the database pools, so no loop
// ever runs on a closed one. It returns the errors of closing them.
func (in *Instance) Close() error {
	in.stopLoops()
	in.loops.Wait()
	var errs []error
	for i := len(in.closers) - 1; i >= 0; i-- {
		errs = append(errs, in.closers[i]())
	}
	in.cancelStart()
	return errors.Join(errs...)
}
