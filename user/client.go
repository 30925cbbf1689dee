package user

import (
	"net/http"

	"github.com/go-kit/kit/sd"
	"github.com/go-kit/log"

	"github.com/mercato-dev/mercato/shared/discovery"
	"github.com/mercato-dev/mercato/shared/endpointkit"
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
			decodeResponse(endpointkit.Fail[registerResponse]), nil),
		LoginEndpoint: c.Endpoint(http.MethodPost, encodeJSONRequest("/auth/login"),
			decodeResponse(endpointkit.Fail[tokenResponse]), nil),
		RefreshEndpoint: c.Endpoint(http.MethodPost, encodeJSONRequest("/auth/refresh"),
			decodeResponse(endpointkit.Fail[tokenResponse]), nil),
		LogoutEndpoint: c.Endpoint(http.MethodPost, encodeJSONRequest("/auth/logout"),
			decodeResponse(endpointkit.Fail[logoutResponse]), nil),
		GetProfileEndpoint: c.Endpoint(http.MethodGet, encodePath("/users/me"),
			decodeResponse(endpointkit.Fail[userResponse]), nil),
		UpdateProfileEndpoint: c.Endpoint(http.MethodPatch, encodeJSONRequest("/users/me"),
			decodeResponse(endpointkit.Fail[userResponse]), nil),
		ListAddressesEndpoint: c.Endpoint(http.MethodGet, encodePath("/users/me/addresses"),
			decodeResponse(endpointkit.Fail[addressesResponse]), nil),
		AddAddressEndpoint: c.Endpoint(http.MethodPost, encodeJSONRequest("/users/me/addresses"),
			decodeResponse(endpointkit.Fail[addAddressResponse]), nil),
		UpdateAddressEndpoint: c.Endpoint(http.MethodPatch, encodeUpdateAddressRequest,
			decodeResponse(endpointkit.Fail[addressResponse]), nil),
		DeleteAddressEndpoint: c.Endpoint(http.MethodDelete, encodeDeleteAddressRequest,
			decodeResponse(endpointkit.Fail[deleteAddressResponse]), nil),
		ListUsersEndpoint: c.Endpoint(http.MethodGet, encodeListUsersRequest,
			decodeResponse(endpointkit.Fail[listUsersResponse]), nil),
		GetUserEndpoint: c.Endpoint(http.MethodGet, encodeGetUserRequest,
			decodeResponse(endpointkit.Fail[userResponse]), nil),
	}
}
