// Package endpointkit is the endpoint layer every Mercato service shares:
// the go-kit endpoints between a service and its transports, whose
// responses carry business errors (endpoint.Failer) so breakers and retries
// never count them.
package endpointkit

import (
	"context"

	"github.com/go-kit/kit/endpoint"

	"github.com/mercato-dev/mercato/shared/auth"
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
	return build[Req, Resp, P](nil, nil, func(ctx context.Context, _ auth.Identity, req Req) (Resp, error) {
		return serve(ctx, req)
	})
}

// Validated is Serve for a request that checks itself first: one that fails
// validate is answered with a Resp holding only that error, and never
// reaches serve.
func Validated[Req, Resp any, P Failing[Resp]](validate func(Req) error, serve func(ctx context.Context, req Req) (Resp, error)) endpoint.Endpoint {
	return build[Req, Resp, P](nil, validate, func(ctx context.Context, _ auth.Identity, req Req) (Resp, error) {
		return serve(ctx, req)
	})
}

// ServeCaller is Serve for a method that acts for the verified caller:
// serve gets the identity auth.Authenticate put in ctx, never anyone the
// request names. Its absence is a wiring mistake, the endpoint's own error
// (auth.ErrUnauthenticated, a 401), not a business error.
func ServeCaller[Req, Resp any, P Failing[Resp]](serve func(ctx context.Context, caller auth.Identity, req Req) (Resp, error)) endpoint.Endpoint {
	return build[Req, Resp, P](callerOf, nil, serve)
}

// ValidatedCaller is ServeCaller for a request that checks itself first,
// as with Validated; the caller is known before the request is checked.
func ValidatedCaller[Req, Resp any, P Failing[Resp]](validate func(Req) error, serve func(ctx context.Context, caller auth.Identity, req Req) (Resp, error)) endpoint.Endpoint {
	return build[Req, Resp, P](callerOf, validate, serve)
}

func callerOf(ctx context.Context) (auth.Identity, error) {
	id, ok := auth.FromContext(ctx)
	if !ok {
		return auth.Identity{}, auth.ErrUnauthenticated
	}
	return id, nil
}

// build is the one body of Serve, Validated, ServeCaller and
// ValidatedCaller: find the caller (when caller is given), check the request
// (when validate is given), serve it.
func build[Req, Resp any, P Failing[Resp]](
	caller func(context.Context) (auth.Identity, error),
	validate func(Req) error,
	serve func(ctx context.Context, caller auth.Identity, req Req) (Resp, error),
) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		var id auth.Identity
		if caller != nil {
			var err error
			if id, err = caller(ctx); err != nil {
				return nil, err
			}
		}
		req := request.(Req)
		if validate != nil {
			if err := validate(req); err != nil {
				return Fail[Resp, P](err), nil
			}
		}
		resp, err := serve(ctx, id, req)
		return Respond[Resp, P](resp, err), nil
	}
}
