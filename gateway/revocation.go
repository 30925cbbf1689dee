package gateway

import (
	"context"
	"net/http"

	"github.com/mercato-dev/mercato/shared/auth"
)

// A read (GET or HEAD: no effect upstream) with a token that verified is
// forwarded while the denylist is asked whether the token was revoked, so
// the look-up's Redis round trip overlaps the instance's answer instead of
// preceding it. Nothing of the answer reaches the client before the
// denylist has said no: the proxy waits for it when the answer's headers
// arrive (ModifyResponse) or the forwarding fails (ErrorHandler), and a
// revoked token gets its 401 token_revoked, the answer discarded. Any
// other request waits for the denylist before it is forwarded.

// revocation is one pending denylist look-up.
type revocation struct {
	done chan struct{}
	err  error // auth.ErrTokenRevoked, or nil; set before done is closed
}

type revocationKey struct{}

// checkRevocation starts at's look-up and returns ctx carrying it.
func (g *Gateway) checkRevocation(ctx context.Context, at auth.AccessToken) context.Context {
	rv := &revocation{done: make(chan struct{})}
	go func() {
		rv.err = g.tokens.Revoked(ctx, at)
		close(rv.done)
	}()
	return context.WithValue(ctx, revocationKey{}, rv)
}

// awaitRevocation waits for the look-up ctx carries, if any, and returns
// auth.ErrTokenRevoked when the token was revoked.
func awaitRevocation(ctx context.Context) error {
	rv, ok := ctx.Value(revocationKey{}).(*revocation)
	if !ok {
		return nil
	}
	<-rv.done // Revoked gives up within the denylist's own timeout
	return rv.err
}

// isRead reports whether r may be forwarded before its token's denylist
// look-up is done: it has no effect upstream.
func isRead(r *http.Request) bool {
	return r.Method == http.MethodGet || r.Method == http.MethodHead
}
