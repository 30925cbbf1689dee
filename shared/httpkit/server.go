package httpkit

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mercato-dev/mercato/shared/metrics"
)

// Check reports whether one dependency is reachable.
type Check func(ctx context.Context) error

// Router returns a mux router with /health (liveness), /ready (every check
// passes) and /metrics mounted, JSON 404/405 answers, and Observe applied to
// every route, inside outer (Trace, say), the first outermost, so that the
// request's log line is written inside the span outer starts. Service
// routes are added to it by the caller.
func Router(logger log.Logger, reg *prometheus.Registry, m *metrics.HTTP, ready map[string]Check, outer ...mux.MiddlewareFunc) *mux.Router {
	r := PublicRouter(logger, m, outer...)
	mountAdmin(r, reg, ready)
	return r
}

// PublicRouter is Router without /ready and /metrics, for a port that faces
// the internet (the gateway's): what they tell — every dependency's state,
// every upstream instance's address — is for operators, served by
// AdminRouter on a listener of its own.
func PublicRouter(logger log.Logger, m *metrics.HTTP, outer ...mux.MiddlewareFunc) *mux.Router {
	r := mux.NewRouter()
	chain := append(slices.Clone(outer), Observe(logger, m))
	for _, mw := range chain {
		r.Use(mw)
	}
	// mux runs no middleware for these two.
	wrap := func(h http.Handler) http.Handler {
		for i := len(chain) - 1; i >= 0; i-- {
			h = chain[i](h)
		}
		return h
	}
	r.NotFoundHandler = wrap(noRoute(r))
	r.MethodNotAllowedHandler = r.NotFoundHandler
	r.Methods(http.MethodGet).Path("/health").HandlerFunc(health)
	return r
}

// AdminRouter serves an instance's operational routes: /health, /ready and
// /metrics, with JSON 404/405 answers. Consul's check and Prometheus use it.
func AdminRouter(reg *prometheus.Registry, ready map[string]Check) *mux.Router {
	r := mux.NewRouter()
	r.NotFoundHandler = noRoute(r)
	r.MethodNotAllowedHandler = r.NotFoundHandler
	r.Methods(http.MethodGet).Path("/health").HandlerFunc(health)
	mountAdmin(r, reg, ready)
	return r
}

func mountAdmin(r *mux.Router, reg *prometheus.Registry, ready map[string]Check) {
	r.Methods(http.MethodGet).Path("/ready").Handler(readyHandler(ready))
	r.Methods(http.MethodGet).Path("/metrics").Handler(metrics.Handler(reg))
}

// noRoute answers a request that no route of router takes: 405 with the
// methods its path is served with in Allow, as RFC 9110 requires, or 404
// when there are none. It asks router itself rather than trusting which
// of its two handlers mux called: mux 1.8.1 calls the not-found one for a
// wrong method whenever a route registered later takes that method on
// another path.
func noRoute(router *mux.Router) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if allow := allowedMethods(router, r); allow != "" {
			w.Header().Set("Allow", allow)
			WriteError(w, NewError(http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed on this route"))
			return
		}
		WriteError(w, NewError(http.StatusNotFound, "not_found", "no such route"))
	}
}

// allowedMethods lists, for Allow, the methods router serves r's path with.
func allowedMethods(router *mux.Router, r *http.Request) string {
	var allow []string
	for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions} {
		probe := r.Clone(r.Context())
		probe.Method = method
		var match mux.RouteMatch
		if router.Match(probe, &match) && match.MatchErr == nil {
			allow = append(allow, method)
		}
	}
	return strings.Join(allow, ", ")
}

func health(w http.ResponseWriter, _ *http.Request) {
	WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func readyHandler(checks map[string]Check) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		// The checks run at once, each with the whole 2 s: one after
		// another, a dependency that hangs left the checks after it a
		// context already over, and they reported its deadline as their
		// own failure.
		var (
			mu           sync.Mutex
			wg           sync.WaitGroup
			status, code = map[string]string{}, http.StatusOK
		)
		for name, check := range checks {
			wg.Go(func() {
				err := check(ctx)
				mu.Lock()
				defer mu.Unlock()
				status[name] = "ok"
				if err != nil {
					status[name], code = err.Error(), http.StatusServiceUnavailable
				}
			})
		}
		wg.Wait()
		WriteJSON(w, code, map[string]any{"ready": code == http.StatusOK, "checks": status})
	})
}

// Handler wraps a router with the outermost middleware: request id first, so
// even a panic's 500 carries one, then recovery.
func Handler(logger log.Logger, h http.Handler) http.Handler {
	return RequestID(Recover(logger)(h))
}

// NewServer returns an http.Server with every timeout set, so a slow or
// stalled client cannot hold a connection or goroutine forever.
func NewServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

// Serve serves srv on ln until ctx is done (SIGINT/SIGTERM in main), then
// calls beforeShutdown (deregistration from Consul, so no new traffic is
// routed here) and shuts down gracefully, letting in-flight requests finish
// within shutdownTimeout.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, logger log.Logger, shutdownTimeout time.Duration, beforeShutdown func()) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	level.Info(logger).Log("msg", "listening", "addr", ln.Addr().String())

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	level.Info(logger).Log("msg", "shutting down")
	if beforeShutdown != nil {
		beforeShutdown()
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
