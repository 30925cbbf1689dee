// Package gateway is Mercato's API gateway: it verifies access tokens,
// applies per-client rate limits shared by every gateway instance through
// Redis, and forwards /api/v1 requests to the instances of the owning
// service that Consul reports healthy, round robin, each behind its own
// circuit breaker, retrying on another instance only when that is safe.
package gateway

import (
	"net/http"
	"path"
	"strings"

	"github.com/gorilla/mux"
)

// Route sends every request under Prefix to the Upstream service.
type Route struct {
	Prefix   string   // e.g. "/api/v1/users": the path itself and everything below it
	Upstream string   // Consul service name
	Public   []string // "METHOD /exact/path" or "METHOD *": reachable without a token
	// Rate is the rate-limit class its requests draw on: ClientRate (the
	// user's, else the address's allowance) unless it has one of its own,
	// drawn on by address.
	Rate RateClass
	// Streams are "METHOD /path" patterns ("*" for one segment) of
	// long-lived answers (Server-Sent Events), relayed without the
	// upstream timeout (stream.go).
	Streams []string
	// Idempotent are "METHOD /path" patterns, as Streams, of the requests
	// whose service honours an Idempotency-Key (it answers a repeat with
	// the first answer). Only these keep the header, and with it the right
	// to be sent again after a timeout or a 502-504
	// (discovery.IsIdempotent): any other request that carries one, say a
	// stock adjustment from a client library that adds a key to every POST,
	// reaches its service once at most.
	Idempotent []string
}

// Routes is the public API of API.md mapped to the services that own it.
// Besides them the gateway serves only /health, its API reference
// (/docs, /api/v1/openapi.json and .yaml) and the storefront (/ and
// /assets/<version>/…); anything else, /internal/… included, is 404 at the
// gateway.
var Routes = []Route{
	{Prefix: "/api/v1/auth", Upstream: "user", Public: []string{
		"POST /api/v1/auth/register", "POST /api/v1/auth/login", "POST /api/v1/auth/refresh"}},
	{Prefix: "/api/v1/users", Upstream: "user"},
	{Prefix: "/api/v1/categories", Upstream: "product", Public: []string{"GET *"}},
	{Prefix: "/api/v1/products", Upstream: "product", Public: []string{"GET *"}},
	{Prefix: "/api/v1/orders", Upstream: "order", Streams: []string{"GET /api/v1/orders/*/events"},
		Idempotent: []string{"POST /api/v1/orders"}},
	{Prefix: "/api/v1/payments", Upstream: "payment", Idempotent: []string{"POST /api/v1/payments/*/refunds"}},
	// Payment providers call back here; the payment service checks the
	// HMAC signature and timestamp, so no token is needed.
	// They have an allowance of their own (WebhookRate).
	{Prefix: "/api/v1/webhooks/payments", Upstream: "payment", Public: []string{"POST *"}, Rate: WebhookRate},
	{Prefix: "/api/v1/notifications", Upstream: "notification"},
}

// isPublic reports whether r may be served without a token.
func (rt Route) isPublic(r *http.Request) bool {
	for _, p := range rt.Public {
		method, path, _ := strings.Cut(p, " ")
		if method == r.Method && (path == "*" || path == r.URL.Path) {
			return true
		}
	}
	return false
}

// matches reports whether r is one of patterns ("METHOD /path", "*" for
// one segment of the path).
func matches(patterns []string, r *http.Request) bool {
	for _, p := range patterns {
		method, path, _ := strings.Cut(p, " ")
		if method == r.Method && matchSegments(path, r.URL.Path) {
			return true
		}
	}
	return false
}

// matchSegments matches path against pattern, whose "*" segments match any
// one non-empty segment.
func matchSegments(pattern, path string) bool {
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(xs) {
		return false
	}
	for i := range ps {
		if ps[i] != xs[i] && (ps[i] != "*" || xs[i] == "") {
			return false
		}
	}
	return true
}

// isClean reports whether r's path is in the form mux's path cleaning
// leaves it in (a trailing slash is kept): no empty, "." or ".." segment.
// The path is the decoded one, so %2e%2e and %2F count as what they decode
// to, as they will upstream.
func isClean(r *http.Request, _ *mux.RouteMatch) bool {
	p := r.URL.Path
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	return p == clean
}

// upstreams lists the distinct services routes point at.
func upstreams(routes []Route) []string {
	var names []string
	seen := map[string]bool{}
	for _, rt := range routes {
		if !seen[rt.Upstream] {
			seen[rt.Upstream] = true
			names = append(names, rt.Upstream)
		}
	}
	return names
}
