// Package requestid carries the request id that ties together the log lines,
// outbound calls and events caused by one client request.
package requestid

import (
	"context"
	"net/http"

	"github.com/google/uuid"
)

// Header is the HTTP header that carries the request id in and out.
const Header = "X-Request-ID"

type ctxKey struct{}

// NewContext returns a copy of ctx carrying id.
func NewContext(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the request id carried by ctx, or "".
func FromContext(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// New returns a fresh request id.
func New() string { return uuid.NewString() }

// Valid reports whether a client-supplied id is safe to echo and log: short,
// printable ASCII, no spaces. Anything else is replaced by a fresh id.
func Valid(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// ToHTTP is a go-kit ClientBefore function that forwards the request id in
// ctx to the upstream service, so the upstream's log lines join the caller's.
func ToHTTP(ctx context.Context, r *http.Request) context.Context {
	if id := FromContext(ctx); id != "" {
		r.Header.Set(Header, id)
	}
	return ctx
}
