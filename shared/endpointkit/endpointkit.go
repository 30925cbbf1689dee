// Package endpointkit is the endpoint layer every Mercato service shares:
// the go-kit endpoints between a service and its transports, whose
// responses carry business errors (endpoint.Failer) so breakers and retries
// never count them.
package endpointkit

import (
	"context"

	"github.com/go-kit/kit/endpoint"
)

// Call invokes e with request and returns its response as Resp, with the
// error of the call: the one e returned (transport, breaker, no instance),
// else the business error the response carries (Failed). It is how an
// Endpoints struct doubles as the Service it serves.
func Call[Resp endpoint.Failer](ctx context.Context, e endpoint.Endpoint, request any) (Resp, error) {
	resp, err := e(ctx, request)
	if err != nil {
		var zero Resp
		return zero, err
	}
	out := resp.(Resp)
	return out, out.Failed()
}
