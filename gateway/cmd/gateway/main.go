// Command gateway serves Mercato's public REST API on :3000 and forwards it
// to the service instances registered in Consul.
package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/hashicorp/consul/api"
	"github.com/redis/go-redis/v9"

	"github.com/mercato-dev/mercato/gateway"
	"github.com/mercato-dev/mercato/shared/app"
	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/config"
	"github.com/mercato-dev/mercato/shared/discovery"
)

func main() { app.Main("gateway", run) }

// verifiedTokens is how many verified access tokens the gateway remembers:
// a few hundred bytes each, for as many clients signed in at once.
const verifiedTokens = 10_000

// run serves until ctx is done.
func run(ctx context.Context, args []string, logOutput io.Writer) error {
	// Configuration: flags, each with a MERCATO_* environment fallback.
	fs := app.NewFlagSet(app.Command{Name: "gateway", What: "Mercato's API gateway",
		EnvExample: "MERCATO_RATE_LIMIT", Addr: "127.0.0.1:3000"})
	var (
		ratePerMinute   = fs.Int("rate-limit", gateway.DefaultRatePerMinute, "requests per minute per client (user id, else IP), shared by all gateway instances")
		rateBurst       = fs.Int("rate-burst", gateway.DefaultRateBurst, "requests a client may send at once before the rate applies")
		webhookRate     = fs.Int("webhook-rate-limit", 0, "payment webhook requests per minute per IP, an allowance apart from -rate-limit's (0: as many as -rate-limit)")
		webhookBurst    = fs.Int("webhook-rate-burst", 0, "payment webhook requests an IP may send at once before the rate applies (0: as many as -rate-burst)")
		corsOrigins     = fs.String("cors-origins", "*", "comma-separated origins allowed by CORS")
		adminAddr       = fs.String("admin-addr", "127.0.0.1:0", "address of the admin listener: /health, /ready and /metrics, for Consul and Prometheus (port 0: any free port, registered in Consul); the public port serves /health only")
		breakerVolume   = fs.Int("breaker-volume", 0, "calls to an instance within 10 s below which its breaker never opens; 0: more than one client may send within its rate limits, retries included")
		upstreamTimeout = fs.Duration("upstream-timeout", 10*time.Second, "deadline of one forwarded request, retries included; one attempt, its answer's body included, gets half")
		trustedProxies  = fs.String("trusted-proxies", "", "comma-separated address ranges (CIDR) of the load balancers in front of the gateway: a request from one is the client's at the rightmost X-Forwarded-For address outside them; empty: the peer is the client")
	)
	cfg, err := fs.Parse(args)
	if err != nil {
		return err
	}
	// A rate of 0 would make every request a limiter error, let through
	// (the limiter fails open), and a burst of 0 would refuse every request.
	for _, f := range []struct {
		name      string
		value, at int // at: the least value allowed
	}{
		{"rate-limit", *ratePerMinute, 1}, {"rate-burst", *rateBurst, 1},
		{"webhook-rate-limit", *webhookRate, 0}, {"webhook-rate-burst", *webhookBurst, 0},
	} {
		if f.value < f.at {
			return fmt.Errorf("-%s (%s) must be at least %d, got %d", f.name, config.EnvName(f.name), f.at, f.value)
		}
	}
	// 0 would leave an attempt without a timeout (the HTTP client's) and
	// the call with discovery's default.
	if *upstreamTimeout <= 0 {
		return fmt.Errorf("-upstream-timeout (%s) must be positive, got %s", config.EnvName("upstream-timeout"), *upstreamTimeout)
	}
	trusted, err := parsePrefixes(*trustedProxies)
	if err != nil {
		return fmt.Errorf("-trusted-proxies (MERCATO_TRUSTED_PROXIES) must be comma-separated address ranges like 10.0.0.0/16: %w", err)
	}

	// Logging, metrics, Redis (the shared rate-limit state) and Consul. No
	// database; and the gateway starts without Redis, since its rate
	// limiter fails open.
	in, err := app.Start(ctx, cfg, logOutput, app.Options{
		Redis:         redis.Options{ReadTimeout: time.Second, WriteTimeout: time.Second, PoolSize: 64},
		RedisOptional: true,
	})
	if err != nil {
		return err
	}
	defer in.Close()
	logger, reg, rdb, consul := in.Logger, in.Registry, in.Redis, in.Consul

	// Auth.
	tokens, err := auth.NewTokens([]byte(cfg.JWTSecret), 15*time.Minute)
	if err != nil {
		return err
	}
	// Logged-out tokens are refused before anything is forwarded; tokens
	// that verified are remembered until they expire (the denylist is still
	// asked every time).
	tokens = tokens.WithVerifiedCache(verifiedTokens).WithDenylist(auth.NewDenylist(rdb, logger))

	// Routes.
	// The check ends with /ready's context: Leader() alone waits on a hung
	// agent for the Consul client's timeout, over 40 s.
	in.Checks["consul"] = func(ctx context.Context) error {
		_, err := consul.Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(ctx))
		return err
	}
	router := in.PublicRouter()
	gw := gateway.New(router, gateway.Config{
		RateLimit:        redis_rate.Limit{Rate: *ratePerMinute, Burst: *rateBurst, Period: time.Minute},
		WebhookRateLimit: redis_rate.Limit{Rate: cmp.Or(*webhookRate, *ratePerMinute), Burst: cmp.Or(*webhookBurst, *rateBurst), Period: time.Minute},
		// Breaker settings: the gateway's, derived from the rate limits.
		Upstream: discovery.Options{Timeout: *upstreamTimeout, RequestVolumeThreshold: *breakerVolume, Metrics: discovery.NewMetrics(reg)},
		// An attempt must time out before the whole call does, or a hung
		// instance would never count against its breaker.
		Client:         gateway.NewHTTPClient(*upstreamTimeout / 2),
		Instancer:      in.Instancer, // one per upstream service
		TrustedProxies: trusted,
	}, tokens, rdb, reg, logger)
	// Order status streams end as soon as shutdown begins, so the graceful
	// shutdown does not wait for them (their clients reconnect elsewhere).
	context.AfterFunc(ctx, gw.CloseStreams)

	// Listen, register in Consul with the real ports (-http-addr and
	// -admin-addr may ask for port 0), and serve until SIGINT/SIGTERM; leave
	// Consul before draining. CORS answers before anything else; behind a
	// trusted load balancer every request is then its client's, so that the
	// access log names the client (FromClient).
	return in.ServeWithAdmin(ctx, *adminAddr, router, gateway.CORS(strings.Split(*corsOrigins, ",")), gw.FromClient)
}

// parsePrefixes parses a comma-separated list of CIDR ranges; an address
// alone is a range of one. IPv4-mapped IPv6 forms (::ffff:10.0.0.0/104) are
// taken as the IPv4 ones they map, as the peers they are matched with are.
func parsePrefixes(list string) ([]netip.Prefix, error) {
	var prefixes []netip.Prefix
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if addr, err := netip.ParseAddr(item); err == nil {
			addr = addr.Unmap()
			prefixes = append(prefixes, netip.PrefixFrom(addr, addr.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			return nil, err
		}
		if p.Addr().Is4In6() {
			if p.Bits() < 96 {
				return nil, fmt.Errorf("%s: an IPv4-mapped range needs at least 96 bits", item)
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		prefixes = append(prefixes, p.Masked())
	}
	return prefixes, nil
}
