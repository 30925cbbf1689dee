package user

import (
	"net/http"

	"github.com/mercato-dev/mercato/shared/endpointkit"
)

// Responses. Business errors travel in the embedded endpointkit.Failure
// (endpoint.Failer), so a client's circuit breaker never counts a 404 as a
// failure.

type registerResponse struct {
	User User `json:"user"`
	endpointkit.Failure
}

func (r registerResponse) StatusCode() int { return http.StatusCreated }

type tokenResponse struct {
	TokenPair
	endpointkit.Failure
}

// Headers keeps tokens out of every cache (RFC 6749 §5.1).
func (r tokenResponse) Headers() http.Header {
	return http.Header{"Cache-Control": {"no-store"}, "Pragma": {"no-cache"}}
}

type logoutResponse struct {
	endpointkit.Failure
}

func (r logoutResponse) StatusCode() int { return http.StatusNoContent }

type userResponse struct {
	User User `json:"user"`
	endpointkit.Failure
}

type addressesResponse struct {
	Items []Address `json:"items"`
	endpointkit.Failure
}

type addAddressResponse struct {
	Address Address `json:"address"`
	endpointkit.Failure
}

func (r addAddressResponse) StatusCode() int { return http.StatusCreated }
func (r addAddressResponse) Headers() http.Header {
	return http.Header{"Location": {"/api/v1/users/me/addresses/" + r.Address.ID}}
}

type addressResponse struct {
	Address Address `json:"address"`
	endpointkit.Failure
}

type deleteAddressResponse struct {
	endpointkit.Failure
}

func (r deleteAddressResponse) StatusCode() int { return http.StatusNoContent }

type listUsersResponse = endpointkit.PageResponse[User]
