package user

import (
	"net/http"

	"github.com/go-kit/kit/sd"
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
	// Reads may go to another instance after a timeout or a broken
	// connection; writes are only retried where nothing was sent.
	c := discovery.NewClient(instancer, ServiceName, logger, opts, discovery.NewHTTPClient())
	return Endpoints{
		RegisterEndpoint: c.Endpoint(http.MethodPost, encodeJSONRequest("/auth/register"),
			decodeResponse(func(err error) registerResponse { return registerResponse{Err: err} }), nil),
		LoginEndpoint: c.Endpoint(http.MethodPost, encodeJSONRequest("/auth/login"),
			decodeResponse(func(err error) tokenResponse { return tokenResponse{Err: err} }), nil),
		RefreshEndpoint: c.Endpoint(http.MethodPost, encodeJSONRequest("/auth/refresh"),
			decodeResponse(func(err error) tokenResponse { return tokenResponse{Err: err} }), nil),
		LogoutEndpoint: c.Endpoint(http.MethodPost, encodeJSONRequest("/auth/logout"),
			decodeResponse(func(err error) logoutResponse { return logoutResponse{Err: err} }), nil),
		GetProfileEndpoint: c.Endpoint(http.MethodGet, encodePath("/users/me"),
			decodeResponse(func(err error) userResponse { return userResponse{Err: err} }), nil),
		UpdateProfileEndpoint: c.Endpoint(http.MethodPatch, encodeJSONRequest("/users/me"),
			decodeResponse(func(err error) userResponse { return userResponse{Err: err} }), nil),
		ListAddressesEndpoint: c.Endpoint(http.MethodGet, encodePath("/users/me/addresses"),
			decodeResponse(func(err error) addressesResponse { return addressesResponse{Err: err} }), nil),
		AddAddressEndpoint: c.Endpoint(http.MethodPost, encodeJSONRequest("/users/me/addresses"),
			decodeResponse(func(err error) addAddressResponse { return addAddressResponse{Err: err} }), nil),
		UpdateAddressEndpoint: c.Endpoint(http.MethodPatch, encodeUpdateAddressRequest,
			decodeResponse(func(err error) addressResponse { return addressResponse{Err: err} }), nil),
		DeleteAddressEndpoint: c.Endpoint(http.MethodDelete, encodeDeleteAddressRequest,
			decodeResponse(func(err error) deleteAddressResponse { return deleteAddressResponse{Err: err} }), nil),
		ListUsersEndpoint: c.Endpoint(http.MethodGet, encodeListUsersRequest,
			decodeResponse(func(err error) listUsersResponse { return listUsersResponse{Err: err} }), nil),
		GetUserEndpoint: c.Endpoint(http.MethodGet, encodeGetUserRequest,
			decodeResponse(func(err error) userResponse { return userResponse{Err: err} }), nil),
	}
}
