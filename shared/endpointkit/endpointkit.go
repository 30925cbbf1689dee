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

// Serve returns the endpoint of a service method: it hands the request, a
// Req, to serve and answers serve's response with serve's error as its
// business error (endpoint.Failer), never as the endpoint's error.
func Serve[Req, Resp any, P Failing[Resp]](serve func(ctx context.Context, req Req) (Resp, error)) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		resp, err := serve(ctx, request.(Req))
		return Respond[Resp, P](resp, err), nil
	}
}

// Validated is Serve for a request that checks itself first: one that fails
// validate is answered with a Resp holding only that error, and never
// reaches serve.
func Validated[Req, Resp any, P Failing[Resp]](validate func(Req) error, serve func(ctx context.Context, req Req) (Resp, error)) endpoint.Endpoint {
	return Serve[Req, Resp, P](func(ctx context.Context, req Req) (Resp, error) {
		if err := validate(req); err != nil {
			var zero Resp
			return zero, err
		}
		return serve(ctx, req)
	})
}
