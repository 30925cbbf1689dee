package user

import (
	"net/http"

	"github.com/go-kit/kit/endpoint"
	"github.com/go-kit/kit/sd"
	httptransport "github.com/go-kit/kit/transport/http"
	"github.com/go-kit/log"

	"github.com/mercato-dev/mercato/shared/discovery"
)

// NewClient returns the user service as seen from another process: every
// method is load-balanced over the instances instancer reports (one shared
// Consul instancer, from discovery.NewInstancer), with per-instance circuit
// breakers and safe retries (discovery.NewEndpoint). Business errors come
// back as the domain errors (ErrNotFound, …) or *httpkit.Error, 5xx answers
// as *discovery.UpstreamError, no instance at all as discovery.ErrNoInstances.
//
// The caller's bearer token (auth.HTTPToContext put it in ctx) and request id
// travel with every call.
func NewClient(instancer sd.Instancer, logger log.Logger, opts discovery.Options) Service {
	c := client{instancer: instancer, logger: logger, opts: opts, http: discovery.NewHTTPClient()}
	return Endpoints{
		RegisterEndpoint: c.endpoint(http.MethodPost, encodeJSONRequest("/auth/register"),
			decodeResponse(func(err error) registerResponse { return registerResponse{Err: err} })),
		LoginEndpoint: c.endpoint(http.MethodPost, encodeJSONRequest("/auth/login"),
			decodeResponse(func(err error) tokenResponse { return tokenResponse{Err: err} })),
		RefreshEndpoint: c.endpoint(http.MethodPost, encodeJSONRequest("/auth/refresh"),
			decodeResponse(func(err error) tokenResponse { return tokenResponse{Err: err} })),
		LogoutEndpoint: c.endpoint(http.MethodPost, encodeJSONRequest("/auth/logout"),
			decodeResponse(func(err error) logoutResponse { return logoutResponse{Err: err} })),
		GetProfileEndpoint: c.endpoint(http.MethodGet, encodePath("/users/me"),
			decodeResponse(func(err error) userResponse { return userResponse{Err: err} })),
		UpdateProfileEndpoint: c.endpoint(http.MethodPatch, encodeJSONRequest("/users/me"),
			decodeResponse(func(err error) userResponse { return userResponse{Err: err} })),
		ListAddressesEndpoint: c.endpoint(http.MethodGet, encodePath("/users/me/addresses"),
			decodeResponse(func(err error) addressesResponse { return addressesResponse{Err: err} })),
		AddAddressEndpoint: c.endpoint(http.MethodPost, encodeJSONRequest("/users/me/addresses"),
			decodeResponse(func(err error) addAddressResponse { return addAddressResponse{Err: err} })),
		UpdateAddressEndpoint: c.endpoint(http.MethodPatch, encodeUpdateAddressRequest,
			decodeResponse(func(err error) addressResponse { return addressResponse{Err: err} })),
		DeleteAddressEndpoint: c.endpoint(http.MethodDelete, encodeDeleteAddressRequest,
			decodeResponse(func(err error) deleteAddressResponse { return deleteAddressResponse{Err: err} })),
		ListUsersEndpoint: c.endpoint(http.MethodGet, encodeListUsersRequest,
			decodeResponse(func(err error) listUsersResponse { return listUsersResponse{Err: err} })),
		GetUserEndpoint: c.endpoint(http.MethodGet, encodeGetUserRequest,
			decodeResponse(func(err error) userResponse { return userResponse{Err: err} })),
	}
}

type client struct {
	instancer sd.Instancer
	logger    log.Logger
	opts      discovery.Options
	http      *http.Client
}

// endpoint builds the load-balanced endpoint of one method. Reads may go to
// another instance after a timeout or a broken connection; writes are only
// retried where nothing was sent.
func (c client) endpoint(method string, enc httptransport.EncodeRequestFunc, dec httptransport.DecodeResponseFunc) endpoint.Endpoint {
	var idempotent func(any) bool
	if method == http.MethodGet {
		idempotent = discovery.Always
	}
	return discovery.NewEndpoint(c.instancer, ServiceName, discovery.HTTPFactory(c.http, method, enc, dec, idempotent), c.logger, c.opts)
}
