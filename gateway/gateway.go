package gateway

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/afex/hystrix-go/hystrix"
	"github.com/go-kit/kit/sd"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/go-redis/redis_rate/v10"
	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/cors"

	"github.com/mercato-dev/mercato/shared/auth"
	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/httpkit"
	"github.com/mercato-dev/mercato/shared/logging"
	"github.com/mercato-dev/mercato/shared/metrics"
)

// Config is what the gateway needs besides its dependencies.
type Config struct {
	RateLimit redis_rate.Limit // per client (ClientRate)
	// WebhookRateLimit is per address, for the payment webhooks
	// (WebhookRate); RateLimit when zero.
	WebhookRateLimit redis_rate.Limit
	// Upstream is the retries, timeouts and breaker settings. Breaker
	// settings left zero are the gateway's (see breakerOptions).
	Upstream  discovery.Options
	Client    *http.Client // to the instances; its timeout bounds an attempt, answer body included
	Routes    []Route      // Routes when nil
	Instancer func(service string) sd.Instancer
	// TrustedProxies are the load balancers in front of the gateway (the
	// AWS overlay's ALB: the VPC's range). A request from one of them is
	// the client's at the rightmost X-Forwarded-For address that is not
	// one of them (fromClient). None: the peer is the client.
	TrustedProxies []netip.Prefix
}

// Gateway forwards the public API to the services.
type Gateway struct {
	tokens  *auth.Tokens
	limiter *rateLimiter
	proxies map[string]http.Handler           // per upstream service
	streams map[string]*httputil.ReverseProxy // per upstream service with Route.Streams
	trusted []netip.Prefix                    // Config.TrustedProxies
	// streamsOpen ends at CloseStreams, and every stream with it.
	streamsOpen  context.Context
	closeStreams context.CancelFunc
	logger       log.Logger
}

// New mounts the gateway's routes on router: one round-robin, retrying,
// breaker-guarded endpoint per upstream service, built on one instancer per
// service shared by all its routes, whose answers are streamed to the client
// (see newProxy); and the API reference and the storefront the gateway
// serves itself (mountReference, mountStorefront).
func New(router *mux.Router, cfg Config, tokens *auth.Tokens, rdb *redis.Client, reg prometheus.Registerer, logger log.Logger) *Gateway {
	routes := cfg.Routes
	if routes == nil {
		routes = Routes
	}
	limits := map[RateClass]redis_rate.Limit{ClientRate: cfg.RateLimit, WebhookRate: cfg.WebhookRateLimit}
	if limits[WebhookRate].IsZero() {
		limits[WebhookRate] = cfg.RateLimit
	}
	g := &Gateway{
		tokens: tokens,
		limiter: newRateLimiter(rdb, limits, logger,
			metrics.NewCounter(reg, "gateway_rate_limited_total", "Requests refused with 429.")),
		proxies: map[string]http.Handler{},
		trusted: cfg.TrustedProxies,
		logger:  logger,
	}
	g.streamsOpen, g.closeStreams = context.WithCancel(context.Background())
	factory := newForwardFactory(cfg.Client)
	upstream := breakerOptions(cfg.Upstream, limits)
	for _, name := range upstreams(routes) {
		forward := discovery.NewEndpoint(cfg.Instancer(name), name, factory, logger, upstream)
		g.proxies[name] = g.newProxy(name, forward)
	}
	g.streams = g.newStreamProxies(routes, cfg, upstream)
	// mux answers a path that is not clean (//, /./, /../) with a 301 to the
	// cleaned path, an empty body, in Router.ServeHTTP, before any
	// middleware: the request went unlogged and uncounted, and clients that
	// follow the 301 turn a POST into a GET. Left as it is, such a path
	// matches no route (exact paths are clean; isClean keeps it off the API's
	// prefixes), so it is the router's 404, logged and counted like any
	// unknown path; and it is never forwarded, where the service's own router
	// would clean /api/v1/products/../users/me into a route the gateway did
	// not authorise (GET /api/v1/products/* is public).
	router.SkipClean(true)
	for _, rt := range routes {
		h := g.handler(rt)
		// A stream has a route of its own, before its prefix's, so that
		// its requests are counted and timed apart (route
		// "/api/v1/orders/{id}/events"): one lasts as long as its client
		// watches, and the latency SLO leaves it out by that route.
		for _, p := range rt.Streams {
			method, path, _ := strings.Cut(p, " ")
			router.Path(strings.ReplaceAll(path, "*", "{id}")).MatcherFunc(func(r *http.Request, m *mux.RouteMatch) bool {
				return r.Method == method && isClean(r, m)
			}).Handler(h)
		}
		router.Path(rt.Prefix).Handler(h)
		router.PathPrefix(rt.Prefix + "/").MatcherFunc(isClean).Handler(h)
	}
	g.mountReference(router)  // /docs and /api/v1/openapi.{json,yaml}
	g.mountStorefront(router) // / and /assets/<version>/...
	return g
}

// breakerOptions fills the breaker settings opts leaves zero so that one
// client inside its rate limit cannot make a service unavailable (what
// counts as an instance failure at all is discovery.CountsAgainstInstance:
// transport errors, timeouts and 502-504, never a 500):
//   - the volume threshold is above what one client may send in hystrix's
//     window in any class, every request attempted MaxAttempts times
//     (discovery.Options.AboveOneClient): 601 calls per instance in 10 s
//     with the default limit of 600 a minute and a burst of 100;
//   - the error percentage stays at 50: past that volume, most calls must
//     fail, so a client failing on purpose needs as many failing calls as
//     everyone else has successful ones;
//   - the sleep window is 2 s, Consul's check interval: a breaker that
//     opened costs the instance 2 s of traffic before one call tests it, and
//     by then Consul has taken an instance that is really down out of
//     rotation.
func breakerOptions(opts discovery.Options, limits map[RateClass]redis_rate.Limit) discovery.Options {
	most := 0
	for _, l := range limits {
		most = max(most, perWindow(l, discovery.BreakerWindow))
	}
	if opts.ErrorPercentThreshold == 0 {
		opts.ErrorPercentThreshold = 50
	}
	if opts.SleepWindow == 0 {
		opts.SleepWindow = 2 * time.Second
	}
	if opts.RequestVolumeThreshold == 0 {
		opts = opts.AboveOneClient(most)
	}
	return opts
}

func (g *Gateway) handler(rt Route) http.Handler {
	proxy := g.proxies[rt.Upstream]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = g.fromClient(r)
		ctx := r.Context()
		// A request with a bad token draws on its address's allowance, so
		// forged tokens are rate limited like anonymous requests.
		id, at, authenticated, err := g.identify(r)
		if authenticated && err == nil && !isRead(r) {
			err = g.tokens.Revoked(ctx, at)
		}
		key := clientKey(r, id, authenticated && err == nil)
		if rt.Rate != ClientRate {
			key = addressKey(r)
		}
		if !g.limiter.allow(ctx, w, rt.Rate, key) {
			return
		}
		if err != nil {
			httpkit.WriteError(w, httpkit.ToError(ctx, g.logger, err))
			return
		}
		if !authenticated && !rt.isPublic(r) {
			httpkit.WriteError(w, httpkit.ToError(ctx, g.logger, auth.ErrUnauthenticated))
			return
		}
		if authenticated && isRead(r) {
			ctx = g.checkRevocation(ctx, at) // awaited before the answer is relayed
			r = r.WithContext(ctx)
		}
		var body []byte
		if r.Body != http.NoBody { // a GET's: nothing to read
			body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, httpkit.MaxBodyBytes))
			if err != nil {
				httpkit.WriteError(w, g.bodyError(ctx, err))
				return
			}
		}
		if !matches(rt.Idempotent, r) {
			r.Header.Del(discovery.IdempotencyKeyHeader) // see Route.Idempotent
		}
		relay, stream := proxy, rt.isStream(r)
		if stream {
			relay = g.streams[rt.Upstream]
			prepareStream(w, r)
			ctx, cancel := context.WithCancelCause(ctx)
			defer context.AfterFunc(g.streamsOpen, func() { cancel(errStreamsClosed) })()
			defer cancel(nil)
			r = r.WithContext(ctx)
		}
		relayed := false
		defer func() {
			if !relayed && stream && r.Context().Err() != nil {
				// The stream ended because its client went away or the
				// gateway is shutting down (CloseStreams), as streams do:
				// ReverseProxy's abort is no failure, the request is logged
				// and counted, and the client sees the stream end.
				if p := recover(); p != nil && p != http.ErrAbortHandler {
					panic(p)
				}
				return
			}
			if !relayed {
				// ReverseProxy panics with http.ErrAbortHandler when the
				// answer cannot be copied whole, so that the server aborts the
				// connection; the request's own line (httpkit.Observe) has
				// only the status that was sent.
				level.Warn(log.With(logging.WithRequest(ctx, g.logger), "upstream", rt.Upstream)).Log(
					"msg", "forwarding aborted midway: the upstream's answer broke off or the client went away")
			}
		}()
		relay.ServeHTTP(w, withBufferedBody(r, body))
		relayed = true
	})
}

// fromClient is r as its client sent it when a trusted proxy (a load
// balancer, Config.TrustedProxies) passed it on: its RemoteAddr is the
// client's, the rightmost X-Forwarded-For address that is no trusted proxy
// (those to its left are the client's own claims, which anyone can forge),
// and its X-Forwarded-For is what came before that address. So the rate
// limits count each client, not the load balancer's few addresses, and the
// X-Forwarded-For sent on ends with the client, where the user service's
// login throttle reads it. Any other request is r as it is.
//
// A trusted proxy's X-Forwarded-Proto, when it is http or https alone, is
// kept in the context for newProxy to pass on (forwardedProto): TLS ends
// at the load balancer, so the gateway's own connection is always http.
//
// Applied twice, it gives what it gave once: the address it leaves is no
// trusted proxy's, or it left the request as it was.
func (g *Gateway) fromClient(r *http.Request) *http.Request {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if len(g.trusted) == 0 || err != nil || !g.isTrusted(peer.Addr()) {
		return r
	}
	if proto := r.Header.Values("X-Forwarded-Proto"); len(proto) == 1 && (proto[0] == "http" || proto[0] == "https") {
		r = r.WithContext(context.WithValue(r.Context(), forwardedProtoKey{}, proto[0]))
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		for _, hop := range strings.Split(v, ",") {
			hops = append(hops, strings.TrimSpace(hop))
		}
	}
	for i := len(hops) - 1; i >= 0; i-- {
		client, err := netip.ParseAddr(hops[i])
		if err != nil {
			return r // no proxy wrote this: nothing to the left can be told apart
		}
		if g.isTrusted(client) {
			continue
		}
		r = r.Clone(r.Context())
		r.RemoteAddr = netip.AddrPortFrom(client.Unmap(), peer.Port()).String()
		if i == 0 {
			r.Header.Del("X-Forwarded-For")
		} else {
			r.Header.Set("X-Forwarded-For", strings.Join(hops[:i], ", "))
		}
		return r
	}
	return r
}

// FromClient is middleware around the gateway's router (cmd/gateway serves
// the router behind it, inside CORS): every request is its client's (fromClient) before
// anything reads its address, the access log above all, which
// httpkit.Observe writes around the route's handler and the router's 404,
// and which otherwise named the load balancer. The handlers apply
// fromClient again, which changes nothing here, so that the rate limits do
// not depend on this wrapper.
func (g *Gateway) FromClient(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, g.fromClient(r))
	})
}

type forwardedProtoKey struct{}

// forwardedProto is the scheme the client used by its trusted proxy's word
// (fromClient), if the request came through one that said.
func forwardedProto(ctx context.Context) (string, bool) {
	proto, ok := ctx.Value(forwardedProtoKey{}).(string)
	return proto, ok
}

func (g *Gateway) isTrusted(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range g.trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// CloseStreams ends every open stream (GET /api/v1/orders/{id}/events),
// for the gateway's shutdown: a stream never goes idle, so the server's
// graceful shutdown would wait for its whole drain timeout and then fail.
// Each client sees its stream end and reconnects, with Last-Event-ID, to
// another gateway instance. Requests that are not streams are not touched.
func (g *Gateway) CloseStreams() { g.closeStreams() }

// identify verifies the bearer token, if any (auth.Tokens.VerifyAccess:
// signature and expiry; the handler asks the denylist of revoked tokens,
// see revocation.go). A token that is present but bad is refused even on
// public routes: the client believes it is signed in.
func (g *Gateway) identify(r *http.Request) (auth.Identity, auth.AccessToken, bool, error) {
	tok := auth.BearerToken(r.Header)
	if tok == "" {
		return auth.Identity{}, auth.AccessToken{}, false, nil
	}
	id, at, err := g.tokens.VerifyAccess(tok)
	if err != nil {
		return auth.Identity{}, auth.AccessToken{}, false, err
	}
	return id, at, true, nil
}

// unavailableRetryAfter is the Retry-After of the gateway's 503s: the
// breakers' sleep window and Consul's check interval, after which another
// instance, or this one back, is tried.
const unavailableRetryAfter = 2

// unavailable is the 503 of an upstream that cannot serve now, with when
// to try again.
func unavailable(upstream string) *httpkit.Error {
	e := httpkit.Unavailable("the " + upstream + " service is unavailable; retry later")
	e.RetryAfter = unavailableRetryAfter
	return e
}

// upstreamError tells the client what went wrong upstream without internals.
func (g *Gateway) upstreamError(ctx context.Context, upstream string, err error) *httpkit.Error {
	var upErr *discovery.UpstreamError
	logger := log.With(logging.WithRequest(ctx, g.logger), "upstream", upstream, "err", err)
	switch {
	case errors.Is(context.Cause(ctx), errStreamsClosed):
		// A stream the gateway's shutdown ended before its answer came:
		// its client is still there, and reconnects to another gateway.
		level.Info(logger).Log("msg", "stream refused: the gateway is shutting down")
		return unavailable(upstream)
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		// The client went away; nobody reads this answer.
		return httpkit.ClientClosed()
	case errors.Is(err, discovery.ErrNoInstances), errors.Is(err, syscall.ECONNREFUSED):
		level.Warn(logger).Log("msg", "no healthy instance")
		return unavailable(upstream)
	case errors.Is(err, hystrix.ErrCircuitOpen), errors.Is(err, hystrix.ErrMaxConcurrency):
		level.Warn(logger).Log("msg", "every instance's breaker is open")
		return unavailable(upstream)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, hystrix.ErrTimeout), isTimeout(err):
		level.Warn(logger).Log("msg", "upstream timed out")
		return httpkit.NewError(http.StatusGatewayTimeout, "upstream_timeout", "the "+upstream+" service did not answer in time")
	case errors.As(err, &upErr) && upErr.StatusCode == http.StatusServiceUnavailable:
		// The instance is up but cannot serve now (a dependency of its own
		// is down): say so, rather than blame it.
		level.Warn(logger).Log("msg", "upstream unavailable")
		return unavailable(upstream)
	case errors.As(err, &upErr):
		level.Error(logger).Log("msg", "upstream failed")
		return httpkit.NewError(http.StatusBadGateway, "upstream_error", "the "+upstream+" service failed")
	default:
		level.Error(logger).Log("msg", "upstream unreachable")
		return httpkit.NewError(http.StatusBadGateway, "upstream_unreachable", "the "+upstream+" service could not be reached")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// CORS lets browser clients on origins call the API: preflights are answered
// here, before authentication and rate limiting, and the headers a client
// needs to read (request id, rate-limit state) are exposed. Last-Event-ID
// is what a client resuming an order status stream sends (stream.go).
func CORS(origins []string) func(http.Handler) http.Handler {
	return cors.New(cors.Options{
		AllowedOrigins: origins,
		AllowedMethods: []string{"GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"},
		AllowedHeaders: []string{"Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID", "X-Request-ID"},
		ExposedHeaders: []string{"X-Request-ID", "Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "Location"},
		MaxAge:         600,
	}).Handler
}

// NewHTTPClient returns the client the gateway reaches instances with: a
// hard timeout, which also bounds the streaming of an answer's body to the
// client, and a transport sized for many concurrent requests to few hosts
// that keeps its connections (256 idle per instance, for 90 s).
func NewHTTPClient(timeout time.Duration) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 1000
	t.MaxIdleConnsPerHost = 256
	t.IdleConnTimeout = 90 * time.Second
	t.ResponseHeaderTimeout = timeout
	// The services answer uncompressed over loopback or the cluster's
	// network; asking for gzip would only make the gateway inflate it.
	t.DisableCompression = true
	return &http.Client{Timeout: timeout, Transport: t}
}
