// Command gateway serves Mercato's public REST API on :3000 and forwards it
// to the service instances registered in Consul.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/go-kit/kit/sd"
	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/gateway"
	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/config"
	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/httpkit"
	"github.com/mercato-dev/mercato/shared/logging"
	"github.com/mercato-dev/mercato/shared/metrics"
)

func main() {
	// SIGINT/SIGTERM cancel ctx, which drains the server.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case err != nil:
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

// run serves until ctx is done.
func run(ctx context.Context, args []string, logOutput io.Writer) error {
	// Configuration: flags, each with a MERCATO_* environment fallback.
	var (
		cfg             config.Common
		fs              = flag.NewFlagSet("gateway", flag.ContinueOnError)
		ratePerMinute   = fs.Int("rate-limit", 600, "requests per minute per client (user id, else IP), shared by all gateway instances")
		rateBurst       = fs.Int("rate-burst", 100, "requests a client may send at once before the rate applies")
		corsOrigins     = fs.String("cors-origins", "*", "comma-separated origins allowed by CORS")
		upstreamTimeout = fs.Duration("upstream-timeout", 10*time.Second, "deadline of one forwarded request, retries included; one attempt, its answer's body included, gets half")
	)
	cfg.Register(fs, "gateway", "127.0.0.1:3000")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: gateway [flags]\n\nRuns one instance of Mercato's API gateway. Every flag can also be set in the\nenvironment as MERCATO_<FLAG> (upper case, dashes as underscores), e.g.\nMERCATO_RATE_LIMIT; a flag on the command line wins.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := config.Parse(fs, args); err != nil {
		return err
	}
	if err := cfg.Validate(false); err != nil {
		return err
	}

	// Logging and metrics.
	logger := logging.New(logOutput, cfg.Service, cfg.LogLevel)
	reg := metrics.NewRegistry()
	httpMetrics := metrics.NewHTTP(reg, cfg.Service)

	// Redis: the shared rate-limit state.
	rdb := redis.NewClient(&redis.Options{Addr: cfg.RedisAddr, DialTimeout: 2 * time.Second,
		ReadTimeout: time.Second, WriteTimeout: time.Second, PoolSize: 64})
	defer rdb.Close()

	// Auth.
	tokens, err := auth.NewTokens([]byte(cfg.JWTSecret), 15*time.Minute)
	if err != nil {
		return err
	}

	// Consul: one instancer per upstream service.
	consul, err := discovery.NewConsulClient(cfg.ConsulAddr)
	if err != nil {
		return err
	}
	var instancers []sd.Instancer
	instancer := func(service string) sd.Instancer {
		i := discovery.NewInstancer(consul, service, logger)
		instancers = append(instancers, i)
		return i
	}

	// Routes.
	router := httpkit.Router(logger, reg, httpMetrics, map[string]httpkit.Check{
		"redis":  func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
		"consul": func(context.Context) error { _, err := consul.Status().Leader(); return err },
	})
	gateway.New(router, gateway.Config{
		RateLimit: redis_rate.Limit{Rate: *ratePerMinute, Burst: *rateBurst, Period: time.Minute},
		Upstream:  discovery.Options{Timeout: *upstreamTimeout, Metrics: discovery.NewMetrics(reg)},
		// An attempt must time out before the whole call does, or a hung
		// instance would never count against its breaker.
		Client:    gateway.NewHTTPClient(*upstreamTimeout / 2),
		Instancer: instancer,
	}, tokens, rdb, reg, logger)
	handler := gateway.CORS(strings.Split(*corsOrigins, ","))(httpkit.Handler(logger, router))

	// Listen, register in Consul with the real port (-http-addr may ask for
	// port 0), and serve until SIGINT/SIGTERM; leave Consul before draining.
	err = discovery.ListenAndServe(ctx, cfg, consul, handler, logger)
	for _, i := range instancers {
		i.Stop()
	}
	return err
}
