package user

import "net/http"

// Responses. Business errors travel in Err (endpoint.Failer), so a client's
// circuit breaker never counts a 404 as a failure.

type registerResponse struct {
	User User  `json:"user"`
	Err  error `json:"-"`
}

func (r registerResponse) Failed() error   { return r.Err }
func (r registerResponse) StatusCode() int { return http.StatusCreated }

type tokenResponse struct {
	TokenPair
	Err error `json:"-"`
}

func (r tokenResponse) Failed() error { return r.Err }

// Headers keeps tokens out of every cache (RFC 6749 §5.1).
func (r tokenResponse) Headers() http.Header {
	return http.Header{"Cache-Control": {"no-store"}, "Pragma": {"no-cache"}}
}

type logoutResponse struct {
	Err error `json:"-"`
}

func (r logoutResponse) Failed() error   { return r.Err }
func (r logoutResponse) StatusCode() int { return http.StatusNoContent }

type userResponse struct {
	User User  `json:"user"`
	Err  error `json:"-"`
}

func (r userResponse) Failed() error { return r.Err }

type addressesResponse struct {
	Items []Address `json:"items"`
	Err   error     `json:"-"`
}

func (r addressesResponse) Failed() error { return r.Err }

type addAddressResponse struct {
	Address Address `json:"address"`
	Err     error   `json:"-"`
}

func (r addAddressResponse) Failed() error   { return r.Err }
func (r addAddressResponse) StatusCode() int { return http.StatusCreated }
func (r addAddressResponse) Headers() http.Header {
	return http.Header{"Location": {"/api/v1/users/me/addresses/" + r.Address.ID}}
}

type addressResponse struct {
	Address Address `json:"address"`
	Err     error   `json:"-"`
}

func (r addressResponse) Failed() error { return r.Err }

type deleteAddressResponse struct {
	Err error `json:"-"`
}

func (r deleteAddressResponse) Failed() error   { return r.Err }
func (r deleteAddressResponse) StatusCode() int { return http.StatusNoContent }

type listUsersResponse struct {
	Items    []User `json:"items"`
	Page     int    `json:"page"`
	PageSize int    `json:"page_size"`
	Total    int    `json:"total"`
	Err      error  `json:"-"`
}

func (r listUsersResponse) Failed() error { return r.Err }
